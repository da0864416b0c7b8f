r"""Level and power of the comparisons' paired test, on real classifier outputs of the mirror.

The comparisons table tests arm minus baseline with statistics.paired_test: the seeds' spread of
the differences plus the test records' shared variance, from the tables' record resamples. This
measures how often it, the t-test over seeds alone, the bootstrap over seeds and records together,
and paired_test without its floor at the records' variance call a difference at alpha 0.05:

    # the CPU preset's data, then 30 seeds of its real-only classifier and 6 of the shuffled-label
    # floor (one thread each; ~27 minutes on a busy 2-core machine)
    .venv/bin/snakemake preprocess --configfile presets/cpu.yaml --config physionet_url=../shared/data/physionet
    .venv/bin/python benchmarks/paired_test_calibration.py train --data results/data/ptbxl.h5 \
        --config presets/cpu.yaml --runs results/calibration --seeds $(seq 0 29)
    .venv/bin/python benchmarks/paired_test_calibration.py train --data results/data/ptbxl.h5 \
        --config presets/cpu.yaml --runs results/calibration --experiment shuffled --seeds 0 1 2 3 4 5
    # rejection rates (~4 minutes), the record-level null at 500 repeats, and the Gaussian model
    .venv/bin/python benchmarks/paired_test_calibration.py measure --runs results/calibration \
        --power-repeats 150 --out results/calibration/rates.json
    .venv/bin/python benchmarks/paired_test_calibration.py measure --runs results/calibration \
        --only record-level --power-repeats 500 --gains 0.05
    .venv/bin/python benchmarks/paired_test_calibration.py model

Scenarios on real runs (pairs of n seeds drawn from the 30, the tables' 2000 record resamples):
identical arms (the same runs twice); real vs real (two disjoint groups of seeds: the seeds' null);
a record-level null (the same runs, each arm better on its own half of a random share of records,
the same records for every seed: neither arm is better in expectation, but the seeds agree on this
split's draw); and planted gains (the arm's runs moved half way to the truth on a random share of
records, drawn per run, sized for a mean macro-AUROC gain of 0.01-0.05), against other seeds or
against the same runs. Repeats share the 30 seeds, so rates carry more than binomial noise. The
`model` command covers what the mirror's 167 test records cannot: Gaussian seeds and records with
the seeds' variance up to 100 times the records' (larger test splits).

Measured 2026-12-05 on the CPU preset's PTB-XL (167 test records: 151 SR, 5 SB, 7 AFIB, 4 GSVT),
rejection rate at alpha 0.05, macro-AUROC / macro-F1:

    scenario                        n   paired_test    t over seeds   two-way bootstrap
    identical arms                  3   0 / 0          0 / 0          0 / 0
    real vs real (2000 repeats)     3   0.040 / 0.049  0.052 / 0.044  0.036 / 0.059
                                    5   0.029 / 0.053  0.046 / 0.056  0.015 / 0.043
                                   10   0.039 / 0.036  0.052 / 0.040  0.009 / 0.020
    record-level null (500)         3   0.036 / 0.048  0.192 / 0.222  0.076 / 0.056
                                    5   0.058 / 0.058  0.444 / 0.378  0.076 / 0.054
                                   10   0.066 / 0.070  0.582 / 0.582  0.104 / 0.070
    +0.03 AUROC vs other seeds      3   0.13 / 0.15    0.11 / 0.13    0.19 / 0.31
      (150 repeats)                 5   0.29 / 0.32    0.32 / 0.33    0.28 / 0.43
                                   10   0.72 / 0.79    0.79 / 0.79    0.53 / 0.71
    +0.05 AUROC vs other seeds      3   0.38 / 0.43    0.30 / 0.40    0.61 / 0.75
                                    5   0.69 / 0.87    0.69 / 0.88    0.75 / 0.91
                                   10   0.99 / 1.00    0.99 / 1.00    0.98 / 1.00
    +0.02 AUROC, same runs          3   0.60 / 0.53    0.41 / 0.41    1.00 / 0.99
                                    5   0.95 / 0.97    0.93 / 0.96    1.00 / 1.00
    +0.05 AUROC, same runs          3   0.87 / 0.87    0.69 / 0.83    1.00 / 1.00

(The planted AUROC gains raise macro-F1 by 0.03-0.19.) Real only vs shuffled labels, seeds 0-2,
+0.489 macro-AUROC / +0.320 macro-F1: paired_test p 8e-21 / 0.012; t over seeds 0.00092 / 0.029
(Holm over 21: 0.019 / 0.62).

Gaussian model (2000 repeats): where the seeds' variance is 20-100 times the records', the
bootstrap over seeds and records rejects a true null 0.20-0.26 of the time with 3 seeds, 0.13-0.16
with 5, 0.08-0.09 with 10; paired_test 0.046-0.075, the t-test 0.046-0.084; where seeds share
record variance (c/v 0.5) and differ little, the t-test rejects 0.17 (3 seeds) to 0.53 (10),
paired_test 0.04-0.06. paired_test is conservative where the records' variance is all there is
(0.014-0.022 at tau^2 = c = 0).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def train(args) -> None:
    """Every missing run of `experiment` at each seed, laid out as the pipeline lays out its runs."""
    import torch

    from synthecg.classifier.experiments import run_experiment
    from synthecg.classifier.resnet1d import make_classifier_config
    from synthecg.config import read_config

    torch.set_num_threads(args.threads)
    settings = dict(read_config(REPO / "config.yaml", args.config)["classifier"])
    for seed in args.seeds:
        out = args.runs / args.dataset / args.experiment / "none" / "all" / f"seed{seed}" / "metrics.json"
        if out.exists():
            continue
        started = time.perf_counter()
        metrics = run_experiment(args.experiment, args.data, out, config=make_classifier_config(settings), seed=seed,
                                 device="cpu")
        print(f"{args.experiment} seed {seed}: macro-AUROC {metrics['macro_auroc']:.3f}, macro-F1 "
              f"{metrics['macro_f1']:.3f}, {time.perf_counter() - started:.0f} s", flush=True)


SCORES = ("macro_auroc", "macro_f1")
ALPHA = 0.05


def improved(probabilities: np.ndarray, y: np.ndarray, records: np.ndarray) -> np.ndarray:
    """The run's predictions with `records` moved half way to the truth (one-hot): a better model there."""
    out = probabilities.copy()
    out[records] = (out[records] + np.eye(out.shape[1])[y[records]]) / 2
    return out


