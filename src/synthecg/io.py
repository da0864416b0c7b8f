"""Writing result files atomically: a job killed halfway leaves no file that looks finished."""

import json
import os
from pathlib import Path

import pandas as pd


def partial_path(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique to this process.

    Leftovers of earlier, killed writers of the same file are removed first.
    """
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        stale.unlink(missing_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_csv_atomically(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    table.to_csv(temporary, index=False)
    os.replace(temporary, path)


def write_json_atomically(data, path: str | Path) -> None:
    write_text_atomically(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", path)


def write_text_atomically(text: str, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    temporary.write_text(text)
    os.replace(temporary, path)
