"""The study's tables: every classifier run and closeness report, summarised as mean ± std over seeds.

Runs are read into one long table (one row per run and metric); the summaries group it and
pivot datasets × metrics into columns. A metric a run reports as missing (e.g. AUROC with one
class in the test split) is left out of its cell's mean, and `n` says how many seeds counted.

Classifier cells also carry a 95 % bootstrap interval of macro-F1 and macro-AUROC, recomputed
from the runs' stored test predictions on resamples shared by every run of a dataset
(synthecg.evaluation.statistics): with one seed it is that run's interval, with several the
interval of the seed mean, the test records resampled jointly across seeds. The comparisons
table tests paired differences over seeds and test records (statistics.paired_test); comparisons
named in the pre-registered family (experiments.primary_comparisons) are Holm-corrected over that
family per metric, every other one is exploratory, with its unadjusted p.

Runs on the merged set are also scored on each source's part of its test split (`by_source`):
the merged-vs-single table sets those scores beside the single-dataset runs of the same cell,
scored on the same test records, and tests the paired difference (its own Holm family).

The closeness (fidelity) table has one row per dataset, generator and measure, each beside its
floor (what real records score against real records) and the side that is better.
"""

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synthecg.errors import PipelineError
from synthecg.evaluation.statistics import (
    MACRO_METRICS,
    N_RESAMPLES,
    SharedResamples,
    holm,
    paired_test,
    verdict,
)
from synthecg.io import write_csv_atomically, write_text_atomically

CLASSIFIER_METRICS = ["macro_f1", "macro_auroc", "accuracy", "balanced_accuracy"]
MARKDOWN_CLASSIFIER_METRICS = ["macro_f1", "macro_auroc"]  # the CSV has them all; Markdown stays readable
# Closeness measures in table order, with the side that is better (synthecg.evaluation.fidelity;
# docs/closeness.md). Per-class ones are listed as "<measure>/<class>".
FIDELITY_BETTER = {
    "fid": "lower",
    "mmd2": "lower",
    "linear_probe_score": "lower",
    "cnn_score": "lower",
    "tstr_macro_f1": "higher",
    "trts_macro_f1": "higher",
    "amplitude_difference": "lower",
    "log_spectrum_difference": "lower",
    "heart_rate_wasserstein_bpm": "lower",
    "detectable_rhythm_gap": "higher",
    "exact_copies": "lower",
    "dcr_share": "lower",  # above the null: nearer the training records than chance
    "dcr_tail_share": "lower",  # above the null: the nearest synthetic records hug training records
}
FIDELITY_METRICS = list(FIDELITY_BETTER)
COUNT_METRICS = {"exact_copies"}  # shown as whole numbers
SIGNIFICANCE = 0.05
MIN_VERDICT_RECORDS = 10  # per side: below, a floor's range moves in steps too coarse to judge by (1/5 of a share at 5)
REAL_ONLY = "real only"
SCRATCH = "scratch"  # random initialisation, trained on the fine-tuning runs' real subset
CLASSICAL = "classical"  # augment's generator-free control: jitter, scaling, shift, wander on real records
SHUFFLED = "shuffled labels"  # the real training split with permuted labels: what learning nothing scores
MAJORITY = "majority class"  # every test record predicted as the largest training class
COMPARISONS = ["real only vs shuffled labels", "real only vs majority class", "augment vs real only",
               "augment vs classical", "balance vs real only", "finetune vs scratch", "curated vs uncurated",
               "generator vs generator (TSTR)"]
CURATED = "-curated"  # a generator's curated set: its records whose rhythm fits their class (experiments.curated)
REAL_RUN = ("real", "none", "all")
SHUFFLED_RUN = ("shuffled", "none", "all")
MAJORITY_RUN = ("majority", "none", "all")
MERGED_VS_SINGLE = "merged vs single"
# What the seeds of a cell vary: stated under every classifier table; edit here when seeds vary more.
def seed_variance(generator_replicates: int) -> str:
    """What n counts, given how many generator replicates the runs used (generators.replicates)."""
    shared = ("a seed changes the classifier's initialisation, batch order and crops, and which synthetic "
              "records (augmentation) or real subset (fine-tuning, scratch) it draws")
    if generator_replicates > 1:
        return (f"n counts seeds: {shared}; seeds also pair with {generator_replicates} independently trained and "
                "sampled generator replicates (seed s uses replicate s mod replicates), so the spread includes the "
                "generators' own.")
    return f"n counts classifier seeds: {shared}; every seed uses the same trained generator and synthetic set."


SEED_VARIANCE = seed_variance(1)
INTERVAL_NOTE = (
    f"[low, high]: 95 % stratified bootstrap interval over test records (percentile, {N_RESAMPLES} resamples); "
    "with n = 1 that run's, with n > 1 that of the seed mean, test records resampled jointly across seeds. "
    "It shows test-set sampling only, not seed-to-seed variation (± std)."
)
_RUN = re.compile(
    r"(?P<dataset>[^/]+)/(?P<experiment>[^/]+)/(?P<generator>[^/]+)/(?P<setting>[^/]+)/seed(?P<seed>\d+)/metrics\.json$"
)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PipelineError(f"{path}: cannot read the JSON report ({error})") from None


@dataclass
class ClassifierRuns:
    """What the tables need of every classifier run, from one pass over the metrics.json files."""

    runs: pd.DataFrame  # one row per run and metric (collect_runs)
    per_class: pd.DataFrame  # one row per run, class and measure (F1, recall)
    resamples: SharedResamples  # every run's resampled macro scores, for intervals of means and differences
    generator_replicates: int = 1  # distinct generator replicates the runs drew synthetic records from
    # Merged-set runs scored on one source's part of the test split: the columns of `runs`, with
    # `dataset` the source, `trained_on` the merged set and `run` ending in "@<source>".
    merged_parts: pd.DataFrame | None = None
    # Merged-set runs left out of merged_parts: their parts' records cannot be shown to be the
    # single runs' (scored before test records were recorded); path -> why.
    unverified_merged: dict[str, str] | None = None
    # run -> training records per class it was trained on (curated arms that fell short show here);
    # None for a run that had nothing to train on
    train_counts: dict[str, dict[str, int] | None] | None = None


