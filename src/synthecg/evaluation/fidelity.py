"""The closeness report of one dataset's synthetic set: `results/fidelity/{dataset}/{generator}.json`.

Every distribution measure compares the synthetic records with real records that neither the
generator nor the embedding classifier trained on: the validation and test splits (`REFERENCE`;
the classifier trains on the training split and only picks its epoch on validation), never the
training split, which an overfit embedder already tells apart from unseen records. Each stands
beside its floor, the same measure between two halves of those real records at the same N
(`synthecg.evaluation.closeness.against_floor`):

- per seed, in the feature space of that seed's real-data classifier: FID, MMD² (one bandwidth
  from the real records, a permutation p-value), a linear probe; TSTR (the `synthetic`
  experiment's test score) and TRTS (the real classifier scored on the synthetic records), both
  beside TRTR (the real classifier on the real test split, with its bootstrap interval);
- once, on the signals: a small CNN discriminator, amplitude and spectrum differences, per class
  the heart-rate distance and the share of records with a detectable rhythm (real side: every
  real record of the class, since the held-out splits hold too few of the rare ones);
- privacy (`synthecg.evaluation.privacy`): exact copies of training records, and the DCR share
  and tail share on median beats against their permutation nulls.

Each measure is a dict: value, floor, floor_interval, n (records per side) and, where a test
exists, p. A measure with too few records is None.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthecg.classifier.experiments import load_classifier
from synthecg.classifier.training import predict_probabilities
from synthecg.data.store import (
    load_labels,
    load_rows,
    load_split,
    load_synthetic,
    metadata,
    normalise,
    synthetic_labels,
    to_millivolts,
)
from synthecg.errors import PipelineError
from synthecg.evaluation import privacy
from synthecg.evaluation.closeness import (
    DRAWS,
    MIN_RECORDS,
    against_floor,
    amplitude_difference,
    frechet_distance,
    log_spectrum_difference,
    median_bandwidth,
    mmd2,
    mmd2_permutation_p,
)
from synthecg.evaluation.discriminators import chance_interval, cnn_score, linear_probe_score
from synthecg.evaluation.metrics import classification_metrics
from synthecg.evaluation.quality import generator_quality, real_reference
from synthecg.evaluation.rhythm import (
    COLUMNS,
    analyse_records,
    heart_rate_by_class,
    rate_against_floor,
    read_split_rhythm,
    rhythm_by_class,
    typed_rhythm,
)
from synthecg.io import write_json_atomically

REFERENCE = ("val", "test")  # real records unseen by generator and embedder (see the module docstring)
CNN_DRAWS = 5  # each draw trains four small CNNs (two folds, value and floor); its floor's spread is binomial
MAX_PRIVACY_QUERIES = 2000  # synthetic records the DCR statistics use (exact copies: all of them)
# Synthetic records per class the closeness measures read (a seeded sample where a class has
# more; exact copies are sought among all): at the releases' size a set holds ~100,000 records,
# and embedding and scoring every one per seed would cost more than the study's own classifiers.
MAX_SYNTHETIC_PER_CLASS = 5000
# Records a side of the MMD permutation test: its kernel is quadratic in them (13,000 held-out
# records of the merged set at full size would make a 26,000² kernel, 5.4 GB, and 500 passes over it).
MAX_MMD_TEST_RECORDS = 2000


@torch.no_grad()
def embed(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    parts = [model.embed(torch.from_numpy(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)


def _per_class_subset(y: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:most] for c in np.unique(y)]))


def signal_measures(synthetic: tuple[np.ndarray, np.ndarray], heldout: tuple[np.ndarray, np.ndarray]) -> dict:
    """The measures on the records themselves, each against its floor: the raw-signal CNN
    discriminator, the amplitude and the log-spectrum differences; (records, labels) pairs."""
    (synthetic_x, synthetic_y), (heldout_x, heldout_y) = synthetic, heldout
    signal = lambda measure: lambda x, ref, _: measure(x, ref)  # noqa: E731 - a draw's rng unused
    sides = (synthetic_x, heldout_x, synthetic_y, heldout_y)
    return {
        "cnn_score": against_floor(cnn_score, *sides, draws=CNN_DRAWS, null_interval=chance_interval),
        "amplitude_difference": against_floor(signal(amplitude_difference), *sides),
        "log_spectrum_difference": against_floor(signal(log_spectrum_difference), *sides),
    }


def embedding_measures(model, synthetic: tuple[np.ndarray, np.ndarray], heldout: tuple[np.ndarray, np.ndarray],
                       seed: int) -> dict:
    """FID, MMD² and the linear probe of one seed's embedding, each against its floor; (records, labels) pairs."""
    (synthetic_x, synthetic_y), (heldout_x, heldout_y) = synthetic, heldout
    if len(heldout_y) < 2 * MIN_RECORDS:
        return dict.fromkeys(("fid", "mmd2", "linear_probe_score"))
    synthetic, real = embed(model, synthetic_x), embed(model, heldout_x)
    bandwidth = median_bandwidth(real)
    labelled = {"synthetic_y": synthetic_y, "real_y": heldout_y, "seed": seed}
    measures = {
        "fid": against_floor(lambda x, ref, _: frechet_distance(x, ref), synthetic, real, **labelled),
        "mmd2": against_floor(lambda x, ref, _: mmd2(x, ref, bandwidth), synthetic, real, **labelled),
        "linear_probe_score": against_floor(linear_probe_score, synthetic, real, **labelled),
    }
    if measures["mmd2"] is not None:  # the test: held-out records against as many synthetic ones, class by class
        rng = np.random.default_rng(seed)
        counts = {c: min((heldout_y == c).sum(), (synthetic_y == c).sum()) for c in np.unique(heldout_y)}
        total = sum(counts.values())
        if total > MAX_MMD_TEST_RECORDS:  # every class scaled down alike, at least one record each
            counts = {c: max(1, int(k * MAX_MMD_TEST_RECORDS // total)) if k else 0 for c, k in counts.items()}
        rows = [[rng.permutation(np.flatnonzero(y == c))[: counts[c]] for c in np.unique(heldout_y)]
                for y in (synthetic_y, heldout_y)]
        tested = [embedding[np.concatenate(part)] for embedding, part in zip((synthetic, real), rows)]
        measures["mmd2"] |= {"p": mmd2_permutation_p(*tested, bandwidth, seed=seed), "bandwidth": bandwidth,
                             "n_test": int(len(tested[0]))}
    return measures


def classifier_measures(model, meta: dict, test: dict, synthetic_x: np.ndarray, synthetic_y: np.ndarray,
                        tstr_metrics: Path) -> dict:
    """TSTR and TRTS macro-F1 beside TRTR: the real classifier on the real test split, with its interval."""
    windows = model.config.eval_windows(meta["fs"])  # predicts as its test scoring did
    predict = lambda x: predict_probabilities(model, x, torch.device("cpu"), windows=windows)  # noqa: E731
    trtr = classification_metrics(test["y"], predict(test["x"]), meta["classes"]) if len(test["y"]) else {}
    floor = {"floor": trtr.get("macro_f1"), "floor_interval": (trtr.get("intervals") or {}).get("macro_f1"),
             "n": len(test["y"])}
    trts = classification_metrics(synthetic_y, predict(synthetic_x), meta["classes"],
                                  intervals=False)  # a large synthetic set would make the bootstrap slow
    tstr = json.loads(Path(tstr_metrics).read_text())
    return {
        "tstr_macro_f1": {"value": tstr.get("macro_f1"),
                          "value_interval": (tstr.get("intervals") or {}).get("macro_f1"), **floor},
        "trts_macro_f1": {"value": trts.get("macro_f1"), **floor},
    }


def privacy_measures(synthetic_x: np.ndarray, train_x: np.ndarray, heldout_x: np.ndarray, fs: int,
                     copies: np.ndarray | None = None) -> dict:
    """Exact copies of training records (all synthetic records, raw signals; `copies` if already
    sought, per record of the whole set) and the DCR statistics on median beats against their
    permutation null."""
    copies = privacy.exact_copies(synthetic_x, train_x) if copies is None else copies
    report = {"representation": f"median beats, {privacy.BEAT_WINDOW_S[0]:g} to {privacy.BEAT_WINDOW_S[1]:g} s "
                                "around each QRS, normalised units",
              "exact_copies": {"value": int(copies.sum()), "floor": 0, "n": len(copies)}}
    if len(heldout_x) and len(train_x):
        rng = np.random.default_rng(0)
        queries = synthetic_x[np.sort(rng.permutation(len(synthetic_x))[:MAX_PRIVACY_QUERIES])]
        beats = [privacy.median_beats(x, fs) for x in (queries, train_x, heldout_x)]
        report |= privacy.membership(*beats)
    return report


def copies_of_training(synthetic_h5: Sequence[Path], meta: Mapping, train_x: np.ndarray, block: int = 4096) -> np.ndarray:
    """Per record of the synthetic sets (in order), whether it copies a training record: every
    record, read a block at a time against one index of the training records."""
    index = privacy.CopyIndex(train_x)
    found = [np.zeros(0, bool)]
    for path in synthetic_h5:  # a block of each file at a time; the caller's synthetic_labels checked them
        total = metadata(path)["splits"]["synthetic"]
        for i in range(0, total, block):
            records = load_rows(path, "synthetic", np.arange(i, min(i + block, total)))
            found.append(index.copies(normalise(records, meta, out=records)))
    return np.concatenate(found)


def privacy_flag(report: dict) -> str:
    """Why the privacy section calls a synthetic set beyond its floor ('' if it does not): any exact
    copy of a training record, or a DCR share or tail share whose permutation p is under the
    tables' significance level (their "beyond floor" verdict; like them, none with fewer than
    MIN_VERDICT_RECORDS records a side)."""
    from synthecg.evaluation.tables import MIN_VERDICT_RECORDS, SIGNIFICANCE

    reasons = [f"{report['exact_copies']['value']} exact copies"] if report["exact_copies"]["value"] else []
    for name in ("dcr_share", "dcr_tail_share"):
        measure = report.get(name)
        if measure and min(measure["n"], measure["queries"]) >= MIN_VERDICT_RECORDS and measure["p"] < SIGNIFICANCE:
            reasons.append(f"{name} {measure['value']:.2f} beyond its floor {measure['floor']:.2f} (p {measure['p']:.3f})")
    return "; ".join(reasons)


def compute_fidelity(
    real_h5: Path,
    synthetic_h5: Sequence[Path],
    real_models: Mapping[int, Path],
    tstr_metrics: Mapping[int, Path],
    out_json: Path,
    real_rhythm_csv: Path,
    synthetic_rhythm_csv: Path,
) -> dict:
    """Closeness of one synthetic set to its real data (module docstring); the classifier-based
    scores once per seed. `real_models` and `tstr_metrics` map each seed to its `real` classifier
    and its `synthetic` experiment's metrics; `real_rhythm_csv` is the dataset's `split_rhythms`
    table and `synthetic_rhythm_csv` the `synthetic_rhythms` table of `synthetic_h5`."""
    meta = metadata(real_h5)
    splits = {s: load_split(real_h5, s, normalised=True) for s in ("train", *REFERENCE) if meta["splits"].get(s)}
    empty = {"x": np.zeros((0, len(meta["leads"]), round(meta["fs"] * meta["seconds"])), np.float32),
             "y": np.zeros(0, np.int64)}
    train, test = splits.get("train", empty), splits.get("test", empty)
    heldout = tuple(np.concatenate([splits.get(s, empty)[key] for s in REFERENCE]) for key in ("x", "y"))
    heldout_x = heldout[0]
    all_synthetic_y = synthetic_labels(synthetic_h5, meta)
    measured = _per_class_subset(all_synthetic_y, MAX_SYNTHETIC_PER_CLASS, np.random.default_rng(0))
    synthetic_x, synthetic_y = load_synthetic(synthetic_h5, meta, rows=measured)
    if len(synthetic_x) < 2 or len(train["x"]) < 2:
        raise PipelineError(f"{real_h5}: closeness needs at least two real and two synthetic records")
    by_seed = {}
    for seed, model_path in sorted(real_models.items()):
        model = load_classifier(model_path)
        by_seed[seed] = {**embedding_measures(model, (synthetic_x, synthetic_y), heldout, seed),
                         **classifier_measures(model, meta, test, synthetic_x, synthetic_y, tstr_metrics[seed])}
    signals = signal_measures((synthetic_x, synthetic_y), (heldout_x, heldout[1]))
    # Rhythm: every real record (all splits, as read once per dataset) against a per-class subset of synthetic ones.
    table = pd.read_csv(real_rhythm_csv)
    real_rhythm = pd.concat([read_split_rhythm(table, split, len(part["y"]), real_rhythm_csv)
                             for split, part in splits.items()], ignore_index=True)
    real_y = np.concatenate([part["y"] for part in splits.values()])
    keep, synthetic_rhythm = read_synthetic_rhythms(synthetic_rhythm_csv, all_synthetic_y)
    heart_rate = heart_rate_by_class(real_rhythm, real_y, synthetic_rhythm, all_synthetic_y[keep], meta["classes"])
    for name, floored in rate_against_floor(real_rhythm, real_y, synthetic_rhythm, all_synthetic_y[keep],
                                            meta["classes"]).items():
        heart_rate[name]["against_floor"] = floored
    report = {
        "dataset": meta["dataset"],
        "generator": metadata(synthetic_h5[0])["generator"],
        "classes": meta["classes"],
        "reference": "+".join(REFERENCE),
        "n_real": {"train": int(len(train["x"])), "reference": int(len(heldout_x))},
        "n_synthetic": int(len(all_synthetic_y)),
        "n_synthetic_measured": int(len(measured)),  # the per-class sample the closeness measures read
        "draws": {"embedding_and_signal": DRAWS, "cnn": CNN_DRAWS},
        "by_seed": by_seed,
        "signals": signals,
        "privacy": privacy_measures(synthetic_x, train["x"], heldout_x, meta["fs"],
                                    copies=copies_of_training(synthetic_h5, meta, train["x"])),
        "heart_rate_bpm": heart_rate,
        "rhythm": {"real": rhythm_by_class(real_rhythm, real_y, meta["classes"]),
                   "synthetic": rhythm_by_class(synthetic_rhythm, all_synthetic_y[keep], meta["classes"])},
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
    train_y, synthetic_y = load_labels(real_h5, "train"), synthetic_labels(synthetic_h5, meta)
    model = load_classifier(real_model)
    rng = np.random.default_rng(0)
    keep_real = np.sort(rng.permutation(len(train_y))[:max_records])
    keep_synthetic = np.sort(rng.permutation(len(synthetic_y))[:max_records])
    real_embedding = embed(model, load_rows(real_h5, "train", keep_real, normalised=True))
    synthetic_embedding = embed(model, load_synthetic(synthetic_h5, meta, rows=keep_synthetic)[0])
    pca = PCA(n_components=2).fit(real_embedding)
    points = np.concatenate([pca.transform(real_embedding), pca.transform(synthetic_embedding)])
    labels = np.concatenate([train_y[keep_real], synthetic_y[keep_synthetic]])
    return pd.DataFrame({
        "pc1": points[:, 0],
        "pc2": points[:, 1],
        "source": ["real"] * len(keep_real) + ["synthetic"] * len(keep_synthetic),
        "class": pd.Categorical.from_codes(labels, categories=meta["classes"]),
    })


def synthetic_rhythms(real_h5: Path, synthetic_h5: Sequence[Path], max_per_class: int) -> pd.DataFrame:
    """The rhythm of at most `max_per_class` synthetic records per class (a seeded draw from the
    files concatenated in order): columns record (its index there), label and the rhythm columns.

    Read once per dataset and generator (`results/quality/{dataset}/synthetic_rhythm/`) for its
    quality and closeness reports, which judge the same records; the cap bounds the rhythm
    reader's time (~60 ms a record) whatever the sampling ratio.
    """
    meta = metadata(real_h5)
    y = synthetic_labels(synthetic_h5, meta)
    keep = _per_class_subset(y, max_per_class, np.random.default_rng(0))
    x, _ = load_synthetic(synthetic_h5, meta, rows=keep)  # those records only, not the set
    rhythm = analyse_records(to_millivolts(x, meta), meta["fs"], meta["leads"])
    return rhythm.assign(record=keep, label=y[keep])[["record", "label", *COLUMNS]]


def read_synthetic_rhythms(path: Path, synthetic_y: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """(record indices, their rhythm rows) of a `synthetic_rhythms` table, checked against the labels
    of the synthetic set it was read from."""
    table = pd.read_csv(path)
    keep = table["record"].to_numpy(int)
    if len(keep) and (keep.max() >= len(synthetic_y) or not np.array_equal(table["label"], synthetic_y[keep])):
        raise PipelineError(f"{path}: its records are not those of the synthetic set it belongs to; delete it and rerun")
    return keep, typed_rhythm(table)


def write_generator_quality(real_h5: Path, synthetic_h5: Path, real_rhythm_csv: Path, synthetic_rhythm_csv: Path,
                            out_json: Path) -> dict:
    """Per-class quality of one generator's synthetic set against the real records (held-out: validation
    and test splits; and training), as `synthecg.evaluation.quality.generator_quality` measures it, in mV.

    `real_rhythm_csv` is the dataset's `split_rhythms` table; the records judged are those of
    `synthetic_rhythm_csv` (`synthetic_rhythms` of this one file).
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
    synthetic_y = load_labels(synthetic_h5, "synthetic")
    keep, synthetic_rhythm = read_synthetic_rhythms(synthetic_rhythm_csv, synthetic_y)
    report = generator_quality(load_rows(synthetic_h5, "synthetic", keep), synthetic_y[keep], reference, meta["classes"],
                               meta["fs"], meta["leads"], synthetic_rhythm=synthetic_rhythm)
    report = {"dataset": meta["dataset"], "generator": metadata(synthetic_h5)["generator"], **report}
    write_json_atomically(report, out_json)
    return report
