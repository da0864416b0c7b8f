"""The closeness report of one dataset's synthetic set: `results/fidelity/{dataset}/{generator}.json`.

Embeddings come from the classifier trained on real data only (the `real` experiment, first
seed); FID, MMD and the discriminative score compare the real training records with the
synthetic ones (the distribution the generator learnt); the memorisation check holds the real
test records out. TSTR is the `synthetic` experiment's test score; TRTS scores the real-data
classifier on the synthetic records.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.signal import welch

from synthecg.classifier.experiments import load_classifier, load_synthetic
from synthecg.classifier.training import predict_probabilities
from synthecg.data.store import STANDARD_LEADS, load_split, metadata
from synthecg.errors import PipelineError
from synthecg.evaluation.closeness import discriminative_score, frechet_distance, memorisation, mmd_rbf
from synthecg.evaluation.metrics import classification_metrics
from synthecg.io import write_json_atomically

MMD_MAX_RECORDS = 1000  # MMD is quadratic in the number of records


@torch.no_grad()
def embed(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    parts = [model.embed(torch.from_numpy(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)


def spectrum_and_amplitude(x_mv: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean log10 power spectrum per lead [leads, freqs] and mean peak-to-peak amplitude per lead (mV)."""
    _, power = welch(x_mv, fs=fs, nperseg=min(256, x_mv.shape[-1]), axis=-1)
    return np.log10(power.mean(axis=0) + 1e-12), np.ptp(x_mv, axis=-1).mean(axis=0)


def compute_fidelity(
    real_h5: Path, synthetic_h5: Sequence[Path], real_model: Path, tstr_metrics: Path, out_json: Path, seed: int = 0
) -> dict:
    meta = metadata(real_h5)
    train = load_split(real_h5, "train", normalised=True)
    test = load_split(real_h5, "test", normalised=True)
    synthetic_x, synthetic_y = load_synthetic(synthetic_h5, meta)
    if len(synthetic_x) < 2 or len(train["x"]) < 2:
        raise PipelineError(f"{real_h5}: closeness needs at least two real and two synthetic records")
    model = load_classifier(real_model)
    real_embedding, synthetic_embedding = embed(model, train["x"]), embed(model, synthetic_x)
    rng = np.random.default_rng(seed)
    subset = lambda e: e[rng.permutation(len(e))[:MMD_MAX_RECORDS]]  # noqa: E731
    std = np.asarray(meta["norm_std"])[None, :, None]
    mean = np.asarray(meta["norm_mean"])[None, :, None]
    real_psd, real_amplitude = spectrum_and_amplitude(train["x"] * std + mean, meta["fs"])
    synthetic_psd, synthetic_amplitude = spectrum_and_amplitude(synthetic_x * std + mean, meta["fs"])
    trts = classification_metrics(synthetic_y, predict_probabilities(model, synthetic_x, torch.device("cpu")), meta["classes"])
    tstr = json.loads(Path(tstr_metrics).read_text())
    report = {
        "dataset": meta["dataset"],
        "generator": metadata(synthetic_h5[0])["generator"],
        "n_real_train": int(len(train["x"])),
        "n_synthetic": int(len(synthetic_x)),
        "fid": frechet_distance(real_embedding, synthetic_embedding),
        "mmd": mmd_rbf(subset(real_embedding), subset(synthetic_embedding)),
        "discriminative_accuracy": discriminative_score(real_embedding, synthetic_embedding, seed),
        "tstr_macro_f1": tstr.get("macro_f1"),
        "tstr_accuracy": tstr.get("accuracy"),
        "trts_macro_f1": trts.get("macro_f1"),
        "trts_accuracy": trts.get("accuracy"),
        "memorisation": memorisation(synthetic_x, train["x"], test["x"]) if len(test["x"]) else None,
        "amplitude_mv": {
            lead: {"real": float(r), "synthetic": float(s)}
            for lead, r, s in zip(STANDARD_LEADS, real_amplitude, synthetic_amplitude)
        },
        "log_power_spectrum_mean_abs_difference": {
            lead: float(np.abs(r - s).mean()) for lead, r, s in zip(STANDARD_LEADS, real_psd, synthetic_psd)
        },
    }
    write_json_atomically(report, out_json)
    return report