def read_runs(paths: Iterable[Path]) -> ClassifierRuns:
    rows, per_class, resamples, replicates, train_counts = [], [], SharedResamples(), set(), {}
    merged, digests = [], {}  # merged runs, read after the rest; dataset -> test_records_sha256 of its runs
    for path in paths:
        match = _RUN.search(Path(path).as_posix())
        if not match:
            raise PipelineError(f"{path}: not a classifier run (expected .../dataset/experiment/generator/setting/seedN/metrics.json)")
        keys = match.groupdict()
        run = match.group(0).removesuffix("/metrics.json")  # e.g. ptbxl/real/none/all/seed0
        metrics = read_json(path)
        if metrics.get("generator_replicate") is not None:
            replicates.add(metrics["generator_replicate"])
        if metrics.get("not_trained"):
            train_counts[run] = None  # nothing to train on (an empty curated set): no scores at all
        elif metrics.get("train_records_per_class") is not None:
            train_counts[run] = metrics["train_records_per_class"]
        for metric in CLASSIFIER_METRICS:
            value = metrics.get(metric)
            rows.append({**keys, "run": run, "metric": metric, "value": np.nan if value is None else float(value)})
        for measure in ("f1", "recall"):
            for name, value in (metrics.get(f"per_class_{measure}") or {}).items():
                per_class.append({**keys, "class": name, "measure": measure,
                                  "value": np.nan if value is None else float(value)})
        if metrics.get("test_labels") is not None and metrics.get("test_probabilities") is not None:
            try:
                resamples.add(keys["dataset"], run, metrics["test_labels"], metrics["test_probabilities"],
                              metrics.get("resampled"))
            except ValueError:
                raise PipelineError(f"{path}: its test records differ from those of the dataset's other runs; "
                                    "rerun the runs scored on an older split") from None
        if keys["experiment"] == "real" and metrics.get("majority_class_baseline"):
            rows += _majority_rows(keys, run, metrics, resamples)
        digests.setdefault(keys["dataset"], set()).add(metrics.get("test_records_sha256"))
        if metrics.get("by_source"):
            merged.append((path, keys, run, metrics))
    parts, unverified = [], {}
    for path, keys, run, metrics in merged:
        why = _unverified_part(path, metrics, digests)
        if why:
            unverified[str(path)] = why
        else:
            parts += _merged_part_rows(path, keys, run, metrics, resamples)
    per_class = pd.DataFrame(per_class, columns=["dataset", "experiment", "generator", "setting", "seed", "class",
                                                 "measure", "value"])
    return ClassifierRuns(_run_frame(rows), per_class, resamples, max(1, len(replicates)),
                          _run_frame(parts, ["trained_on"]), unverified, train_counts)


def curation_shortfalls(train_counts: dict[str, dict[str, int] | None]) -> list[str]:
    """Per curated run: the classes it trained on fewer records of than the same cell and seed
    with the generator's uncurated set, because too few synthetic records fitted their class (a
    curated set is never topped up): 'ptbxl/augment/diffwave-curated/r1/seed0: SB 12 fewer'; or
    that it was not trained at all (no record of its set fitted)."""
    notes = []
    for run, counts in sorted(train_counts.items()):
        dataset, experiment, generator, *rest = run.split("/")
        if not generator.endswith(CURATED):
            continue
        if counts is None:
            notes.append(f"{run}: not trained, no record fitted")
            continue
        uncurated = train_counts.get("/".join([dataset, experiment, generator.removesuffix(CURATED), *rest])) or {}
        short = {name: uncurated[name] - n for name, n in counts.items() if uncurated and uncurated.get(name, 0) > n}
        if short:
            notes.append(f"{run}: " + ", ".join(f"{name} {gap} fewer" for name, gap in short.items()))
    return notes


def _unverified_part(path: Path, metrics: dict, digests: dict[str, set]) -> str | None:
    """Why a merged run's parts cannot be compared with the single-dataset runs, or None if they can.
    Each part must hold exactly the records of that dataset's runs, in their order (by digest); a
    part that holds others stops the tables."""
    if metrics.get("test_sources") is None:
        return "scored before each test record's source was recorded"
    for source, scores in metrics["by_source"].items():
        if source not in digests:
            continue  # no single-dataset run of this source: nothing to compare with
        part = scores.get("test_records_sha256")
        if part is None or None in digests[source]:
            return f"its {source} part cannot be checked against the {source} runs: scored before test records were recorded"
        if digests[source] != {part}:
            raise PipelineError(f"{path}: its {source} test records differ from those of the {source} runs; "
                                f"rebuild the merged set from the current {source} data and rerun both")
    return None


def _run_frame(rows: list[dict], extra: list[str] = ()) -> pd.DataFrame:
    runs = pd.DataFrame(rows, columns=["dataset", "experiment", "generator", "setting", "seed", "run", "metric",
                                       "value", *extra])
    runs["seed"] = runs["seed"].astype(int)
    # The setting's number (augmentation ratio or fine-tuning fraction) as a column of its own.
    runs["level"] = _level(runs["setting"])
    return runs


def _merged_part_rows(path: Path, keys: dict, run: str, metrics: dict, resamples: SharedResamples) -> list[dict]:
    """A merged-set run's scores on each source's part of its test split, as runs of that source
    (`trained_on` the merged set); its predictions on the part join the source's resamples, which
    holds only because the part is the source's own test split, record for record (_unverified_part)."""
    rows = []
    for source, scores in metrics["by_source"].items():
        part_run = f"{run}@{source}"
        rows += [{**keys, "dataset": source, "trained_on": keys["dataset"], "run": part_run, "metric": metric,
                  "value": np.nan if scores.get(metric) is None else float(scores[metric])}
                 for metric in CLASSIFIER_METRICS]
        if metrics.get("test_labels") is None or metrics.get("test_probabilities") is None:
            continue  # no stored predictions: means only, no interval
        part = np.asarray(metrics["test_sources"]) == source
        try:
            resamples.add(source, part_run, np.asarray(metrics["test_labels"])[part],
                          np.asarray(metrics["test_probabilities"])[part], scores.get("resampled"))
        except ValueError:
            raise PipelineError(f"{path}: its {source} test records differ from those of the {source} runs; "
                                f"rebuild the merged set from the current {source} data") from None
    return rows


