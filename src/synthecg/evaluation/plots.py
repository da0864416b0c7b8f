"""The study's figures (seaborn on matplotlib's file-only Agg backend). Each function writes one PNG.

Inputs are the summary tables (`results/tables/cells.csv`, `comparisons.csv`, see `tables`),
closeness summaries, HDF5 sets or loss curves; nothing here trains or scores a model.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402 - before pyplot: jobs run without a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from synthecg.data.store import STANDARD_LEADS, load_labels, load_rows, metadata
from synthecg.evaluation.tables import REAL_ONLY, SCRATCH, format_mean_std, read_json
from synthecg.io import partial_path

sns.set_theme(style="whitegrid", context="paper")
METRIC = "macro_f1"


def save(figure, path: Path) -> None:
    """Write atomically, so a killed job leaves no PNG that looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    figure.savefig(temporary, dpi=120, bbox_inches="tight", format="png")
    plt.close(figure)
    temporary.replace(path)


def _empty(path: Path, message: str) -> None:
    figure, axis = plt.subplots(figsize=(5, 2))
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    save(figure, path)


def transfer_curves(cells: pd.DataFrame, path: Path, metric: str = METRIC) -> None:
    """Test score against the fraction of real data used for fine-tuning, one line per generator and
    one (dash-dotted) for the scratch control; bands: bootstrap intervals, whiskers: ± std over seeds;
    dashed line and grey band: real data only. `cells`: the long summary table (`cells.csv`)."""
    cells = cells[(cells.table == "transfer") & (cells.metric == metric)]
    curves = cells[cells.generator != REAL_ONLY]
    if curves.empty:
        return _empty(path, "no fine-tuning runs")
    datasets = list(dict.fromkeys(cells.dataset))
    generators = [g for g in dict.fromkeys(curves.generator) if g != SCRATCH]
    colours = dict(zip(generators, sns.color_palette(n_colors=max(len(generators), 1)))) | {SCRATCH: "dimgray"}
    figure, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.2), squeeze=False, sharey=True)
    for axis, dataset in zip(axes[0], datasets):
        for generator, line in curves[curves.dataset == dataset].groupby("generator", sort=False):
            line = line.sort_values("level")
            colour = colours[generator]
            axis.errorbar(line["level"], line["mean"], yerr=line["std"], color=colour, marker="o", markersize=4,
                          capsize=2, linestyle="-." if generator == SCRATCH else "-", label=generator)
            axis.fill_between(line["level"], line["low"], line["high"], color=colour, alpha=0.15, linewidth=0)
        real = cells[(cells.dataset == dataset) & (cells.generator == REAL_ONLY)]
        if len(real) and np.isfinite(real["mean"].iloc[0]):
            mean, low, high = real[["mean", "low", "high"]].iloc[0]
            axis.axhline(mean, color="black", linestyle="--", linewidth=1)
            if np.isfinite(low):
                axis.axhspan(low, high, color="black", alpha=0.07, linewidth=0)
            axis.annotate(REAL_ONLY, (0.01, mean), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        axis.set(title=dataset, xlabel="fraction of real training data", ylim=(-0.02, 1.02))  # scores lie in [0, 1]
    axes[0, 0].set_ylabel(metric.replace("_", " "))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for axis in axes[0, 1:]:  # a generator missing from the first panel still gets its legend entry
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles, labels = [*handles, handle], [*labels, label]
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    save(figure, path)


def augmentation_gains(comparisons: pd.DataFrame, path: Path, metric: str = METRIC) -> None:
    """Augmented (or balanced) minus real-only score, averaged over seeds, per ratio and generator.

    Whiskers: bootstrap interval of that mean difference over test records; a star marks a
    primary comparison (experiments.primary_comparisons) that the paired test over seeds and test
    records supports after Holm's correction over that family; exploratory ones get none.
    `comparisons`: the comparisons table (`comparisons.csv`)."""
    gains = comparisons[comparisons.comparison.isin(["augment vs real only", "balance vs real only"])
                        & (comparisons.metric == metric)].copy()
    if gains.empty:
        return _empty(path, "no augmentation runs with a real-only reference")
    gains["setting"] = ["balance" if c.startswith("balance") else f"{level:g}"
                        for c, level in zip(gains.comparison, gains.level)]
    datasets = list(dict.fromkeys(gains.dataset))
    generators = list(dict.fromkeys(gains.generator))
    colours = dict(zip(generators, sns.color_palette(n_colors=len(generators))))
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.2), squeeze=False)
    width = 0.8 / len(generators)
    for axis, dataset in zip(axes[0], datasets):
        part = gains[gains.dataset == dataset]
        ratios = sorted({s for s in part.setting if s != "balance"}, key=float)
        settings = ratios + (["balance"] if (part.setting == "balance").any() else [])
        for offset, generator in enumerate(generators):
            bars = part[part.generator == generator].set_index("setting").reindex(settings)
            x = np.arange(len(settings)) - 0.4 + width * (offset + 0.5)
            error = np.array([bars["mean_difference"] - bars["low"], bars["high"] - bars["mean_difference"]])
            axis.bar(x, bars["mean_difference"], width, color=colours[generator], label=generator)
            axis.errorbar(x, bars["mean_difference"], yerr=np.nan_to_num(error), fmt="none", color="black",
                          capsize=2, linewidth=0.8)
            for xi, value, verdict in zip(x, bars["high"].fillna(bars["mean_difference"]), bars["verdict"]):
                if verdict in ("better", "worse"):
                    axis.annotate("*", (xi, value), ha="center", va="bottom", fontsize=10)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xticks(range(len(settings)), settings)
        axis.set(title=dataset, xlabel="synthetic : real ratio")
    axes[0, 0].set_ylabel(f"{metric.replace('_', ' ')} gain over real only")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    save(figure, path)


