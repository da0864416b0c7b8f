"""What this machine offers, read cheaply: the workflow asks while it builds its job graph, where
importing torch would add seconds to every Snakemake call."""

import os
from pathlib import Path

NVIDIA_DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the driver sees


def nvidia_gpu_visible() -> bool:
    """An NVIDIA GPU is present and not hidden by CUDA_VISIBLE_DEVICES."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return NVIDIA_DRIVER_GPUS.is_dir() and any(NVIDIA_DRIVER_GPUS.iterdir())