def _majority_rows(keys: dict, run: str, metrics: dict, resamples: SharedResamples) -> list[dict]:
    """The majority-class floor a real run reports, as a run of its own (experiment `majority`):
    every test record predicted as the largest class of that run's training records."""
    keys = {**keys, "experiment": MAJORITY_RUN[0]}
    run = run.replace("/real/", f"/{MAJORITY_RUN[0]}/", 1)
    floor = metrics["majority_class_baseline"]
    counts = [metrics["train_records_per_class"][name] for name in metrics["classes"]]
    if metrics.get("test_labels") is not None:
        probabilities = np.zeros((len(metrics["test_labels"]), len(counts)))
        probabilities[:, int(np.argmax(counts))] = 1.0
        resamples.add(keys["dataset"], run, metrics["test_labels"], probabilities)
    return [{**keys, "run": run, "metric": metric, "value": np.nan if floor.get(metric) is None else float(floor[metric])}
            for metric in CLASSIFIER_METRICS]


def collect_runs(paths: Iterable[Path]) -> pd.DataFrame:
    """Long table of classifier runs: dataset, experiment, generator, setting, seed, run, metric, value, level."""
    return read_runs(paths).runs


def collect_fidelity(paths: Iterable[Path]) -> pd.DataFrame:
    """Long table of closeness reports, one row per computed value: dataset, generator, metric, seed
    (NaN for measures of the signals, computed once), value, floor, floor_low, floor_high, p, records
    (N per side). A measure a report could not compute has a NaN value."""
    rows = []
    for path in paths:
        report = read_json(path)
        keys = {"dataset": report["dataset"], "generator": report["generator"]}
        for seed, scores in report["by_seed"].items():
            rows += [_fidelity_row(keys, metric, scores.get(metric), int(seed)) for metric in FIDELITY_METRICS
                     if metric in scores]
        once = {**(report.get("signals") or {}), **(report.get("privacy") or {})}
        for name, entry in (report.get("heart_rate_bpm") or {}).items():
            floored = entry.get("against_floor") or {}
            once[f"heart_rate_wasserstein_bpm/{name}"] = floored.get("wasserstein_bpm")
            once[f"detectable_rhythm_gap/{name}"] = floored.get("detectable_gap")
        rows += [_fidelity_row(keys, metric, value, np.nan) for metric, value in once.items()
                 if metric.split("/")[0] in FIDELITY_BETTER]
    columns = ["dataset", "generator", "metric", "seed", "value", "floor", "floor_low", "floor_high", "p", "records"]
    return pd.DataFrame(rows, columns=columns)


def _fidelity_row(keys: dict, metric: str, entry: dict | None, seed: float) -> dict:
    entry = entry or {}
    low, high = entry.get("floor_interval") or (None, None)
    number = lambda value: np.nan if value is None else float(value)  # noqa: E731
    return {**keys, "metric": metric, "seed": seed, "value": number(entry.get("value")),
            "floor": number(entry.get("floor")), "floor_low": number(low), "floor_high": number(high),
            "p": number(entry.get("p")), "records": number(entry.get("n"))}


