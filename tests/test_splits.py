import numpy as np
import pandas as pd

from synthecg.data.splits import SPLITS, select_per_class, split_quotas, stratified_patient_split

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def catalogue(n_per_class=(50, 20, 7), records_per_patient=1):
    rows = []
    for class_index, n in enumerate(n_per_class):
        for i in range(n):
            patient = f"p{class_index}-{i // records_per_patient}"
            rows.append({"record_id": f"r{class_index}-{i}", "patient_id": patient, "label": f"C{class_index}"})
    return pd.DataFrame(rows)


def test_quotas_add_up_and_keep_val_and_test_alive():
    for n in range(0, 40):
        quotas = split_quotas(n, FRACTIONS)
        assert sum(quotas.values()) == n
        if n >= 3:
            assert quotas["val"] >= 1 and quotas["test"] >= 1
    assert split_quotas(10, FRACTIONS) == {"train": 8, "val": 1, "test": 1}


def test_patient_split_is_deterministic_stratified_and_keeps_patients_together():
    table = catalogue(records_per_patient=3)
    first = stratified_patient_split(table, FRACTIONS, seed=1)
    assert first.equals(stratified_patient_split(table, FRACTIONS, seed=1))
    assert not first.equals(stratified_patient_split(table, FRACTIONS, seed=2))
    assert (table.assign(split=first).groupby("patient_id")["split"].nunique() == 1).all()
    for label, members in table.assign(split=first).groupby("label"):
        assert set(members["split"]) == set(SPLITS), label  # every class in every split


def test_budget_is_per_class_and_reproducible():
    table = catalogue()
    chosen = select_per_class(table, 10, seed=0, fractions=FRACTIONS)
    assert chosen.equals(select_per_class(table, 10, seed=0, fractions=FRACTIONS))
    assert table[chosen].groupby("label").size().to_dict() == {"C0": 10, "C1": 10, "C2": 7}
    assert select_per_class(table, None, seed=0, fractions=FRACTIONS).all()


def test_budget_follows_fixed_splits_and_passes_shortfalls_on():
    table = catalogue(n_per_class=(100,))
    table["split"] = np.where(np.arange(100) < 98, "train", np.where(np.arange(100) < 99, "val", "test"))
    chosen = table[select_per_class(table, 20, seed=0, fractions=FRACTIONS)]
    assert chosen["split"].value_counts().to_dict() == {"train": 18, "val": 1, "test": 1}
    # Growing one class's records does not change another class's choice.
    grown = pd.concat([table, catalogue(n_per_class=(0, 30)).assign(split="train")], ignore_index=True)
    assert select_per_class(grown, 20, 0, FRACTIONS)[: len(table)].equals(select_per_class(table, 20, 0, FRACTIONS))


def test_an_unavailable_record_is_replaced_by_the_next_of_its_class_in_the_same_order():
    table = catalogue(n_per_class=(100, 5))
    table["split"] = np.where(np.arange(105) % 10 == 8, "val", np.where(np.arange(105) % 10 == 9, "test", "train"))
    before = select_per_class(table, 20, seed=0, fractions=FRACTIONS)
    gone = table.index[before][:3]
    after = select_per_class(table, 20, seed=0, fractions=FRACTIONS, unavailable=gone)
    assert not after[gone].any() and after[before & ~table.index.isin(gone)].all()  # every other choice stands
    per_split = lambda chosen: table[chosen].groupby(["label", "split"]).size()  # noqa: E731
    assert per_split(after).equals(per_split(before))  # the replacements come from the same splits
    # A class with too few records keeps what exists.
    assert table[after]["label"].value_counts().to_dict() == {"C0": 20, "C1": 5 - len(set(gone) & set(range(100, 105)))}
    # Without splits, the catalogue's row order is the seeded order: the next row takes the place.
    plain = catalogue(n_per_class=(30,))
    assert list(plain.index[select_per_class(plain, 3, 0, FRACTIONS, unavailable=[1])]) == [0, 2, 3]
