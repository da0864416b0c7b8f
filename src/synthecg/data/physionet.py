"""Fetching files of one PhysioNet dataset version and verifying them against its SHA256SUMS.txt.

The source is either PhysioNet itself (or any server with its URL layout) or a local folder
with the same layout. Remote files land in a local cache that mirrors that layout; local
files are verified where they are and never copied, moved or deleted.

A failure is either definitive, an answer about the file itself that any copy of the release
would give (404/410, missing from a local folder, a checksum mismatch after a clean re-fetch,
not listed in SHA256SUMS.txt), or transient, something about this server at this moment (5xx,
429, a dropped connection, a truncated body, a timeout). Only definitive failures may exclude a
record (`is_definitive`); the caller must stop on a transient one, so that a rerun fetches what
is missing instead of silently shrinking the dataset.
"""

import email.utils
import hashlib
import logging
import os
import posixpath
import random
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests
from tqdm import tqdm

from synthecg.errors import DownloadError, PipelineError

log = logging.getLogger("synthecg")

CHECKSUMS_FILE = "SHA256SUMS.txt"

# Reasons a file is unavailable in the release itself, whichever copy of it is asked.
DEFINITIVE_REASONS = frozenset({"http_404", "http_410", "missing_file", "checksum_mismatch", "not_in_checksums"})
# Answers that say "not now" rather than "no": retried with backoff.
RETRY_STATUSES = frozenset({408, 425, 429})
# However long a server asks us to wait (Retry-After) or the backoff grows, one wait is at most this.
MAX_WAIT_SECONDS = 300.0


def is_definitive(error: DownloadError) -> bool:
    return error.reason in DEFINITIVE_REASONS


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass(frozen=True)
class DatasetSource:
    name: str
    path: str  # the version folder under the PhysioNet files root
    title: str


SOURCES = {
    "ptbxl": DatasetSource("ptbxl", "ptb-xl/1.0.3", "PTB-XL 1.0.3"),
    "chapman": DatasetSource("chapman", "ecg-arrhythmia/1.0.0", "Chapman-Shaoxing/Ningbo ecg-arrhythmia 1.0.0"),
}


def checked_relpath(path: str, listing: str) -> str:
    """A path read from a remote listing, refused if it could point outside the dataset folder."""
    candidate = path.strip()
    parts = candidate.split("/")
    unsafe = (
        not candidate
        or candidate.startswith(("/", "~"))
        or "\\" in candidate
        or "\x00" in candidate
        or (len(candidate) > 1 and candidate[1] == ":")  # a Windows drive
        or ".." in parts
    )
    if unsafe:
        raise DownloadError(
            f"{listing}: refusing the listed path {path!r}: listings may only name files "
            "inside the dataset folder (no absolute paths, no '..')",
            reason="unsafe_path",
        )
    return posixpath.normpath(candidate)


