"""Choosing records: per-class budgets and train/val/test splits, all seeded.

Randomness is drawn per class from `(seed, class name)`, so adding records of one class
never reshuffles another.
"""

import zlib
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")

# PTB-XL's authors recommend folds 1-8 for training, 9 for validation and 10 for testing:
# folds 9 and 10 hold only records validated by a human cardiologist.
PTBXL_FOLD_SPLIT = {**{fold: "train" for fold in range(1, 9)}, 9: "val", 10: "test"}


def class_rng(seed: int, class_name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(class_name.encode())])


def split_quotas(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Share `n` items over the splits by largest remainder.

    Validation and test get at least one item each once there are three, so that a tiny
    quick run still has something to validate and test on.
    """
    exact = {split: n * fractions[split] for split in SPLITS}
    quotas = {split: int(np.floor(value)) for split, value in exact.items()}
    by_remainder = sorted(SPLITS, key=lambda s: (quotas[s] - exact[s], SPLITS.index(s)))
    for split in by_remainder[: n - sum(quotas.values())]:
        quotas[split] += 1
    if n >= 3:
        for split in ("val", "test"):
            if quotas[split] == 0:
                quotas[split] = 1
                quotas["train"] -= 1
    return quotas


def ptbxl_split(fold: int) -> str:
    return PTBXL_FOLD_SPLIT[int(fold)]


def stratified_patient_split(
    catalogue: pd.DataFrame, fractions: Mapping[str, float], seed: int
) -> pd.Series:
    """Split labelled records by patient, stratified by class: every record of a patient
    lands in the same split. Returns the split name per catalogue row."""
    patients = catalogue.groupby("patient_id", sort=True)["label"].first()
    split_of_patient: dict[str, str] = {}
    for class_name, members in patients.groupby(patients, sort=True):
        order = class_rng(seed, class_name).permutation(np.asarray(members.index))
        quotas = split_quotas(len(order), fractions)
        start = 0
        for split in SPLITS:
            for patient in order[start : start + quotas[split]]:
                split_of_patient[patient] = split
            start += quotas[split]
    return catalogue["patient_id"].map(split_of_patient)


def select_per_class(
    catalogue: pd.DataFrame,
    budget: int | None,
    seed: int,
    fractions: Mapping[str, float],
    unavailable: Collection = (),
) -> pd.Series:
    """Which labelled records to use: every available one, or the first `budget` per class in a
    seeded order, skipping the `unavailable` rows (index labels), so that a record whose files
    do not exist is replaced by the next record of its class in the same order.

    Without a `split` column the catalogue's own row order is that order (Chapman's headers are
    read in a seeded order). With one (PTB-XL, whose folds fix the split), each class is ranked
    within each split and the budget is shared over the splits like the data itself, so a small
    run still has validation and test records; a split that runs short passes its remainder on.
    Every ranking is drawn over all of a class's records, available or not, so an unavailable
    record never reorders the others. Returns a boolean mask over the rows.
    """
    labelled = catalogue["label"] != ""
    available = labelled & ~catalogue.index.isin(list(unavailable))
    if budget is None:
        return available
    chosen = pd.Series(False, index=catalogue.index)
    for class_name, members in catalogue[labelled].groupby("label", sort=True):
        if "split" not in members:
            chosen[members.index[available[members.index]][:budget]] = True
            continue
        rng = class_rng(seed, class_name)
        quotas = split_quotas(min(budget, int(available[members.index].sum())), fractions)
        shortfall = 0
        for split in SPLITS:
            ranked = rng.permutation(np.asarray(members.index[members["split"] == split]))
            pool = ranked[available[ranked].to_numpy()]
            take = min(len(pool), quotas[split] + shortfall)
            shortfall = quotas[split] + shortfall - take
            chosen[pool[:take]] = True
        if shortfall:  # the last splits ran short: fill from the class's other records, in seeded order
            ranked = rng.permutation(np.asarray(members.index))
            chosen[ranked[(available[ranked] & ~chosen[ranked]).to_numpy()][:shortfall]] = True
    return chosen