class Runs:
    """One arm's runs of a dataset (every seed): labels, predictions, and scores on the tables' resamples."""

    def __init__(self, folder: Path, n_resamples: int):
        from synthecg.evaluation.statistics import stratified_weights, weighted_macro_scores

        self._score = weighted_macro_scores
        paths = sorted(folder.glob("seed*/metrics.json"), key=lambda path: int(path.parent.name[4:]))
        if len(paths) < 2:
            raise SystemExit(f"{folder}: fewer than two runs; train them first (the train command)")
        runs = [json.loads(path.read_text()) for path in paths]
        self.seeds = [int(path.parent.name[4:]) for path in paths]
        self.y = np.asarray(runs[0]["test_labels"])
        if any(run["test_labels"] != runs[0]["test_labels"] for run in runs):
            raise SystemExit(f"{folder}: runs scored on different test records")
        self.probabilities = [np.asarray(run["test_probabilities"], float) for run in runs]
        self.weights = stratified_weights(self.y, n_resamples)  # the tables' resamples (same seed)
        self._whole = np.ones((1, len(self.y)), np.int32)  # the whole split, once
        self.observed = {score: np.array([run[score] for run in runs]) for score in SCORES}
        self.resampled = {score: np.empty((len(runs), n_resamples)) for score in SCORES}
        for i, probabilities in enumerate(self.probabilities):
            scores = self._score(self.y, probabilities, self.weights)
            for score in SCORES:
                self.resampled[score][i] = scores[score]

    def scored(self, probabilities: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
        """Score (whole split) and resampled scores of modified predictions."""
        whole = self._score(self.y, probabilities, self._whole)
        scores = self._score(self.y, probabilities, self.weights)
        return {score: (float(whole[score][0]), scores[score]) for score in SCORES}


def tests(arm: np.ndarray, baseline: np.ndarray, arm_resampled: np.ndarray, baseline_resampled: np.ndarray,
          rng: np.random.Generator) -> dict[str, float]:
    """p of each test of one comparison: the tables' (paired_test), its variant without the floor at
    the records' variance, the t-test over seeds, and the bootstrap over seeds and records together."""
    from scipy import stats

    from synthecg.evaluation.statistics import paired_t_test, paired_test

    table = paired_test(arm, baseline, arm_resampled, baseline_resampled)
    n, mean, std = table["n"], table["mean_difference"], table["std_difference"]
    differences = arm_resampled - baseline_resampled
    covariance = np.cov(differences)
    shared = max(0.0, (covariance.sum() - np.trace(covariance)) / (n * (n - 1)))
    se = np.sqrt(std ** 2 / n + shared)
    df = (n - 1) * (se ** 2 / (std ** 2 / n)) ** 2 if std > 0 else np.inf
    unfloored = 1.0 if se == 0 else float(2 * stats.t.sf(abs(mean) / se, df))
    # Both sources resampled at once: resample b draws n seeds with replacement (the pair stays
    # together) and takes their differences on record resample b; p: the percentile interval's.
    drawn = rng.integers(0, n, (differences.shape[1], n))
    means = differences[drawn, np.arange(differences.shape[1])[:, None]].mean(axis=1)
    two_way = min(1.0, 2 * (min((means <= 0).sum(), (means >= 0).sum()) + 1) / (len(means) + 1))
    return {"paired_test": table["p"], "without floor": unfloored,
            "t over seeds": paired_t_test(arm, baseline)["p"], "two-way bootstrap": two_way}


TESTS = ("paired_test", "without floor", "t over seeds", "two-way bootstrap")


def share_for_gain(runs: Runs, gain: float, rng: np.random.Generator) -> float:
    """The share of test records to improve (improved()) for a mean macro-AUROC gain of `gain` over the runs."""
    def mean_gain(share: float) -> float:
        gains = []
        for probabilities, before in zip(runs.probabilities, runs.observed["macro_auroc"]):
            chosen = np.flatnonzero(rng.random(len(runs.y)) < share)
            gains.append(runs.scored(improved(probabilities, runs.y, chosen))["macro_auroc"][0] - before)
        return float(np.mean(gains))

    low, high = 0.0, 1.0
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (middle, high) if mean_gain(middle) < gain else (low, middle)
    return (low + high) / 2


def scenario(runs: Runs, n: int, repeats: int, rng: np.random.Generator, *, same_seeds: bool, gain_share: float = 0.0,
             record_null_share: float = 0.0) -> dict:
    """Rejection rate of each test at ALPHA, per score, over `repeats` draws of n seed pairs.

    same_seeds: both arms are the same runs (else two disjoint random groups of seeds, paired in
    draw order: the real-vs-real null). gain_share: the arm's runs improved on that share of records
    (drawn per run). record_null_share: that share of records is improved, each record in one arm
    or the other by a fair coin, the same records in every seed: the arms differ record by record
    but neither is better in expectation (a null the test records carry, shared by every seed)."""
    rejected = {score: {test: 0 for test in TESTS} for score in SCORES}
    gains = {score: [] for score in SCORES}
    for _ in range(repeats):
        drawn = rng.choice(len(runs.seeds), n if same_seeds else 2 * n, replace=False)
        arm_index, baseline_index = (drawn, drawn) if same_seeds else (drawn[:n], drawn[n:])
        observed = {side: {score: runs.observed[score][index].copy() for score in SCORES}
                    for side, index in (("arm", arm_index), ("baseline", baseline_index))}
        resampled = {side: {score: runs.resampled[score][index].copy() for score in SCORES}
                     for side, index in (("arm", arm_index), ("baseline", baseline_index))}
        if record_null_share:
            chosen = np.flatnonzero(rng.random(len(runs.y)) < record_null_share)
            to_arm = rng.random(len(chosen)) < 0.5
            for side, records in (("arm", chosen[to_arm]), ("baseline", chosen[~to_arm])):
                for i, run in enumerate(arm_index if side == "arm" else baseline_index):
                    rescored = runs.scored(improved(runs.probabilities[run], runs.y, records))
                    for score, (whole, scores) in rescored.items():
                        observed[side][score][i], resampled[side][score][i] = whole, scores
        if gain_share:
            for i, run in enumerate(arm_index):
                records = np.flatnonzero(rng.random(len(runs.y)) < gain_share)
                for score, (whole, scores) in runs.scored(improved(runs.probabilities[run], runs.y, records)).items():
                    observed["arm"][score][i], resampled["arm"][score][i] = whole, scores
        for score in SCORES:
            gains[score].append(np.mean(observed["arm"][score] - observed["baseline"][score]))
            for test, p in tests(observed["arm"][score], observed["baseline"][score], resampled["arm"][score],
                                 resampled["baseline"][score], rng).items():
                rejected[score][test] += p < ALPHA
    return {score: {"mean difference": float(np.mean(gains[score])),
                    **{test: count / repeats for test, count in rejected[score].items()}} for score in SCORES}


def measure(args) -> None:
    from synthecg.evaluation.statistics import holm

    rng = np.random.default_rng(args.seed)
    real = Runs(args.runs / args.dataset / "real" / "none" / "all", args.resamples)
    print(f"{args.runs / args.dataset}: {len(real.seeds)} real-only runs, {len(real.y)} test records "
          f"(per class {np.bincount(real.y).tolist()}), {args.resamples} shared resamples; rejection rate at "
          f"alpha {ALPHA} of each test (share of repeats with p < {ALPHA})", flush=True)
    results = {"runs": str(args.runs), "real_seeds": real.seeds, "test_records": len(real.y), "scenarios": []}
    shares = {gain: share_for_gain(real, gain, np.random.default_rng(args.seed)) for gain in args.gains}
    print("records improved for each planted mean macro-AUROC gain: "
          + ", ".join(f"{gain}: {share:.3f}" for gain, share in shares.items()), flush=True)
    record_null = shares[max(args.gains)]
    plans = [("identical arms", dict(same_seeds=True), args.repeats),
             ("real vs real (disjoint seeds)", dict(same_seeds=False), args.repeats),
             (f"record-level null ({record_null:.0%} of records, either arm)",
              dict(same_seeds=True, record_null_share=record_null), args.power_repeats)]
    plans += [(f"real vs real, arm +{gain} AUROC", dict(same_seeds=False, gain_share=shares[gain]), args.power_repeats)
              for gain in args.gains]
    plans += [(f"same runs, arm +{gain} AUROC", dict(same_seeds=True, gain_share=shares[gain]), args.power_repeats)
              for gain in args.gains]
    print(f"{'scenario':<46} {'n':>3} {'score':<12} {'mean diff':>9} " + " ".join(f"{t:>17}" for t in TESTS))
    for name, settings, repeats in plans:
        if args.only and not name.startswith(args.only):
            continue
        for n in args.seeds_per_arm:
            if (1 if settings["same_seeds"] else 2) * n > len(real.seeds):
                continue
            started = time.perf_counter()
            rates = scenario(real, n, repeats, rng, **settings)
            for score, row in rates.items():
                print(f"{name:<46} {n:>3} {score:<12} {row['mean difference']:>+9.3f} "
                      + " ".join(f"{row[t]:>17.3f}" for t in TESTS), flush=True)
            results["scenarios"].append({"scenario": name, "n": n, "repeats": repeats, "rates": rates,
                                         "seconds": round(time.perf_counter() - started, 1)})
    shuffled_folder = args.runs / args.dataset / "shuffled" / "none" / "all"
    if shuffled_folder.is_dir():
        shuffled = Runs(shuffled_folder, args.resamples)
        seeds = [s for s in shuffled.seeds if s in real.seeds][:3]
        r, s = ([runs.seeds.index(seed) for seed in seeds] for runs in (real, shuffled))
        print(f"\nreal only vs shuffled labels, seeds {seeds} (the tables' case), p of each test; Holm-adjusted "
              f"as the smallest p of a family of {args.family}:")
        for score in SCORES:
            p = tests(real.observed[score][r], shuffled.observed[score][s], real.resampled[score][r],
                      shuffled.resampled[score][s], rng)
            difference = np.mean(real.observed[score][r] - shuffled.observed[score][s])
            print(f"  {score:<12} {difference:+.3f}: " + ", ".join(
                f"{test} {value:.2g} (Holm {holm([value] + [1.0] * (args.family - 1))[0]:.2g})"
                for test, value in p.items()))
            results[f"real vs shuffled {score}"] = {"difference": difference, "p": p}
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def model(args) -> None:
    """Rejection rates of true nulls in a Gaussian model of the two sources, over the regimes the
    mirror cannot show: the seeds' variance tau^2 many times the records' v (larger test splits)."""
    from scipy import stats

    from synthecg.evaluation.statistics import paired_t_test, paired_test

    rng = np.random.default_rng(args.seed)
    print(f"Gaussian model: d_s = u_s + e_s, u_s ~ N(0, tau^2), e_s ~ N(0, v) with covariance c between seeds; "
          f"{args.resamples} record resamples per repeat (e_s plus fresh noise of the same covariance), "
          f"{args.repeats} repeats; rejection rate at alpha {ALPHA}")
    print(f"{'n':>3} {'tau^2/v':>8} {'c/v':>5} " + " ".join(f"{t:>17}" for t in ("paired_test", "t over seeds",
                                                                             "two-way bootstrap")))
    for n in args.seeds_per_arm:
        for c in args.shared:
            for tau2 in args.seed_variance:
                rejected = np.zeros(3)
                for _ in range(args.repeats):
                    def records(size):  # v = 1, covariance c between seeds
                        return np.sqrt(c) * rng.normal(size=(1, size)) + np.sqrt(1 - c) * rng.normal(size=(n, size))
                    d = rng.normal(0, np.sqrt(tau2), n) + records(1)[:, 0]
                    resampled = d[:, None] + records(args.resamples)
                    drawn = rng.integers(0, n, (args.resamples, n))
                    means = resampled[drawn, np.arange(args.resamples)[:, None]].mean(axis=1)
                    two_way = min(1.0, 2 * (min((means <= 0).sum(), (means >= 0).sum()) + 1) / (args.resamples + 1))
                    p = (paired_test(d, np.zeros(n), resampled, np.zeros_like(resampled))["p"],
                         paired_t_test(d, np.zeros(n))["p"], two_way)
                    rejected += np.array(p) < ALPHA
                rates = rejected / args.repeats
                print(f"{n:>3} {tau2:>8g} {c:>5g} " + " ".join(f"{r:>17.3f}" for r in rates), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="train the runs the measurement reads")
    trainer.add_argument("--data", type=Path, required=True, help="a preprocessed dataset (results/data/<dataset>.h5)")
    trainer.add_argument("--config", type=Path, help="merged over config.yaml (e.g. presets/cpu.yaml)")
    trainer.add_argument("--runs", type=Path, required=True, help="where runs go, as results/classifier lays them out")
    trainer.add_argument("--dataset", default="ptbxl")
    trainer.add_argument("--experiment", choices=["real", "shuffled"], default="real")
    trainer.add_argument("--seeds", type=int, nargs="+", default=list(range(24)))
    trainer.add_argument("--threads", type=int, default=1)
    measurer = commands.add_parser("measure", help="rejection rates of each test on the trained runs")
    measurer.add_argument("--runs", type=Path, required=True, help="runs laid out as results/classifier lays them out")
    measurer.add_argument("--dataset", default="ptbxl")
    measurer.add_argument("--seeds-per-arm", type=int, nargs="+", default=[3, 5, 10])
    measurer.add_argument("--repeats", type=int, default=2000, help="draws per null of real runs as they are")
    measurer.add_argument("--power-repeats", type=int, default=300, help="draws per scenario that rescores runs")
    measurer.add_argument("--gains", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05],
                          help="planted mean macro-AUROC gains")
    measurer.add_argument("--resamples", type=int, default=2000, help="shared record resamples (the tables': 2000)")
    measurer.add_argument("--family", type=int, default=21, help="Holm family size for the real-vs-shuffled case")
    measurer.add_argument("--seed", type=int, default=0)
    measurer.add_argument("--only", help="run only the scenarios whose name starts with this (e.g. record-level)")
    measurer.add_argument("--out", type=Path, help="every rate as JSON")
    modeller = commands.add_parser("model", help="rejection rates of true nulls in a Gaussian model")
    modeller.add_argument("--seeds-per-arm", type=int, nargs="+", default=[3, 5, 10])
    modeller.add_argument("--seed-variance", type=float, nargs="+", default=[0, 1, 5, 20, 100],
                          help="tau^2 / v: the seeds' variance of the differences over the records'")
    modeller.add_argument("--shared", type=float, nargs="+", default=[0, 0.5],
                          help="c / v: the records' covariance between seeds over their variance")
    modeller.add_argument("--repeats", type=int, default=2000)
    modeller.add_argument("--resamples", type=int, default=1000)
    modeller.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"train": train, "measure": measure, "model": model}[args.command](args)


if __name__ == "__main__":
    main()
