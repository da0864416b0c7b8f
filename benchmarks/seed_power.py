"""How many seeds a comparison needs: the smallest difference the paired t-test over seeds finds with
80 % power, for a given spread of the per-seed differences, at alpha 0.05 and at the strictest Holm
step over a family of comparisons (alpha / family size).

    .venv/bin/python benchmarks/seed_power.py --sd 0.03 --seeds 3 5 10 --comparisons 21

--sd: standard deviation of the arm-minus-baseline differences over seeds (the comparisons table's
std_difference; ~0.03 in macro-AUROC on the CPU preset). Power from the noncentral t distribution.
"""

import argparse

import numpy as np
from scipy import stats


def power(difference: float, sd: float, seeds: int, alpha: float) -> float:
    df, noncentrality = seeds - 1, difference / (sd / np.sqrt(seeds))
    critical = stats.t.ppf(1 - alpha / 2, df)
    # Both tails; scipy's nct.cdf can return NaN far in the lower tail, where the mass is ~0 anyway.
    lower = np.nan_to_num(stats.nct.cdf(-critical, df, noncentrality), nan=0.0)
    return float(stats.nct.sf(critical, df, noncentrality) + lower)


def detectable(sd: float, seeds: int, alpha: float, target: float = 0.8) -> float:
    """The smallest difference (in steps of sd / 100) found with `target` power."""
    for difference in np.arange(1, 2001) * sd / 100:
        if power(difference, sd, seeds, alpha) >= target:
            return float(difference)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd", type=float, default=0.03)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--comparisons", type=int, default=21, help="Holm family size")
    args = parser.parse_args()
    print(f"paired t-test, sd of differences {args.sd}: smallest difference found with 80 % power")
    print(f"{'seeds':>5} {'alpha 0.05':>11} {f'alpha 0.05/{args.comparisons}':>14}")
    for seeds in args.seeds:
        print(f"{seeds:>5} {detectable(args.sd, seeds, 0.05):>11.3f} "
              f"{detectable(args.sd, seeds, 0.05 / args.comparisons):>14.3f}")


if __name__ == "__main__":
    main()