def mean_std(long: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, sample std (NaN with one value) and count of `value` per group; missing values skipped."""
    grouped = long.groupby(by, sort=False, dropna=False)["value"]
    return grouped.agg(mean="mean", std="std", n="count").reset_index()


def summarise(long: pd.DataFrame, by: list[str], resamples: SharedResamples | None = None) -> pd.DataFrame:
    """mean_std plus `low`, `high`: the bootstrap interval of each macro-F1 and macro-AUROC cell over
    the runs that reported the metric; NaN where a run has no stored predictions. `by` holds `metric`."""
    summary = mean_std(long, by).assign(low=np.nan, high=np.nan)
    if resamples is None:
        return summary
    counted = long[long["value"].notna() & long["metric"].isin(MACRO_METRICS)]
    members = counted.groupby(by, sort=False, dropna=False)["run"].agg(list).rename("runs").reset_index()
    summary = summary.merge(members, on=by, how="left")  # null keys (a balance row's ratio) match each other
    for row, (metric, runs) in enumerate(zip(summary["metric"], summary["runs"])):
        interval = resamples.interval(metric, runs) if isinstance(runs, list) else None
        if interval is not None:
            summary.loc[row, ["low", "high"]] = interval
    return summary.drop(columns="runs")


def augmentation_summary(runs: pd.DataFrame, resamples: SharedResamples | None = None) -> pd.DataFrame:
    """Rows: real only, its floors (shuffled labels, majority class; ratio –), then each generator
    (and the classical control) at each ratio, then the balance runs (ratio –: each class is topped up to the majority count); dataset, metric, mean, std, n."""
    real = runs[runs.experiment == "real"].assign(generator=REAL_ONLY, level=0.0)
    floors = [runs[runs.experiment == SHUFFLED_RUN[0]].assign(generator=SHUFFLED, level=np.nan),
              runs[runs.experiment == MAJORITY_RUN[0]].assign(generator=MAJORITY, level=np.nan)]
    augment = runs[runs.experiment == "augment"]
    balance = runs[runs.experiment == "balance"]
    balance = balance.assign(generator=balance["generator"] + " (balance)", level=np.nan)
    return summarise(pd.concat([real, *floors, augment, balance]), ["generator", "level", "dataset", "metric"],
                     resamples).rename(columns={"level": "ratio"})


def transfer_summary(runs: pd.DataFrame, resamples: SharedResamples | None = None) -> pd.DataFrame:
    """Rows: each generator at each real fraction, the scratch control (no pretraining, same real
    subset) at each fraction, and the real-only classifier as fraction 1 reference."""
    real = runs[runs.experiment == "real"].assign(generator=REAL_ONLY, level=1.0)
    finetune = runs[runs.experiment == "finetune"]
    scratch = runs[runs.experiment == "scratch"].assign(generator=SCRATCH)
    return summarise(pd.concat([finetune, scratch, real]), ["generator", "level", "dataset", "metric"],
                     resamples).rename(columns={"level": "fraction"})


def _label(experiment: str, generator: str, setting: str) -> str:
    """How a comparison names one cell of the grid."""
    if (experiment, generator, setting) == REAL_RUN:
        return REAL_ONLY
    if (experiment, generator, setting) == SHUFFLED_RUN:
        return SHUFFLED
    if (experiment, generator, setting) == MAJORITY_RUN:
        return MAJORITY
    if experiment == "scratch":
        return f"{SCRATCH} {setting}"
    if experiment == "synthetic":
        return f"{generator} synthetic only"
    return f"{generator} {'balance' if experiment == 'balance' else setting}"


def comparison_grid(runs: pd.DataFrame) -> list[tuple[str, str, tuple, tuple]]:
    """(dataset, comparison, arm, baseline) for every comparison the runs allow; arm and baseline
    are (experiment, generator, setting). Generators are compared with each other only without
    real training data (TSTR), where no reference is shared; augmentation ranks each generator
    against real only and the classical control instead, which keeps the family small."""
    grid = []
    for dataset, part in runs.groupby("dataset", sort=False):
        found = []
        cells = list(dict.fromkeys(part[["experiment", "generator", "setting"]].itertuples(index=False, name=None)))
        present = set(cells)
        for floor, name in ((SHUFFLED_RUN, "real only vs shuffled labels"), (MAJORITY_RUN, "real only vs majority class")):
            if REAL_RUN in present and floor in present:
                found.append((name, REAL_RUN, floor))
        for cell in cells:
            experiment, generator, setting = cell
            if experiment == "augment" and REAL_RUN in present:
                found.append(("augment vs real only", cell, REAL_RUN))
            if experiment == "augment" and generator != CLASSICAL and ("augment", CLASSICAL, setting) in present:
                found.append(("augment vs classical", cell, ("augment", CLASSICAL, setting)))
            if experiment == "balance" and REAL_RUN in present:
                found.append(("balance vs real only", cell, REAL_RUN))
            if experiment == "finetune" and ("scratch", "none", setting) in present:
                found.append(("finetune vs scratch", cell, ("scratch", "none", setting)))
            uncurated = (experiment, generator.removesuffix(CURATED), setting)
            if generator.endswith(CURATED) and uncurated in present:
                found.append(("curated vs uncurated", cell, uncurated))
        # A curated set is compared with its own uncurated set above, not with every other generator.
        tstr = [cell for cell in cells if cell[0] == "synthetic" and not cell[1].endswith(CURATED)]
        found += [("generator vs generator (TSTR)", a, b) for i, a in enumerate(tstr) for b in tstr[i + 1:]]
        found.sort(key=lambda row: COMPARISONS.index(row[0]))  # stable: cells keep their order within a kind
        grid += [(dataset, *row) for row in found]
    return grid


def merged_grid(runs: pd.DataFrame, parts: pd.DataFrame) -> list[tuple[str, str, tuple, tuple]]:
    """(source, "merged vs single", cell, cell) for every cell run both on the merged set and on the
    source alone; label controls (shuffled, majority) are floors, not arms, and are left out."""
    single = set(runs[["dataset", "experiment", "generator", "setting"]].itertuples(index=False, name=None))
    cells = dict.fromkeys(parts[["dataset", "experiment", "generator", "setting"]].itertuples(index=False, name=None))
    return [(dataset, MERGED_VS_SINGLE, cell, cell) for dataset, *cell in cells
            if (dataset, *cell) in single and tuple(cell) not in (SHUFFLED_RUN, MAJORITY_RUN)]


def comparisons(runs: pd.DataFrame, resamples: SharedResamples | None = None,
                primary: Sequence[str] = ()) -> pd.DataFrame:
    """Arm minus baseline per comparison and macro metric, paired by seed: n pairs, mean and std of
    the differences, the bootstrap interval of the mean difference (test records resampled jointly),
    the paired test's p over seeds and test records (statistics.paired_test; p_seeds: the t-test over
    seeds alone), and a verdict. `primary`: the pre-registered family, as '<arm> vs <baseline>' the
    way the table names them (e.g. 'diffwave r0.5 vs real only'), on every dataset; Holm's adjusted
    p runs over its comparisons of each metric and the verdict follows it. Every other comparison is
    exploratory (family column): no p_holm, its verdict read from the unadjusted p and labelled so."""
    return paired_differences(runs, runs, comparison_grid(runs), resamples, primary)


def pair_name(arm: str, baseline: str) -> str:
    """How experiments.primary_comparisons names a comparison: 'diffwave r0.5 vs real only'."""
    return f"{arm} vs {baseline}"


def paired_differences(arm_runs: pd.DataFrame, baseline_runs: pd.DataFrame, grid, resamples=None,
                       primary: Sequence[str] | None = None) -> pd.DataFrame:
    """`comparisons` over a given grid of (dataset, comparison, arm cell, baseline cell), the arm
    cells looked up in `arm_runs` (for merged vs single: the merged model's parts) and the baseline
    cells in `baseline_runs`. With `primary` None the whole grid is one Holm family per metric (the
    merged-vs-single table); otherwise only the comparisons it names are (comparisons)."""
    index = ["dataset", "experiment", "generator", "setting", "metric", "seed"]
    arms, cells = (frame.set_index(index).sort_index() for frame in (arm_runs, baseline_runs))
    rows = []
    for metric in MACRO_METRICS:
        for dataset, comparison, arm, baseline in grid:
            pairs = pd.concat([frame.loc[(dataset, *side, metric), ["value", "run"]]
                               for frame, side in ((arms, arm), (cells, baseline))],
                              axis=1, join="inner", keys=["arm", "baseline"]).dropna()
            arm_keys, baseline_keys = list(pairs["arm", "run"]), list(pairs["baseline", "run"])
            resampled = ((resamples.resampled(metric, arm_keys), resamples.resampled(metric, baseline_keys))
                         if resamples is not None else (None, None))
            if any(side is None for side in resampled):
                resampled = (None, None)  # a run without stored predictions: the test over seeds alone
            test = paired_test(pairs["arm", "value"], pairs["baseline", "value"], *resampled)
            interval = (resamples.difference_interval(metric, arm_keys, baseline_keys)
                        if resamples is not None else None) or [np.nan, np.nan]
            rows.append({"dataset": dataset, "metric": metric, "comparison": comparison, "arm": _label(*arm),
                         "baseline": _label(*baseline), "generator": arm[1], "level": _level(arm[2]), **test,
                         "low": interval[0], "high": interval[1]})
    table = pd.DataFrame(rows, columns=["dataset", "metric", "comparison", "arm", "baseline", "generator", "level", "n",
                                        "mean_difference", "std_difference", "low", "high", "se", "df", "p",
                                        "p_seeds", "test"])
    if primary is None:
        in_family = np.ones(len(table), bool)
    else:
        in_family = np.array([pair_name(a, b) in set(primary) for a, b in zip(table["arm"], table["baseline"])], bool)
    table.insert(2, "family", np.where(in_family, "primary", "exploratory"))
    table["p_holm"] = np.nan
    for metric, rows_of_metric in table[in_family].groupby("metric").groups.items():
        table.loc[rows_of_metric, "p_holm"] = holm(table.loc[rows_of_metric, "p"])
    table["verdict"] = [verdict(d, n, p_holm if kept else p, SIGNIFICANCE, exploratory=not kept)
                        for d, n, p, p_holm, kept in zip(table["mean_difference"], table["n"], table["p"],
                                                         table["p_holm"], in_family)]
    return table


def merged_summary(runs: pd.DataFrame, parts: pd.DataFrame, resamples: SharedResamples | None = None) -> pd.DataFrame:
    """Per source and cell run both ways: the source's own model and the merged model on the same
    test records (mean, std, n, interval each), with the paired difference, its test and verdict."""
    comparison_cells = merged_grid(runs, parts)
    compared = paired_differences(parts, runs, comparison_cells, resamples)
    by = ["dataset", "experiment", "generator", "setting", "metric"]
    grid = {(dataset, *cell) for dataset, _, cell, _ in comparison_cells}
    def shared(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[np.array([key in grid for key in frame[by[:-1]].itertuples(index=False, name=None)], bool)]

    single, merged = (summarise(shared(frame), by, resamples) for frame in (runs, parts))
    table = single.merge(merged, on=by, suffixes=("_single", "_merged"))
    table = table[table.metric.isin(MACRO_METRICS)].reset_index(drop=True)
    table["arm"] = pd.Series([_label(*cell) for cell in table[by[1:4]].itertuples(index=False, name=None)],
                             index=table.index, dtype=object)
    table = table[table[["mean_single", "mean_merged"]].notna().any(axis=1)]  # e.g. AUROC on a one-record part
    datasets = list(dict.fromkeys(runs["dataset"]))
    order = ["real", "augment", "balance", "synthetic", "finetune", "scratch"]
    table = table.assign(_d=table["dataset"].map(datasets.index), _m=table["metric"].map(MACRO_METRICS.index),
                         _e=table["experiment"].map(lambda e: order.index(e) if e in order else len(order)),
                         _l=table["setting"].map(_level))
    table = table.sort_values(["_d", "_m", "_e", "generator", "_l"]).drop(columns=["_d", "_m", "_e", "_l"])
    shown = ["n", "mean_difference", "std_difference", "low", "high", "se", "df", "p", "p_seeds", "test", "p_holm",
             "verdict"]
    return table.reset_index(drop=True).merge(compared[["dataset", "metric", "arm", *shown]].rename(columns={"low": "low_difference",
                                                                                      "high": "high_difference"}),
                       on=["dataset", "metric", "arm"], how="left")


def merged_markdown(table: pd.DataFrame, digits: int = 3, seed_note: str = SEED_VARIANCE,
                    unverified: dict[str, str] | None = None) -> str:
    left_out = ""
    if unverified:
        left_out = (f"\nMerged-set runs left out ({len(unverified)}), their test records not shown to be the single "
                    "runs': " + "; ".join(f"{path}: {why}" for path, why in sorted(unverified.items())) +
                    ". Rerun them (and the single-dataset runs) to compare.\n")
    if table.empty:
        return ("no merged-vs-single comparison: the runs hold no cell scored both on a dataset and on its part "
                "of the merged set\n" + left_out)
    shown = pd.DataFrame({
        "test records": table["dataset"], "metric": table["metric"], "cell": table["arm"],
        "single-dataset model": [format_cell(*row, digits=digits) for row in zip(
            table["mean_single"], table["std_single"], table["n_single"], table["low_single"], table["high_single"])],
        "merged model": [format_cell(*row, digits=digits) for row in zip(
            table["mean_merged"], table["std_merged"], table["n_merged"], table["low_merged"], table["high_merged"])],
        "merged minus single": [format_cell(*row, digits=digits) for row in zip(
            table["mean_difference"], table["std_difference"], table["n"], table["low_difference"],
            table["high_difference"])],
        "p": [_format_p(p) for p in table["p"]], "p_holm": [_format_p(p) for p in table["p_holm"]],
        "verdict": table["verdict"],
    })
    note = ("Both models are scored on the same records: the test split of the dataset named on the left, which "
            "is that dataset's part of the merged set's test split. Cells: mean ± std over seeds [95 % bootstrap "
            "interval over test records] n, each over its own seeds; the difference is over the seeds both "
            "have, paired. p: paired test over seeds and test records (as in the comparisons table); "
            "p_holm: Holm-adjusted across this table's comparisons of the metric (a family of its own, apart from "
            "the comparisons table). Only a Holm-adjusted p < 0.05 counts as a difference. A cell's settings "
            "mean the same on both sides, not the same amount of data: fine-tuning and scratch at fraction f "
            "take f of the merged training split (more real records than f of one dataset), and augmentation "
            "and balance draw synthetic records from both datasets' generators. " + seed_note)
    return plain_markdown(shown) + f"\n{note}\n" + left_out


def _level(setting):
    """The number in a setting (augmentation ratio r0.5, fine-tuning fraction f0.1); NaN for `all`.
    A string or a Series of them."""
    if isinstance(setting, pd.Series):
        return pd.to_numeric(setting.str.lstrip("rf"), errors="coerce")
    return pd.to_numeric(setting.lstrip("rf"), errors="coerce")


def fidelity_summary(fidelity: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset, generator and measure: mean, std and n over seeds (a measure of the
    signals has no seeds: n = 0, no std), the floor and its interval (means over seeds), the
    largest p over seeds, N per side, the better side, how far the value lies beyond the floor
    (`excess`, module note) and the verdict."""
    by = ["dataset", "generator", "metric"]
    grouped = fidelity.groupby(by, sort=False)
    summary = grouped["value"].agg(mean="mean", std="std").reset_index()
    summary["n"] = (fidelity["seed"].notna() & fidelity["value"].notna()).groupby(
        [fidelity[key] for key in by], sort=False).sum().to_numpy()  # seeds that measured it
    summary = summary.join(grouped[["floor", "floor_low", "floor_high", "records"]].mean().reset_index(drop=True))
    summary["p"] = grouped["p"].max().to_numpy()
    summary["better"] = [FIDELITY_BETTER[m.split("/")[0]] for m in summary["metric"]]
    summary["excess"] = [_excess(*row) for row in summary[["mean", "floor", "floor_low", "floor_high", "better"]]
                         .itertuples(index=False)]
    summary["verdict"] = [_fidelity_verdict(e, p, r) for e, p, r in zip(summary["excess"], summary["p"],
                                                                        summary["records"])]
    return summary


def _excess(value, floor, low, high, better) -> float:
    """How far a value lies on the worse side of its floor, in units of the floor interval's half
    on that side: 0 at the floor, 1 at the interval's edge, below 0 better than real; NaN without a floor."""
    if pd.isna(value) or pd.isna(floor):
        return np.nan
    gap = value - floor if better == "lower" else floor - value
    width = (high - floor if better == "lower" else floor - low) if pd.notna(low) and pd.notna(high) else 0.0
    if width > 0:
        return float(gap / width)
    return 0.0 if gap <= 0 else np.inf  # no spread (exact copies: floor 0): any excess is beyond it


def _fidelity_verdict(excess: float, p: float, records: float) -> str:
    """Beyond the floor where a permutation test says so (p < 0.05) or, without a test, where the
    value lies outside the floor's interval on the worse side; no verdict with too few records."""
    if pd.notna(records) and records < MIN_VERDICT_RECORDS:
        return f"N < {MIN_VERDICT_RECORDS}"
    if pd.notna(p):
        return "beyond floor" if p < SIGNIFICANCE else "within floor"
    if pd.isna(excess):
        return "–"
    return "beyond floor" if excess > 1 else "within floor"


def fidelity_markdown(summary: pd.DataFrame, digits: int = 3) -> str:
    """One row per dataset, generator and measure: value (± std over seeds), floor [95 % range], p,
    N per side, seeds, the better side and the verdict."""
    if summary.empty:
        return "no closeness report\n"
    number = lambda v: "–" if pd.isna(v) else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"  # noqa: E731
    shown = pd.DataFrame({
        "dataset": summary["dataset"], "generator": summary["generator"], "measure": summary["metric"],
        "better": summary["better"],
        "value": [f"{m:.0f}" if metric in COUNT_METRICS and pd.notna(m) else
                  format_mean_std(m, s if n > 1 else np.nan, digits)
                  for metric, m, s, n in zip(summary["metric"], summary["mean"], summary["std"], summary["n"])],
        "floor [95 % range]": [number(f) + ("" if pd.isna(lo) else f" [{number(lo)}, {number(hi)}]")
                               for f, lo, hi in zip(summary["floor"], summary["floor_low"], summary["floor_high"])],
        "p": [_format_p(p) for p in summary["p"]],
        "N": ["–" if pd.isna(r) else str(int(r)) for r in summary["records"]],
        "seeds": [str(n) if n else "–" for n in summary["n"]],
        "verdict": summary["verdict"],
    })
    note = ("value: mean ± std over seeds (seeds: how many; – for measures of the signals, computed once). floor: the "
            "same measure for two disjoint halves of real records at the same N per side (TSTR, TRTS: TRTR, the "
            "real classifier on the real test split, with its bootstrap interval; dcr_*: the permutation null's "
            "median and central 95 %), what a perfect generator scores. verdict: beyond floor where p < 0.05 "
            "(one-sided permutation test) or, without a test, where the value lies outside the floor's range on "
            "the worse side; none below N = " + str(MIN_VERDICT_RECORDS) + " per side.")
    return plain_markdown(shown) + f"\n{note}\n"


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """'0.812 ± 0.013'; only the mean when there is one seed; '–' when nothing was measured."""
    if pd.isna(mean):
        return "–"
    text = f"{mean:.{digits}g}" if abs(mean) >= 1000 else f"{mean:.{digits}f}"
    return text if pd.isna(std) else f"{text} ± {std:.{digits}f}"


def format_cell(mean: float, std: float, n: int, low: float = np.nan, high: float = np.nan, digits: int = 3) -> str:
    """'0.812 ± 0.013 [0.790, 0.834] n=3': mean ± std, the interval where there is one, and the count."""
    if pd.isna(mean):
        return "–"
    interval = "" if pd.isna(low) else f" [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{format_mean_std(mean, std, digits)}{interval} n={int(n)}"


def widen(summary: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """Pivot a summary so `columns` (e.g. dataset, metric) spread across as '<dataset>/<metric>/<mean|std|n>',
    followed by '/low' and '/high' where some cell has a bootstrap interval."""
    values = ["mean", "std", "n", *(v for v in ("low", "high") if v in summary)]
    wide = _pivot(summary, rows, columns, values)
    wide.columns = ["/".join(str(part) for part in column) for column in wide.columns]
    counts = [c for c in wide.columns if c.endswith("/n")]
    wide[counts] = wide[counts].fillna(0).astype(int)
    bounds = [c for c in wide.columns if c.endswith(("/low", "/high"))]
    wide = wide.drop(columns=[c for c in bounds if wide[c].isna().all()])  # e.g. accuracy: no interval computed
    return wide.reset_index()


def to_markdown(summary: pd.DataFrame, rows: list[str], columns: list[str], digits: int = 3,
                detail: bool = False, note: str = "") -> str:
    """A GitHub Markdown table: `rows` on the left, one 'mean ± std' cell per combination of `columns`;
    with `detail`, each cell adds its interval and n (format_cell). `note` goes under the table."""
    if detail:
        low, high = (summary.get(bound, pd.Series(np.nan, summary.index)) for bound in ("low", "high"))
        cells = zip(summary["mean"], summary["std"], summary["n"], low, high)
        text = [format_cell(*cell, digits=digits) for cell in cells]
    else:
        text = [format_mean_std(m, s, digits) for m, s in zip(summary["mean"], summary["std"])]
    table = _pivot(summary.assign(cell=text), rows, columns, ["cell"])
    header = [*rows, *(" ".join(str(part) for part in column[:-1]) for column in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, values in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        cells = [v if isinstance(v, str) else "–" for v in values]
        lines.append("| " + " | ".join([*map(_format_key, key), *cells]) + " |")
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def _pivot(summary: pd.DataFrame, rows: list[str], columns: list[str], values: list[str]) -> pd.DataFrame:
    """Rows and column groups in order of first appearance; only combinations that occur become rows."""
    table = summary.set_index(rows + columns)[values].unstack(columns)
    table.columns = table.columns.reorder_levels([*range(1, len(columns) + 1), 0])
    row_order = pd.MultiIndex.from_frame(summary[rows].drop_duplicates()) if len(rows) > 1 else summary[rows[0]].unique()
    column_order = [(*key, value) for key in summary[columns].drop_duplicates().itertuples(index=False, name=None)
                    for value in values]
    return table.reindex(index=row_order, columns=pd.MultiIndex.from_tuples(column_order))


def _format_key(value) -> str:
    if isinstance(value, float):
        return "–" if np.isnan(value) else f"{value:g}"
    return str(value)


def per_class_summary(per_class: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, experiment, generator, setting and class: F1 and recall as mean, std and n over seeds."""
    by = ["dataset", "experiment", "generator", "setting", "class"]
    summary = mean_std(per_class, [*by, "measure"])
    wide = summary.pivot(index=by, columns="measure", values=["mean", "std", "n"])
    wide.columns = [f"{measure}_{value}" for value, measure in wide.columns]
    order = pd.MultiIndex.from_frame(summary[by].drop_duplicates())
    columns = [f"{m}_{v}" for m in ("f1", "recall") for v in ("mean", "std", "n")]
    wide = wide.reindex(index=order, columns=columns).reset_index()
    wide[["f1_n", "recall_n"]] = wide[["f1_n", "recall_n"]].fillna(0).astype(int)
    return wide


def per_class_markdown(wide: pd.DataFrame, digits: int = 2, note: str = SEED_VARIANCE) -> str:
    """One row per dataset, experiment, generator and setting; per class, F1 and recall (mean ± std, n)."""
    long = pd.concat([
        wide.assign(measure=measure, mean=wide[f"{measure}_mean"], std=wide[f"{measure}_std"], n=wide[f"{measure}_n"])
        for measure in ("f1", "recall")
    ]).sort_index(kind="stable")
    if long.empty:
        return "no classifier run reports per-class scores\n"
    return to_markdown(long, ["dataset", "experiment", "generator", "setting"], ["class", "measure"], digits,
                       detail=True, note=note)


def comparisons_markdown(table: pd.DataFrame, digits: int = 3, seed_note: str = SEED_VARIANCE,
                         primary: Sequence[str] = (), shortfalls: Sequence[str] = ()) -> str:
    """The comparisons, primary family first; the note says what p is, which primary comparisons
    have no runs (a name that matches no comparison is likely misspelt) and which curated runs
    trained on fewer records than their uncurated pair (`curation_shortfalls`)."""
    found = {pair_name(a, b) for a, b in zip(table["arm"], table["baseline"])}
    missing = [name for name in primary if name not in found]
    unmatched = (f" Primary comparisons without runs (check the spelling against arm and baseline): "
                 f"{'; '.join(missing)}." if missing else "")
    if table.empty:
        nothing = "no comparison: the runs hold no arm with its baseline\n"
        return nothing + (f"\n{unmatched.strip()}\n" if missing else "")
    table = table.sort_values("family", key=lambda family: family != "primary", kind="stable")
    shown = table.assign(
        difference=[format_cell(m, s, n, lo, hi, digits) for m, s, n, lo, hi in
                    zip(table["mean_difference"], table["std_difference"], table["n"], table["low"], table["high"])],
        p=[_format_p(p) for p in table["p"]], p_holm=[_format_p(p) for p in table["p_holm"]],
    )[["dataset", "metric", "family", "comparison", "arm", "baseline", "difference", "p", "p_holm", "verdict"]]
    note = ("difference: arm minus baseline, mean ± std over paired seeds [95 % bootstrap interval of the mean "
            "difference over test records] n=pairs. p: two-sided paired test over seeds and test records (its "
            "variance: the seeds' spread of the differences plus the test records' part that all seeds share, "
            "from the shared resamples; Student's t with Welch-Satterthwaite degrees of freedom; the t-test over "
            "seeds alone where a run has no stored predictions, column test of the CSV). family: primary, the "
            "comparisons the config named before any run (experiments.primary_comparisons), p_holm Holm-adjusted "
            "over them per metric; exploratory, every other one, read from its unadjusted p and labelled so. "
            f"A verdict is a difference where that p < {SIGNIFICANCE}." + unmatched + " " + seed_note)
    if shortfalls:
        note += ("\n\nCurated sets short of records that fit their class (these runs trained on fewer synthetic "
                 "records than their uncurated pair; nothing was topped up): " + "; ".join(shortfalls) + ".")
    return plain_markdown(shown) + f"\n{note}\n"


def _format_p(p: float) -> str:
    return "–" if pd.isna(p) else f"{p:.2g}" if p >= 0.001 else "< 0.001"


def quality_table(reports: Iterable[Path]) -> pd.DataFrame:
    """One row per source dataset, generator and class of the generator-quality reports
    (`results/quality/`): shares of synthetic records with a detectable and a class-fitting
    rhythm, beside real records of the class, the shuffled-label floor and the generator's label
    floor, and whether the class meets the goal (synthecg.evaluation.quality)."""
    rows = []
    for path in reports:
        report = read_json(path)
        for name, entry in report["per_class"].items():
            real = entry["real"] or {}
            rows.append({
                "dataset": report["dataset"], "generator": report["generator"], "class": name,
                "n_synthetic": entry["synthetic"]["n"],
                "detectable": entry["synthetic"]["detectable"],
                "fits_class": entry["synthetic"]["fits_class"],
                "real_fits_class": real.get("fits_class"),
                "shuffled_label_floor": entry["shuffled_label_floor"],
                "generator_label_floor": entry.get("generator_label_floor"),  # reports before 2026-12-05 lack it
                "amplitude_ratio": entry["amplitude_ratio_median"],
                "limb_lead_residual": report["limb_lead_residual_median"]["synthetic"],
                "passes": entry["passes"],
            })
    return pd.DataFrame(rows, columns=["dataset", "generator", "class", "n_synthetic", "detectable", "fits_class",
                                       "real_fits_class", "shuffled_label_floor", "generator_label_floor",
                                       "amplitude_ratio",
                                       "limb_lead_residual", "passes"])


def plain_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub Markdown table of a DataFrame, numbers to `digits` decimals, booleans as pass/fail."""
    def cell(value):
        if isinstance(value, (bool, np.bool_)):
            return "pass" if value else "**fail**"
        if isinstance(value, float):
            return "–" if pd.isna(value) else f"{value:.{digits}f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_tables(classifier_metrics: Iterable[Path], fidelity_reports: Iterable[Path], out: dict[str, Path],
                 quality_reports: Iterable[Path] = (), primary: Sequence[str] = ()) -> dict:
    """Every table, each as CSV (mean/std/n columns, low/high for intervals) and Markdown; `out` maps
    e.g. 'transfer_md' to a path.

    Also writes `runs` (the long table of every classifier run) and `cells` (the augmentation and
    transfer cells in long form, with intervals), which the plots read, the generator-quality
    table (one row per dataset, generator and class), the per-class table and the comparisons.
    """
    quality = quality_table(quality_reports)
    write_csv_atomically(quality, out["quality_csv"])
    write_text_atomically(plain_markdown(quality), out["quality_md"])
    classifier = read_runs(classifier_metrics)
    runs, resamples = classifier.runs, classifier.resamples
    seed_note = seed_variance(classifier.generator_replicates)
    write_csv_atomically(runs, out["runs"])
    tables = {
        "augmentation": (augmentation_summary(runs, resamples), ["generator", "ratio"], ["dataset", "metric"]),
        "transfer": (transfer_summary(runs, resamples), ["generator", "fraction"], ["dataset", "metric"]),
        "fidelity": (fidelity_summary(collect_fidelity(fidelity_reports)), ["dataset", "generator"], ["metric"]),
    }
    for name, (summary, rows, columns) in tables.items():
        if name == "fidelity":  # already one row per measure
            write_csv_atomically(summary, out[f"{name}_csv"])
            write_text_atomically(fidelity_markdown(summary), out[f"{name}_md"])
        else:
            write_csv_atomically(widen(summary, rows, columns), out[f"{name}_csv"])
            shown = summary[summary.metric.isin(MARKDOWN_CLASSIFIER_METRICS)]
            write_text_atomically(to_markdown(shown, rows, columns, detail=True,
                                              note=f"{INTERVAL_NOTE} {seed_note}"), out[f"{name}_md"])
    cells = pd.concat([tables[name][0].rename(columns={level: "level"}).assign(table=name)
                       for name, level in (("augmentation", "ratio"), ("transfer", "fraction"))])
    write_csv_atomically(cells, out["cells"])
    per_class = per_class_summary(classifier.per_class)
    write_csv_atomically(per_class, out["per_class_csv"])
    write_text_atomically(per_class_markdown(per_class, note=seed_note), out["per_class_md"])
    compared = comparisons(runs, resamples, primary)
    write_csv_atomically(compared, out["comparisons_csv"])
    write_text_atomically(comparisons_markdown(compared, seed_note=seed_note, primary=primary,
                                               shortfalls=curation_shortfalls(classifier.train_counts or {})),
                          out["comparisons_md"])
    merged = merged_summary(runs, classifier.merged_parts, resamples)
    write_csv_atomically(merged, out["merged_vs_single_csv"])
    write_text_atomically(merged_markdown(merged, seed_note=seed_note, unverified=classifier.unverified_merged),
                          out["merged_vs_single_md"])
    return ({"quality": quality} | {name: summary for name, (summary, _, _) in tables.items()}
            | {"per_class": per_class, "comparisons": compared, "merged_vs_single": merged})