def parse_checksums(text: str, listing: str) -> dict[str, str]:
    """`<sha256>  <relative path>` lines, as PhysioNet publishes them."""
    checksums = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, path = line.strip().partition(" ")
        path = path.strip().lstrip("*")  # '*' marks binary mode in sha256sum output
        if len(digest) != 64 or not path:
            raise DownloadError(f"{listing}, line {number}: expected '<sha256>  <path>', got {line!r}")
        checksums[checked_relpath(path, f"{listing}, line {number}")] = digest.lower()
    return checksums


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Mirror:
    """Verified access to the files of one dataset version.

    `fetch(relpath)` returns a local path whose SHA-256 matches the version's
    SHA256SUMS.txt, downloading (with retries, backoff and resume) only when no verified
    copy is cached. A download goes to `<file>.part` and is renamed only once verified, so a
    killed run leaves either a verified file or a part to resume, never a file taken as good.
    What happened to each file this time is kept in `status`.
    """

    def __init__(
        self,
        base: str,
        source: DatasetSource,
        cache_root: Path,
        *,
        workers: int = 8,
        retries: int = 4,
        timeout: float = 60.0,
        backoff: float = 1.0,
    ):
        self.source = source
        self.remote = base.startswith(("http://", "https://"))
        self.workers = workers
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        if self.remote:
            self.location = f"{base.rstrip('/')}/{source.path}/"
            self.root = Path(cache_root) / source.path
        else:
            self.location = str(Path(base) / source.path) + "/"
            self.root = Path(base) / source.path
            if not self.root.is_dir():
                raise PipelineError(
                    f"config key physionet_url: {base!r} is a local folder, but it has no "
                    f"{source.path}/ for {source.title}; point it at a folder laid out like "
                    "https://physionet.org/files/"
                )
        self.status: dict[str, dict] = {}
        self._local = threading.local()
        self.checksums = self._load_checksums()

    # -- single files ---------------------------------------------------------------------
    def fetch(self, relpath: str) -> Path:
        """The verified local copy of `relpath`; raises DownloadError naming the file."""
        try:
            path = self._fetch_verified(relpath)
        except DownloadError as error:
            self.status[relpath] = {"status": "failed", "reason": error.reason, "error": str(error)}
            raise
        return path

    def fetch_many(self, relpaths: Iterable[str], description: str) -> dict[str, DownloadError]:
        """Fetch in parallel with a progress bar; returns the failures instead of raising."""
        relpaths = list(dict.fromkeys(relpaths))
        failures: dict[str, DownloadError] = {}

        def one(relpath: str) -> None:
            try:
                self.fetch(relpath)
            except DownloadError as error:
                failures[relpath] = error
                log.warning("%s", error)

        with ThreadPoolExecutor(max_workers=self.workers) as pool, tqdm(
            total=len(relpaths), desc=description, unit="file", file=sys.stderr, mininterval=2, ascii=True
        ) as progress:
            for _ in pool.map(one, relpaths):
                progress.update()
        return failures

    def _fetch_verified(self, relpath: str) -> Path:
        expected = self.checksums.get(relpath)
        if expected is None:
            raise DownloadError(
                f"{self.source.path}/{relpath} is not listed in the release's {CHECKSUMS_FILE}, "
                "so it cannot be verified; refusing to use it",
                reason="not_in_checksums",
            )
        dest = self.root / relpath
        if not self.remote:
            if not dest.is_file():
                raise DownloadError(f"{dest}: file missing from the local PhysioNet folder", reason="missing_file")
            actual = sha256_of(dest)
            if actual != expected:
                raise DownloadError(
                    f"{dest}: checksum mismatch (SHA256SUMS.txt says {expected[:16]}…, the file "
                    f"has {actual[:16]}…); the local file was left as it is and is not used",
                    reason="checksum_mismatch",
                )
            self._record(relpath, "verified", dest)
            return dest
        if dest.is_file():
            if sha256_of(dest) == expected:
                self._record(relpath, "cached", dest)
                return dest
            log.warning("%s: cached copy fails its checksum; fetching it again", dest)
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        url = self.location + relpath
        # The first try may resume a part left by an earlier run; the second always starts clean,
        # so a mismatch is reported only when a clean, complete download fails its checksum.
        for attempt in range(2):
            self._download(url, partial)
            actual = sha256_of(partial)
            if actual == expected:
                os.replace(partial, dest)
                self._record(relpath, "fetched", dest)
                return dest
            partial.unlink()
            log.warning("%s: checksum mismatch on try %d", url, attempt + 1)
        raise DownloadError(
            f"{url}: checksum mismatch (SHA256SUMS.txt says {expected[:16]}…, the server sent "
            f"{actual[:16]}…); the file was deleted and is not used",
            reason="checksum_mismatch",
        )

    def _record(self, relpath: str, status: str, path: Path) -> None:
        self.status[relpath] = {"status": status, "sha256": self.checksums.get(relpath), "bytes": path.stat().st_size}

    # -- HTTP -----------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before try `attempt + 1`: what the server asked for, else exponential backoff
        with jitter, so that parallel workers do not all come back at the same moment."""
        if retry_after is not None:
            return min(retry_after, MAX_WAIT_SECONDS)
        return min(MAX_WAIT_SECONDS, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def _download(self, url: str, partial: Path) -> None:
        """Download `url` into `partial`, resuming what is there.

        Transient failures are retried; after the last try they raise a DownloadError with
        reason "transient". A 404/410 raises at once (definitive); any other refusal (401, 403,
        400...) raises at once too, but as a problem with the source rather than the file.
        """
        last_error: object = None
        retry_after = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._wait(attempt - 1, retry_after))
            retry_after = None
            offset = partial.stat().st_size if partial.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                with self._session().get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                    status = response.status_code
                    if status == 416 and offset:  # nothing left to send: the part is whole (the checksum tells)
                        return
                    if status in (404, 410):
                        raise DownloadError(
                            f"{url}: HTTP {status} {response.reason}: the server does not have this file",
                            reason=f"http_{status}",
                        )
                    if status >= 500 or status in RETRY_STATUSES:
                        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                        last_error = f"HTTP {status} {response.reason}"
                        log.info("%s: try %d of %d failed (%s)", url, attempt + 1, self.retries + 1, last_error)
                        continue
                    if status >= 400:
                        raise DownloadError(
                            f"{url}: HTTP {status} {response.reason}: the server refuses this file; "
                            "check physionet_url",
                            reason=f"http_{status}",
                        )
                    content_range = response.headers.get("Content-Range", "")
                    resumed = status == 206 and content_range.startswith(f"bytes {offset}-")
                    if status == 206 and not resumed:  # a range we did not ask for: start again
                        partial.unlink(missing_ok=True)
                        last_error = f"unexpected Content-Range {content_range!r}"
                        continue
                    with open(partial, "ab" if resumed else "wb") as handle:
                        for block in response.iter_content(chunk_size=1 << 16):
                            handle.write(block)
                return
            except requests.RequestException as error:  # connection reset, timeout, truncated body
                last_error = error
                log.info("%s: try %d of %d failed (%s)", url, attempt + 1, self.retries + 1, error)
        raise DownloadError(f"{url}: failed after {self.retries + 1} tries ({last_error})", reason="transient")

    def _load_checksums(self) -> dict[str, str]:
        """SHA256SUMS.txt, the one file that cannot be verified; a cached copy is reused,
        which is safe because a PhysioNet version folder never changes."""
        path = self.root / CHECKSUMS_FILE
        if self.remote and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            partial.unlink(missing_ok=True)
            self._download(self.location + CHECKSUMS_FILE, partial)
            os.replace(partial, path)
        elif not path.is_file():
            raise PipelineError(f"{path}: missing; every PhysioNet version folder has one")
        text = path.read_text(encoding="utf-8", errors="replace")
        return parse_checksums(text, f"{self.location}{CHECKSUMS_FILE}")

    def verified_files(self) -> dict[str, dict]:
        """{relpath: {sha256, bytes}} of every file verified so far: what the data is, whichever
        server or folder it came from."""
        return {
            relpath: {"sha256": entry["sha256"], "bytes": entry["bytes"]}
            for relpath, entry in sorted(self.status.items())
            if entry["status"] != "failed"
        }

    def location_record(self) -> dict:
        """Where the verified files lie and where they came from this time, with each file's fate."""
        return {
            "dataset": self.source.name,
            "source": self.location,
            "root": str(self.root.resolve()),
            "files": dict(sorted(self.status.items())),
        }
