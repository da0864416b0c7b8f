"""Logging set-up shared by the workflow scripts (nothing here knows about Snakemake)."""

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from synthecg.errors import PipelineError


@contextlib.contextmanager
def logged_job(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send stderr and logging to `log_path`; turn a PipelineError into a one-line message.

    A `PipelineError` is the user's to fix, so it ends the job with its message (exit 1)
    rather than a traceback; anything else is a bug and keeps its traceback.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log_file:
        sys.stderr = log_file
        logging.basicConfig(
            stream=log_file,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(message)s",
            force=True,
        )
        logger = logging.getLogger("synthecg")
        try:
            yield logger
        except PipelineError as error:
            logger.error("%s", error)
            sys.__stderr__.write(f"ERROR: {error}\n(log: {log_path})\n")
            raise SystemExit(1) from None
        finally:
            sys.stderr = sys.__stderr__
