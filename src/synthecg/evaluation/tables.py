"""The study's tables: every classifier run and closeness report, summarised as mean ± std over seeds.

Runs are read into one long table (one row per run and metric); the summaries group it and
pivot datasets × metrics into columns. A metric a run reports as missing (e.g. AUROC with one
class in the test split) is left out of its cell's mean, and `n` says how many seeds counted.
"""

import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from synthecg.errors import PipelineError
from synthecg.io import write_csv_atomically, write_text_atomically

CLASSIFIER_METRICS = ["macro_f1", "macro_auroc", "accuracy", "balanced_accuracy"]
MARKDOWN_CLASSIFIER_METRICS = ["macro_f1", "macro_auroc"]  # the CSV has them all; Markdown stays readable
FIDELITY_METRICS = [
    "fid",
    "mmd",
    "discriminative_accuracy",
    "tstr_macro_f1",
    "trts_macro_f1",
    "closer_than_any_holdout",
    "nearer_train_excess",
    "amplitude_relative_difference",
    "log_spectrum_difference",
    "heart_rate_wasserstein_bpm",
]
REAL_ONLY = "real only"
_RUN = re.compile(
    r"(?P<dataset>[^/]+)/(?P<experiment>[^/]+)/(?P<generator>[^/]+)/(?P<setting>[^/]+)/seed(?P<seed>\d+)/metrics\.json$"
)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PipelineError(f"{path}: cannot read the JSON report ({error})") from None


def collect_runs(paths: Iterable[Path]) -> pd.DataFrame:
    """Long table of classifier runs: dataset, experiment, generator, setting, seed, metric, value."""
    rows = []
    for path in paths:
        match = _RUN.search(Path(path).as_posix())
        if not match:
            raise PipelineError(f"{path}: not a classifier run (expected .../dataset/experiment/generator/setting/seedN/metrics.json)")
        metrics = read_json(path)
        for metric in CLASSIFIER_METRICS:
            value = metrics.get(metric)
            rows.append({**match.groupdict(), "metric": metric, "value": np.nan if value is None else float(value)})
    runs = pd.DataFrame(rows, columns=["dataset", "experiment", "generator", "setting", "seed", "metric", "value"])
    runs["seed"] = runs["seed"].astype(int)
    # The setting's number (augmentation ratio or fine-tuning fraction) as a column of its own.
    runs["level"] = pd.to_numeric(runs["setting"].str.lstrip("rf"), errors="coerce")
    return runs


def collect_fidelity(paths: Iterable[Path]) -> pd.DataFrame:
    """Long table of closeness reports: dataset, generator, seed, metric, value.

    Seed-dependent scores come once per seed; scores measured on the signals alone are
    repeated for every seed so that each cell has the same seeds.
    """
    rows = []
    for path in paths:
        report = read_json(path)
        memorised = report.get("memorisation") or {}
        signal_scores = {
            "closer_than_any_holdout": memorised.get("share_closer_than_any_holdout"),
            # 0 when the nearest real record of a synthetic one is a training record no more often than chance.
            "nearer_train_excess": (memorised["share_nearer_train_than_holdout"]
                                    - memorised["share_expected_without_memorisation"]) if memorised else None,
            "amplitude_relative_difference": float(np.mean([
                abs(v["synthetic"] - v["real"]) / v["real"] for v in report["amplitude_mv"].values() if v["real"] > 0
            ])),
            "log_spectrum_difference": float(np.mean(list(report["log_power_spectrum_mean_abs_difference"].values()))),
            "heart_rate_wasserstein_bpm": _mean_or_none(
                [c["wasserstein_bpm"] for c in report.get("heart_rate_bpm", {}).values()]
            ),
        }
        for seed, scores in report["by_seed"].items():
            values = {**scores, **signal_scores}
            for metric in FIDELITY_METRICS:
                value = values.get(metric)
                rows.append({"dataset": report["dataset"], "generator": report["generator"], "seed": int(seed),
                             "metric": metric, "value": np.nan if value is None else float(value)})
    return pd.DataFrame(rows, columns=["dataset", "generator", "seed", "metric", "value"])


