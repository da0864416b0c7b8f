"""Model files (generators, classifiers, training checkpoints): plain data only, so loading runs no code.

`torch.load` of an arbitrary pickle can run any code the file names, and a `model.pt` is the kind
of file people share. Every model file this pipeline writes holds only what
`torch.load(..., weights_only=True)` reads: tensors, dicts, lists, tuples, numbers, strings, bools
and None (state_dicts, RNG states as tensors, settings as plain dicts). `save_checkpoint` checks
that before the file takes its name; `load_checkpoint` refuses any other file with an error that
names it. Kept apart from synthecg.io, which the data stages use without torch.
"""

import os
import pickle
from pathlib import Path

import torch
from torch.serialization import get_unsafe_globals_in_checkpoint

from synthecg.errors import PipelineError
from synthecg.io import partial_path


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write `payload` to `path` atomically; TypeError if it holds anything but plain data."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    torch.save(payload, temporary)
    # Found here, a numpy scalar or a dataclass fails the run that saves it, not a later one that loads it.
    objects = get_unsafe_globals_in_checkpoint(temporary)
    if objects:
        temporary.unlink()
        raise TypeError(f"{path}: not saved, the payload holds {', '.join(objects)}, which "
                        "load_checkpoint would refuse; convert them to tensors or plain containers")
    os.replace(temporary, path)


def load_checkpoint(path: str | Path, *, what: str, remedy: str, map_location="cpu") -> dict:
    """The dict saved in `path` by `save_checkpoint`, read with `weights_only=True`.

    `what` names the file's role in errors ("the generator"); `remedy` says how to make it anew
    ("rerun its training"). A file with Python objects in it is refused before any of its code runs.
    """
    path = Path(path)
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise PipelineError(
            f"{path}: refused to load {what}: the file holds Python objects{_named_objects(path)} besides "
            "tensors and plain data, and loading them would run code. This pipeline's model files hold "
            f"none, so it was made by an older version or elsewhere; delete it and {remedy}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise PipelineError(f"{path}: cannot read {what} ({error}); delete it and {remedy}") from error
    if not isinstance(saved, dict):
        raise PipelineError(f"{path}: holds a {type(saved).__name__}, not {what} as this pipeline saves it; "
                            f"delete it and {remedy}")
    return saved


def _named_objects(path: Path) -> str:
    try:  # reads the pickle's names without running it; only files in torch.save's zip format have them
        return f" ({', '.join(get_unsafe_globals_in_checkpoint(path))})"
    except Exception:
        return ""
