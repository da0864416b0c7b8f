"""Shared fixtures: the PhysioNet mirror in ../shared, a throwaway HTTP server, small configs."""

import functools
import http.server
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data" / "physionet"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


class RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that honours `Range: bytes=N-` (for resume) and logs each path.

    `fail_first` paths answer 503 once before they are served, to exercise retries.
    """

    requests: list  # set per server: every path asked for
    ranges: list  # the Range headers received
    fail_first: set

    def log_message(self, *args):  # keep test output quiet
        pass

    def send_head(self):
        self.requests.append(self.path)
        if self.path in self.fail_first:
            self.fail_first.discard(self.path)
            self.send_error(503, "try again")
            return None
        return self.serve_file()

    def serve_file(self):
        range_header = self.headers.get("Range", "")
        if range_header:
            self.ranges.append(range_header)
        path = Path(self.translate_path(self.path))
        if not range_header.startswith("bytes=") or not path.is_file():
            return super().send_head()
        start = int(range_header[len("bytes=") :].split("-")[0])
        size = path.stat().st_size
        if start >= size:
            self.send_error(416, "range not satisfiable")
            return None
        handle = open(path, "rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return handle


class FaultInjectingHandler(RangeRequestHandler):
    """A flaky server, reproducible and bounded.

    `script` {path: [fault, ...]} answers the first requests of a path with those faults, in
    order. With `rates` {fault: probability}, every other request draws a fault from a generator
    seeded by (seed, path, try number), so the same run meets the same faults whatever the order
    of parallel requests; a path gets at most `max_faults` drawn faults, so a client that retries
    more often than that always gets its file. Faults: an HTTP status ("500", "404"), or a status
    and the seconds of its Retry-After header ("503/0"); "reset" (the connection is closed before
    any answer); "truncate" (the full Content-Length, half the body, then the connection closed);
    "stall" (the full Content-Length and three quarters of the body, then nothing until `release`
    is set). After `max_requests` requests or `seconds` seconds every answer is a 503 and
    `exhausted` is set, so a client that loops cannot hang a test. `injected` counts the faults
    served by kind.
    """

    script: dict = {}
    rates: dict = {}
    seed = 0
    max_faults = 3
    max_requests = 5000
    seconds = 120.0

    def send_head(self):
        with self.lock:
            self.requests.append(self.path)
            tries = self.tries[self.path] = self.tries.get(self.path, 0) + 1
            fault = self.pick_fault(tries)
            if fault:
                self.injected[fault] = self.injected.get(fault, 0) + 1
        if fault == "truncate":
            body = self.serve_file()
            if body is not None:
                data = body.read()
                body.close()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
            return None
        if fault == "stall":
            body = self.serve_file()
            if body is not None:
                data = body.read()
                body.close()
                self.wfile.write(data[: len(data) * 3 // 4])
                self.wfile.flush()
                self.release.wait(60)
                self.close_connection = True
            return None
        if fault == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return None
        if fault:
            status, _, wait = fault.partition("/")
            self.send_response(int(status))
            if wait:
                self.send_header("Retry-After", wait)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self.serve_file()

    def pick_fault(self, tries):
        if len(self.requests) > self.max_requests or time.monotonic() > self.started + self.seconds:
            type(self).exhausted = True
            return "503"
        script = self.script.get(self.path, [])
        if tries <= len(script):
            return script[tries - 1]
        if tries - len(script) > self.max_faults:
            return None
        draw = random.Random(f"{self.seed}:{self.path}:{tries}").random()
        for fault, rate in sorted(self.rates.items()):
            if draw < rate:
                return fault
            draw -= rate
        return None

    def finish(self):  # a reset connection has nothing left to flush
        try:
            super().finish()
        except (OSError, ValueError):
            pass


@pytest.fixture
def serve():
    """serve(directory) -> the request handler class; its `url` is the base URL on 127.0.0.1,
    its `requests` and `ranges` what clients asked for. serve(directory, faults={...}) serves
    through a FaultInjectingHandler with those class attributes (script, rates, seed, ...)."""
    servers = []

    def start(directory: Path, fail_first=(), faults=None):
        attributes = {"requests": [], "ranges": [], "fail_first": set(fail_first)}
        base = RangeRequestHandler
        if faults is not None:
            base = FaultInjectingHandler
            attributes.update(
                tries={}, injected={}, lock=threading.Lock(), release=threading.Event(), started=time.monotonic(),
                exhausted=False, **faults,
            )
        handler = type("Handler", (base,), attributes)
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, handler))
        handler.url = f"http://127.0.0.1:{server.server_address[1]}"
        return handler

    yield start
    for server, handler in servers:
        getattr(handler, "release", threading.Event()).set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not (MIRROR / "ptb-xl" / "1.0.3" / "SHA256SUMS.txt").is_file():
        pytest.skip(f"the PhysioNet mirror is not at {MIRROR}")
    return MIRROR


@pytest.fixture
def mirror_copy(mirror, tmp_path) -> Path:
    """A writable copy of the mirror (100 Hz PTB-XL and all of Chapman) to break on purpose."""
    copy = tmp_path / "physionet"
    shutil.copytree(mirror / "ecg-arrhythmia", copy / "ecg-arrhythmia")
    ptbxl = mirror / "ptb-xl" / "1.0.3"
    shutil.copytree(ptbxl, copy / "ptb-xl" / "1.0.3", ignore=shutil.ignore_patterns("records500"))
    return copy


@pytest.fixture(scope="session")
def real_ptbxl_records(mirror):
    """Real PTB-XL records of the mirror at 100 Hz, in mV [N, 12, 1000], with their class names [N]:
    every SB and GSVT record and the first 40 SR and AFIB records (the classes of config.yaml)."""
    import numpy as np

    from synthecg.data.labels import ClassMap, ptbxl_catalogue
    from synthecg.data.records import SignalSpec, read_record

    ptbxl = mirror / "ptb-xl" / "1.0.3"
    classes = yaml.safe_load((REPO / "config.yaml").read_text())["classes"]
    catalogue = ptbxl_catalogue(ptbxl / "ptbxl_database.csv", ClassMap.from_config(classes), 100)
    present = np.array([(ptbxl / f"{path}.hea").exists() for path in catalogue.record_path])
    catalogue = catalogue[(catalogue.label != "").to_numpy() & present]
    catalogue = pd.concat([catalogue[catalogue.label == name].head(40 if name in ("SR", "AFIB") else None)
                           for name in classes])
    spec = SignalSpec(source_fs=100, fs=100)
    x = np.stack([read_record(ptbxl / path, spec) for path in catalogue.record_path])
    return x, catalogue.label.to_numpy()


def write_config(workdir: Path, **overrides) -> Path:
    """The default config.yaml with `overrides`, written into `workdir`."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # class order is label order
    return path


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the Snakemake CLI on this repo's Snakefile with results under `workdir`."""
    command = [
        str(SNAKEMAKE),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        "--cores", "2",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result