def _mean_or_none(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def mean_std(long: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, sample std (NaN with one value) and count of `value` per group; missing values skipped."""
    grouped = long.groupby(by, sort=False, dropna=False)["value"]
    return grouped.agg(mean="mean", std="std", n="count").reset_index()


def augmentation_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: real only, then each generator at each ratio; with dataset, metric, mean, std, n."""
    real = runs[runs.experiment == "real"].assign(generator=REAL_ONLY, level=0.0)
    augment = runs[runs.experiment == "augment"]
    return mean_std(pd.concat([real, augment]), ["generator", "level", "dataset", "metric"]).rename(
        columns={"level": "ratio"}
    )


def transfer_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: each generator at each real fraction, with the real-only classifier as fraction 1 reference."""
    real = runs[runs.experiment == "real"].assign(generator=REAL_ONLY, level=1.0)
    finetune = runs[runs.experiment == "finetune"]
    return mean_std(pd.concat([finetune, real]), ["generator", "level", "dataset", "metric"]).rename(
        columns={"level": "fraction"}
    )


def fidelity_summary(fidelity: pd.DataFrame) -> pd.DataFrame:
    return mean_std(fidelity, ["dataset", "generator", "metric"])


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """'0.812 ± 0.013'; only the mean when there is one seed; '–' when nothing was measured."""
    if pd.isna(mean):
        return "–"
    text = f"{mean:.{digits}g}" if abs(mean) >= 1000 else f"{mean:.{digits}f}"
    return text if pd.isna(std) else f"{text} ± {std:.{digits}f}"


def widen(summary: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """Pivot a summary so `columns` (e.g. dataset, metric) spread across as '<dataset>/<metric>/<mean|std|n>'."""
    wide = _pivot(summary, rows, columns, ["mean", "std", "n"])
    wide.columns = ["/".join(str(part) for part in column) for column in wide.columns]
    counts = [c for c in wide.columns if c.endswith("/n")]
    wide[counts] = wide[counts].fillna(0).astype(int)
    return wide.reset_index()


def to_markdown(summary: pd.DataFrame, rows: list[str], columns: list[str], digits: int = 3) -> str:
    """A GitHub Markdown table: `rows` on the left, one 'mean ± std' cell per combination of `columns`."""
    cells = summary.assign(cell=[format_mean_std(m, s, digits) for m, s in zip(summary["mean"], summary["std"])])
    table = _pivot(cells, rows, columns, ["cell"])
    header = [*rows, *(" ".join(str(part) for part in column[:-1]) for column in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, values in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        cells = [v if isinstance(v, str) else "–" for v in values]
        lines.append("| " + " | ".join([*map(_format_key, key), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _pivot(summary: pd.DataFrame, rows: list[str], columns: list[str], values: list[str]) -> pd.DataFrame:
    """Rows and column groups in order of first appearance; only combinations that occur become rows."""
    table = summary.set_index(rows + columns)[values].unstack(columns)
    table.columns = table.columns.reorder_levels([*range(1, len(columns) + 1), 0])
    row_order = pd.MultiIndex.from_frame(summary[rows].drop_duplicates()) if len(rows) > 1 else summary[rows[0]].unique()
    column_order = [(*key, value) for key in summary[columns].drop_duplicates().itertuples(index=False, name=None)
                    for value in values]
    return table.reindex(index=row_order, columns=pd.MultiIndex.from_tuples(column_order))


def _format_key(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def quality_table(reports: Iterable[Path]) -> pd.DataFrame:
    """One row per source dataset, generator and class of the generator-quality reports
    (`results/quality/`): shares of synthetic records with a detectable and a class-fitting
    rhythm, beside real records of the class and the shuffled-label floor, and whether the class
    meets the goal (synthecg.evaluation.quality)."""
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
                "amplitude_ratio": entry["amplitude_ratio_median"],
                "limb_lead_residual": report["limb_lead_residual_median"]["synthetic"],
                "passes": entry["passes"],
            })
    return pd.DataFrame(rows, columns=["dataset", "generator", "class", "n_synthetic", "detectable", "fits_class",
                                       "real_fits_class", "shuffled_label_floor", "amplitude_ratio",
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
                 quality_reports: Iterable[Path] = ()) -> dict:
    """Every table, each as CSV (mean/std/n columns) and Markdown; `out` maps e.g. 'transfer_md' to a path.

    Also writes `runs` (the long table of every classifier run), which the plots read, and the
    generator-quality table (one row per dataset, generator and class).
    """
    quality = quality_table(quality_reports)
    write_csv_atomically(quality, out["quality_csv"])
    write_text_atomically(plain_markdown(quality), out["quality_md"])
    runs = collect_runs(classifier_metrics)
    write_csv_atomically(runs, out["runs"])
    tables = {
        "augmentation": (augmentation_summary(runs), ["generator", "ratio"], ["dataset", "metric"]),
        "transfer": (transfer_summary(runs), ["generator", "fraction"], ["dataset", "metric"]),
        "fidelity": (fidelity_summary(collect_fidelity(fidelity_reports)), ["dataset", "generator"], ["metric"]),
    }
    for name, (summary, rows, columns) in tables.items():
        write_csv_atomically(widen(summary, rows, columns), out[f"{name}_csv"])
        shown = summary if name == "fidelity" else summary[summary.metric.isin(MARKDOWN_CLASSIFIER_METRICS)]
        write_text_atomically(to_markdown(shown, rows, columns), out[f"{name}_md"])
    return {"quality": quality} | {name: summary for name, (summary, _, _) in tables.items()}