def fidelity_heatmap(summary: pd.DataFrame, path: Path) -> None:
    """One row per dataset and generator, one column per closeness measure (`tables.fidelity_summary`).

    Colour: how far the value lies beyond its floor on the measure's worse side, in units of the
    floor's interval (`excess`: 0 at the floor, 1 at the interval's edge; better than the floor
    reads 0), so that every column reads the same way whatever its unit or direction. Cells show the
    value over the floor; a frame marks a verdict of "beyond floor".
    """
    if summary.empty:
        return _empty(path, "no closeness reports")
    summary = summary.assign(row=summary["dataset"] + " / " + summary["generator"])
    columns = list(dict.fromkeys(summary["metric"]))
    cells = summary.set_index(["row", "metric"])
    rows = list(dict.fromkeys(summary["row"]))
    excess = cells["excess"].unstack().reindex(index=rows, columns=columns).clip(lower=0, upper=4)
    text = cells.apply(lambda r: f"{format_mean_std(r['mean'], np.nan, 2)}\n({format_mean_std(r['floor'], np.nan, 2)})",
                       axis=1).unstack().reindex(index=rows, columns=columns)
    figure, axis = plt.subplots(figsize=(0.9 * len(columns) + 2.5, 0.55 * len(rows) + 2))
    sns.heatmap(excess.astype(float), annot=text.fillna("–").to_numpy(), fmt="", cmap="rocket_r", vmin=0, vmax=4,
                ax=axis, annot_kws={"fontsize": 6}, linewidths=0.5,
                cbar_kws={"label": "beyond the floor (floor-interval widths; 1 = its edge)"})
    for i, row in enumerate(rows):
        for j, metric in enumerate(columns):
            if (row, metric) in cells.index and cells.loc[(row, metric), "verdict"] == "beyond floor":
                axis.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="deepskyblue", linewidth=2))
    arrows = {"lower": "↓", "higher": "↑"}
    better = dict(zip(summary["metric"], summary["better"]))
    axis.set(xlabel="", ylabel="", title="value (floor: real vs real); ↓ lower is better, ↑ higher is better")
    axis.set_xticklabels([f"{c.replace('_', ' ')} {arrows[better[c]]}" for c in columns], rotation=60, ha="right",
                         fontsize=7)
    save(figure, path)


def sample_grid(real_h5: Path, synthetic_h5: Path, path: Path, seed: int = 0) -> None:
    """For each class, one real training record beside one synthetic record: 12 stacked leads in mV."""
    meta = metadata(real_h5)
    # Labels only, then the one record drawn per panel: a set of 100,000 records is never held.
    sets = [("real", real_h5, "train"), (metadata(synthetic_h5)["generator"], synthetic_h5, "synthetic")]
    labels = {h5: load_labels(h5, split) for _, h5, split in sets}
    rng = np.random.default_rng(seed)
    classes = meta["classes"]
    figure, axes = plt.subplots(len(classes), 2, figsize=(10, 3.2 * len(classes)), sharex=True, squeeze=False)
    time = np.arange(round(meta["fs"] * meta["seconds"])) / meta["fs"]
    for row, name in enumerate(classes):
        for column, (label, h5, split) in enumerate(sets):
            axis = axes[row, column]
            pool = np.flatnonzero(labels[h5] == row)
            axis.set_title(f"{name}: {label}", fontsize=9)
            axis.set_yticks([])
            if not len(pool):
                axis.text(0.5, 0.5, "no record of this class", ha="center", va="center", transform=axis.transAxes)
                continue
            record = load_rows(h5, split, [rng.choice(pool)])[0]
            offsets = -2.0 * np.arange(len(record))  # 2 mV between leads
            axis.plot(time, record.T + offsets, color="tab:blue" if column == 0 else "tab:red", linewidth=0.6)
            axis.set_yticks(offsets, STANDARD_LEADS, fontsize=6)
    for axis in axes[-1]:
        axis.set_xlabel("time (s)")
    figure.suptitle(f"{meta['dataset']}: real and synthetic ECG per class (2 mV between leads)")
    save(figure, path)


