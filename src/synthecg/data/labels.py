"""Mapping each dataset's rhythm codes to the shared classes, and the record catalogues.

A catalogue is one row per record that a dataset offers: its id, patient, path (relative to
the dataset version folder, no extension), the codes it carries, and either its class or the
reason it has none. Selection, splitting and the QC table all start from it.
"""

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from synthecg.errors import PipelineError

CATALOGUE_COLUMNS = ["record_id", "patient_id", "record_path", "codes", "label", "reason", "detail", "fold"]

NO_CLASS = "no_class"
MULTIPLE_CLASSES = "multiple_classes"


@dataclass(frozen=True)
class ClassMap:
    """The shared rhythm classes and, per dataset, which code belongs to which class."""

    classes: tuple[str, ...]
    code_to_class: Mapping[str, Mapping[str, str]]  # dataset -> code -> class

    @classmethod
    def from_config(cls, classes: Mapping[str, Mapping[str, Iterable]]) -> "ClassMap":
        """Build from config `classes`: {class: {dataset: [code, ...]}}; codes may be int or str."""
        code_to_class: dict[str, dict[str, str]] = {}
        for class_name, per_dataset in classes.items():
            for dataset, codes in per_dataset.items():
                mapping = code_to_class.setdefault(dataset, {})
                for code in codes:
                    code = str(code).strip()
                    if code in mapping and mapping[code] != class_name:
                        raise PipelineError(
                            f"config key classes: code {code!r} of dataset {dataset!r} is listed "
                            f"under both {mapping[code]!r} and {class_name!r}; give it one class"
                        )
                    mapping[code] = class_name
        return cls(tuple(classes), code_to_class)

    def index(self, class_name: str) -> int:
        return self.classes.index(class_name)

    def label(self, dataset: str, codes: Iterable[str]) -> tuple[str | None, str | None]:
        """(class, None) when the codes name exactly one class, else (None, reason)."""
        mapping = self.code_to_class.get(dataset, {})
        found = sorted({mapping[code] for code in codes if code in mapping})
        if len(found) == 1:
            return found[0], None
        if not found:
            return None, NO_CLASS
        return None, MULTIPLE_CLASSES


def ptbxl_catalogue(database_csv: Path, class_map: ClassMap, sampling_rate: int) -> pd.DataFrame:
    """One row per PTB-XL record of `ptbxl_database.csv`.

    Every statement in `scp_codes` counts, whatever its likelihood (SR is often 0.0); codes
    that no class lists are ignored, so a record is labelled by its rhythm statements alone.
    """
    path_column = {100: "filename_lr", 500: "filename_hr"}[sampling_rate]
    try:
        table = pd.read_csv(database_csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise PipelineError(f"{database_csv}: cannot read the PTB-XL database table ({error})")
    missing = {"ecg_id", "patient_id", "scp_codes", "strat_fold", path_column} - set(table.columns)
    if missing:
        raise PipelineError(f"{database_csv}: missing columns {sorted(missing)}; is this ptbxl_database.csv?")
    rows = []
    for line_number, row in enumerate(table.itertuples(index=False), start=2):
        try:
            codes = sorted(ast.literal_eval(row.scp_codes))
            fold = int(row.strat_fold)
            patient = str(int(float(row.patient_id)))
        except (ValueError, SyntaxError, TypeError) as error:
            raise PipelineError(
                f"{database_csv}, line {line_number} (ecg_id {row.ecg_id}): cannot parse "
                f"scp_codes/strat_fold/patient_id ({error})"
            )
        label, reason = class_map.label("ptbxl", codes)
        rows.append(
            {
                "record_id": str(int(row.ecg_id)),
                "patient_id": patient,
                "record_path": getattr(row, path_column),
                "codes": ";".join(codes),
                "label": label or "",
                "reason": reason or "",
                "detail": "",
                "fold": fold,
            }
        )
    return pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)


def chapman_codes(header_comments: Iterable[str]) -> list[str]:
    """SNOMED-CT codes of a Chapman/Ningbo header's `#Dx:` line (empty items are dropped)."""
    for comment in header_comments:
        key, _, value = comment.partition(":")
        if key.strip().lower() == "dx":
            return [code.strip() for code in value.split(",") if code.strip()]
    return []


def chapman_catalogue_row(record_path: str, header_comments: Iterable[str], class_map: ClassMap) -> dict:
    """The catalogue row of one Chapman/Ningbo record.

    The database has one recording per patient and no patient id, so the record name stands
    for the patient.
    """
    codes = chapman_codes(header_comments)
    label, reason = class_map.label("chapman", codes)
    record_id = record_path.rsplit("/", 1)[-1]
    return {
        "record_id": record_id,
        "patient_id": record_id,
        "record_path": record_path,
        "codes": ";".join(codes),
        "label": label or "",
        "reason": reason or "",
        "detail": "",
        "fold": 0,
    }
