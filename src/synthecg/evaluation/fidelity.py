"""The closeness report of one dataset's synthetic set: `results/fidelity/{dataset}/{generator}.json`.

Embeddings come from the classifier trained on real data only (the `real` experiment), once per
seed; FID, MMD and the discriminative score compare the real training records with the
synthetic ones (the distribution the generator learnt); the memorisation check holds the real
test records out. TSTR is the `synthetic` experiment's test score; TRTS scores the real-data
classifier on the synthetic records. Amplitude, spectrum, heart rate and memorisation are
measured on the signals and do not depend on a seed.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.signal import welch

from synthecg.classifier.experiments import load_classifier
from synthecg.classifier.training import predict_probabilities
from synthecg.data.store import STANDARD_LEADS, load_split, load_synthetic, metadata, to_millivolts
from synthecg.errors import PipelineError
from synthecg.evaluation.closeness import discriminative_score, frechet_distance, memorisation, mmd_rbf
from synthecg.evaluation.quality import generator_quality, real_reference
from synthecg.evaluation.rhythm import (
    analyse_records,
    heart_rate_by_class,
    read_split_rhythm,
    rhythm_by_class,
)
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
    real_h5: Path,
    synthetic_h5: Sequence[Path],
    real_models: Mapping[int, Path],
    tstr_metrics: Mapping[int, Path],
    out_json: Path,
    real_rhythm_csv: Path,
) -> dict:
    """Closeness of one synthetic set to its real data; the classifier-based scores once per seed.

    `real_models` and `tstr_metrics` map each seed to its `real` classifier and its `synthetic`
    experiment's metrics. Measures on the signals themselves do not depend on the seed.
    `real_rhythm_csv` is the dataset's `split_rhythms` table.
    """
    meta = metadata(real_h5)
    train = load_split(real_h5, "train", normalised=True)
    test = load_split(real_h5, "test", normalised=True)
    synthetic_x, synthetic_y = load_synthetic(synthetic_h5, meta)
    if len(synthetic_x) < 2 or len(train["x"]) < 2:
        raise PipelineError(f"{real_h5}: closeness needs at least two real and two synthetic records")
    by_seed = {}
    for seed, model_path in sorted(real_models.items()):
        model = load_classifier(model_path)
        windows = model.config.eval_windows(meta["fs"])  # predicts as its test scoring did
        real_embedding, synthetic_embedding = embed(model, train["x"]), embed(model, synthetic_x)
        rng = np.random.default_rng(seed)
        subset = lambda e: e[rng.permutation(len(e))[:MMD_MAX_RECORDS]]  # noqa: E731
        trts = classification_metrics(
            synthetic_y,
            predict_probabilities(model, synthetic_x, torch.device("cpu"), windows=windows),
            meta["classes"],
            intervals=False,  # only its macro-F1 is kept; a large synthetic set would make the bootstrap slow
        )
        tstr = json.loads(Path(tstr_metrics[seed]).read_text())
        by_seed[seed] = {
            "fid": frechet_distance(real_embedding, synthetic_embedding),
            "mmd": mmd_rbf(subset(real_embedding), subset(synthetic_embedding)),
            "discriminative_accuracy": discriminative_score(real_embedding, synthetic_embedding, seed),
            "tstr_macro_f1": tstr.get("macro_f1"),
            "tstr_accuracy": tstr.get("accuracy"),
            "trts_macro_f1": trts.get("macro_f1"),
            "trts_accuracy": trts.get("accuracy"),
        }
    real_mv, synthetic_mv = to_millivolts(train["x"], meta), to_millivolts(synthetic_x, meta)
    real_psd, real_amplitude = spectrum_and_amplitude(real_mv, meta["fs"])
    synthetic_psd, synthetic_amplitude = spectrum_and_amplitude(synthetic_mv, meta["fs"])
    real_rhythm = read_split_rhythm(pd.read_csv(real_rhythm_csv), "train", len(real_mv), real_rhythm_csv)
    synthetic_rhythm = analyse_records(synthetic_mv, meta["fs"], meta["leads"])
    report = {
        "dataset": meta["dataset"],
        "generator": metadata(synthetic_h5[0])["generator"],
        "classes": meta["classes"],
        "n_real_train": int(len(train["x"])),
        "n_synthetic": int(len(synthetic_x)),
        "by_seed": by_seed,
        "memorisation": memorisation(synthetic_x, train["x"], test["x"]) if len(test["x"]) else None,
        "amplitude_mv": {
            lead: {"real": float(r), "synthetic": float(s)}
            for lead, r, s in zip(STANDARD_LEADS, real_amplitude, synthetic_amplitude)
        },
        "log_power_spectrum_mean_abs_difference": {
            lead: float(np.abs(r - s).mean()) for lead, r, s in zip(STANDARD_LEADS, real_psd, synthetic_psd)
        },
        "heart_rate_bpm": heart_rate_by_class(real_rhythm, train["y"], synthetic_rhythm, synthetic_y, meta["classes"]),
        "rhythm": {
            "real": rhythm_by_class(real_rhythm, train["y"], meta["classes"]),
            "synthetic": rhythm_by_class(synthetic_rhythm, synthetic_y, meta["classes"]),
        },
    }
    write_json_atomically(report, out_json)
    return report


def embedding_2d(real_h5: Path, synthetic_h5: Sequence[Path], real_model: Path, max_records: int = 2000):
    """PCA of the real-classifier embeddings of real training and synthetic records -> a DataFrame.

    PCA is fitted on the real records only, so the axes are the real data's main directions
    and a synthetic cloud off those axes shows as off-centre.
    """
    from sklearn.decomposition import PCA

    meta = metadata(real_h5)
    train = load_split(real_h5, "train", normalised=True)
    synthetic_x, synthetic_y = load_synthetic(synthetic_h5, meta)
    model = load_classifier(real_model)
    rng = np.random.default_rng(0)
    keep_real = np.sort(rng.permutation(len(train["x"]))[:max_records])
    keep_synthetic = np.sort(rng.permutation(len(synthetic_x))[:max_records])
    real_embedding = embed(model, train["x"][keep_real])
    synthetic_embedding = embed(model, synthetic_x[keep_synthetic])
    pca = PCA(n_components=2).fit(real_embedding)
    points = np.concatenate([pca.transform(real_embedding), pca.transform(synthetic_embedding)])
    labels = np.concatenate([train["y"][keep_real], synthetic_y[keep_synthetic]])
    return pd.DataFrame({
        "pc1": points[:, 0],
        "pc2": points[:, 1],
        "source": ["real"] * len(keep_real) + ["synthetic"] * len(keep_synthetic),
        "class": pd.Categorical.from_codes(labels, categories=meta["classes"]),
    })


def write_generator_quality(real_h5: Path, synthetic_h5: Path, real_rhythm_csv: Path, out_json: Path,
                            max_per_class: int = 200) -> dict:
    """Per-class quality of one generator's synthetic set against the real records (held-out: validation
    and test splits; and training), as `synthecg.evaluation.quality.generator_quality` measures it, in mV.

    `real_rhythm_csv` is the dataset's `split_rhythms` table. At most `max_per_class` synthetic
    records per class are judged (a seeded draw), which bounds the rhythm reader's time (~60 ms a
    record) whatever the sampling ratio.
    """
    meta = metadata(real_h5)
    rhythm_table = pd.read_csv(real_rhythm_csv)
    real = {split: load_split(real_h5, split) for split in ("train", "val", "test") if meta["splits"].get(split)}
    rhythm = {split: read_split_rhythm(rhythm_table, split, len(part["x"]), real_rhythm_csv) for split, part in real.items()}
    heldout = [split for split in ("val", "test") if split in real]
    reference = real_reference(
        np.concatenate([real[s]["x"] for s in heldout]), np.concatenate([real[s]["y"] for s in heldout]),
        meta["fs"], meta["leads"], train_mv=real["train"]["x"], train_y=real["train"]["y"],
        rhythms={"heldout": pd.concat([rhythm[s] for s in heldout], ignore_index=True), "train": rhythm["train"]},
    )
    synthetic = load_split(synthetic_h5, "synthetic")
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(synthetic["y"] == c))[:max_per_class]
                                   for c in np.unique(synthetic["y"])]))
    report = generator_quality(synthetic["x"][keep], synthetic["y"][keep], reference, meta["classes"], meta["fs"],
                               meta["leads"])
    report = {"dataset": meta["dataset"], "generator": metadata(synthetic_h5)["generator"], **report}
    write_json_atomically(report, out_json)
    return report