def embedding_scatter(points: pd.DataFrame, path: Path, title: str) -> None:
    """2-D projection of real and synthetic embeddings; colour: class, marker: real or synthetic."""
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    sns.scatterplot(data=points, x="pc1", y="pc2", hue="class", style="source", s=14, alpha=0.7, ax=axis)
    axis.set(title=title, xlabel="PC 1 (of real embeddings)", ylabel="PC 2")
    axis.legend(fontsize=7, loc="best")
    save(figure, path)


def confusion_matrices(runs: Mapping[str, Sequence[Path]], path: Path, title: str) -> None:
    """One panel per experiment (label -> its seeds' metrics.json): test confusion summed over seeds, row-normalised."""
    figure, axes = plt.subplots(1, len(runs), figsize=(3.3 * len(runs), 3.2), squeeze=False)
    for axis, (label, paths) in zip(axes[0], runs.items()):
        reports = [read_json(p) for p in paths]
        classes = reports[0]["classes"]
        counts = np.sum([np.asarray(r["confusion_matrix"]) for r in reports], axis=0)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
        sns.heatmap(share, annot=counts, fmt="d", vmin=0, vmax=1, cmap="Blues", cbar=False, ax=axis,
                    xticklabels=classes, yticklabels=classes, annot_kws={"fontsize": 7})
        axis.set(title=label, xlabel="predicted", ylabel="true")
    figure.suptitle(title)
    save(figure, path)


def generator_losses(curves: Mapping[tuple[str, str], Path], path: Path) -> None:
    """Training loss of every generator (one panel per generator and stage, one line per dataset)."""
    parts = []
    for (dataset, generator), csv in curves.items():
        curve = pd.read_csv(csv)
        parts.append(curve.assign(dataset=dataset, panel=generator + ": " + curve["stage"].astype(str)))
    if not parts:
        return _empty(path, "no generator trained")
    curves = pd.concat(parts)
    grid = sns.relplot(data=curves, x="step", y="loss", hue="dataset", col="panel", col_wrap=3, kind="line",
                       height=2.6, aspect=1.2, facet_kws={"sharex": False, "sharey": False})
    for axis in grid.axes.flat:
        if (curves["loss"] > 0).all():
            axis.set_yscale("log")
    grid.set_titles("{col_name}")
    save(grid.figure, path)


def heart_rate_ranges(reports: Sequence[Path], path: Path) -> None:
    """Per dataset and class: median and interquartile range of heart rate, real vs each generator."""
    rows, class_order = [], {}
    for report in map(read_json, reports):
        class_order.setdefault(report["dataset"], report.get("classes", []))
        for name, sides in report.get("heart_rate_bpm", {}).items():
            for side, label in (("real", "real"), ("synthetic", report["generator"])):
                summary = sides[side]
                if "median" in summary:
                    rows.append({"dataset": report["dataset"], "class": name, "source": label,
                                 "median": summary["median"], "q25": summary["q25"], "q75": summary["q75"],
                                 "detectable": summary.get("detectable")})
    if not rows:
        return _empty(path, "no heart rate detected")
    table = pd.DataFrame(rows).drop_duplicates(["dataset", "class", "source"])
    sources = ["real", *sorted(set(table.source) - {"real"})]
    datasets = list(dict.fromkeys(table.dataset))
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False, sharey=True)
    palette = dict(zip(sources, ["black", *sns.color_palette(n_colors=len(sources) - 1)]))
    for axis, dataset in zip(axes[0], datasets):
        part = table[table.dataset == dataset]
        present = set(part["class"])
        classes = [c for c in class_order[dataset] if c in present] + sorted(present - set(class_order[dataset]))
        width = 0.8 / len(sources)
        for offset, source in enumerate(sources):
            ranges = part[part.source == source].set_index("class").reindex(classes)
            x = np.arange(len(classes)) - 0.4 + width * (offset + 0.5)
            axis.errorbar(x, ranges["median"], yerr=[ranges["median"] - ranges["q25"], ranges["q75"] - ranges["median"]],
                          fmt="o", color=palette[source], label=source, capsize=2, markersize=4)
            for xi, (median, share) in zip(x, ranges[["median", "detectable"]].itertuples(index=False)):
                if pd.notna(median) and pd.notna(share):  # the share of records with a readable rhythm
                    axis.annotate(f"{share:.0%}", (xi, median), textcoords="offset points", xytext=(0, -11),
                                  ha="center", fontsize=6, color=palette[source])
        axis.set_xticks(range(len(classes)), classes)
        axis.set(title=dataset, ylabel="heart rate (bpm)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    save(figure, path)
