"""Fetching files of one PhysioNet dataset version and verifying them against its SHA256SUMS.txt.

The source is either PhysioNet itself (or any server with its URL layout) or a local folder
with the same layout. Remote files land in a local cache that mirrors that layout; local
files are verified where they are and never copied, moved or deleted.
"""

import hashlib
import logging
import os
import posixpath
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from synthecg.errors import DownloadError, PipelineError

log = logging.getLogger("synthecg")

CHECKSUMS_FILE = "SHA256SUMS.txt"


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
    copy is cached. What happened to each file is kept in `status` for the manifest.
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
                f"{self.location}{relpath} is not listed in {self.location}{CHECKSUMS_FILE}, "
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
        for attempt in range(2):  # a mismatch may come from a bad resume: the second try starts clean
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

    def _download(self, url: str, partial: Path) -> None:
        """Download `url` into `partial`, resuming what is there; retries transient failures."""
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            offset = partial.stat().st_size if partial.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                with self._session().get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                    if response.status_code == 416:  # nothing left to send: the part is whole
                        return
                    if response.status_code in (401, 403, 404, 410):
                        raise DownloadError(
                            f"{url}: HTTP {response.status_code} {response.reason}: the server does not "
                            "have this file; check physionet_url",
                            reason=f"http_{response.status_code}",
                        )
                    response.raise_for_status()
                    mode = "ab" if response.status_code == 206 else "wb"
                    with open(partial, mode) as handle:
                        for block in response.iter_content(chunk_size=1 << 16):
                            handle.write(block)
                return
            except requests.RequestException as error:  # connection reset, timeout, 5xx
                last_error = error
                log.info("%s: try %d of %d failed (%s)", url, attempt + 1, self.retries + 1, error)
        raise DownloadError(f"{url}: failed after {self.retries + 1} tries ({last_error})")

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

    def manifest(self) -> dict:
        return {
            "dataset": self.source.name,
            "title": self.source.title,
            "source": self.location,
            "root": str(self.root.resolve()),
            "files": dict(sorted(self.status.items())),
        }
