import hashlib

import pytest

from synthecg.data.physionet import DatasetSource, Mirror, checked_relpath, is_definitive, parse_checksums
from synthecg.errors import DownloadError, PipelineError

SOURCE = DatasetSource("toy", "toy/1.0", "Toy 1.0")


def make_remote(root, files):
    """A dataset version folder with SHA256SUMS.txt listing `files` {relpath: bytes}."""
    folder = root / "toy" / "1.0"
    lines = []
    for relpath, content in files.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(content)
        lines.append(f"{hashlib.sha256(content).hexdigest()}  {relpath}")
    (folder / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\..\\b", "C:/x", ""])
def test_unsafe_listed_paths_are_refused(bad):
    with pytest.raises(DownloadError, match="RECORDS: refusing the listed path"):
        checked_relpath(bad, "RECORDS")


def test_checksum_lines_are_parsed_and_checked():
    digest = "a" * 64
    assert parse_checksums(f"{digest}  records/x.dat\n\n{digest} *y.hea\n", "SUMS") == {
        "records/x.dat": digest, "y.hea": digest}
    with pytest.raises(DownloadError, match="SUMS, line 1"):
        parse_checksums("nonsense\n", "SUMS")
    with pytest.raises(DownloadError, match="refusing"):
        parse_checksums(f"{digest}  ../x\n", "SUMS")


def test_fetch_verifies_caches_and_refetches_nothing(tmp_path, serve):
    make_remote(tmp_path / "remote", {"a.dat": b"x" * 1000, "sub/b.hea": b"header"})
    server = serve(tmp_path / "remote")
    url, requests = server.url, server.requests
    mirror = Mirror(url, SOURCE, tmp_path / "cache", backoff=0)
    failures = mirror.fetch_many(["a.dat", "sub/b.hea"], "toy")
    assert failures == {}
    assert (tmp_path / "cache/toy/1.0/sub/b.hea").read_bytes() == b"header"
    assert {v["status"] for v in mirror.status.values()} == {"fetched"}
    requests.clear()
    again = Mirror(url, SOURCE, tmp_path / "cache", backoff=0)
    again.fetch_many(["a.dat", "sub/b.hea"], "toy")
    assert requests == []  # SHA256SUMS.txt and both files come from the verified cache
    assert {v["status"] for v in again.status.values()} == {"cached"}


def test_a_partial_file_is_resumed_with_a_range_request(tmp_path, serve):
    content = bytes(range(256)) * 40
    make_remote(tmp_path / "remote", {"big.dat": content})
    server = serve(tmp_path / "remote")
    partial = tmp_path / "cache/toy/1.0/big.dat.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(content[:4000])
    mirror = Mirror(server.url, SOURCE, tmp_path / "cache", backoff=0)
    assert mirror.fetch("big.dat").read_bytes() == content
    assert server.ranges == ["bytes=4000-"]
    assert not partial.exists()


def test_transient_server_errors_are_retried(tmp_path, serve):
    make_remote(tmp_path / "remote", {"a.dat": b"abc"})
    server = serve(tmp_path / "remote", fail_first={"/toy/1.0/a.dat"})
    mirror = Mirror(server.url, SOURCE, tmp_path / "cache", backoff=0)
    assert mirror.fetch("a.dat").read_bytes() == b"abc"
    assert server.requests.count("/toy/1.0/a.dat") == 2


def test_transient_failures_back_off_with_jitter_then_fail_as_transient_and_resume_later(tmp_path, serve, monkeypatch):
    content = bytes(range(256)) * 2000
    make_remote(tmp_path / "remote", {"a.dat": content})
    script = {"/toy/1.0/a.dat": ["500", "reset", "truncate", "502"]}
    server = serve(tmp_path / "remote", faults={"script": script})
    waits = []
    monkeypatch.setattr("synthecg.data.physionet.time.sleep", waits.append)
    mirror = Mirror(server.url, SOURCE, tmp_path / "cache", retries=3, backoff=1.0)
    with pytest.raises(DownloadError, match=r"/toy/1.0/a.dat: failed after 4 tries \(HTTP 502") as caught:
        mirror.fetch("a.dat")
    assert caught.value.reason == "transient" and not is_definitive(caught.value)
    assert server.injected == {"500": 1, "reset": 1, "truncate": 1, "502": 1}
    # Exponential backoff, each wait drawn between half and all of 1, 2, 4 s.
    assert len(waits) == 3 and all(2**i / 2 <= wait <= 2**i for i, wait in enumerate(waits))
    # The truncated body was kept as a part; the next run continues it and verifies the whole.
    part = tmp_path / "cache/toy/1.0/a.dat.part"
    kept = part.stat().st_size
    assert 0 < kept < len(content)
    assert Mirror(server.url, SOURCE, tmp_path / "cache").fetch("a.dat").read_bytes() == content
    assert server.ranges == [f"bytes={kept}-"] and not part.exists()


def test_retry_after_is_honoured_and_capped(tmp_path, serve, monkeypatch):
    make_remote(tmp_path / "remote", {"a.dat": b"abc"})
    script = {"/toy/1.0/a.dat": ["429/7", "503/100000", "503/Wed, 21 Oct 2015 07:28:00 GMT"]}
    server = serve(tmp_path / "remote", faults={"script": script})
    waits = []
    monkeypatch.setattr("synthecg.data.physionet.time.sleep", waits.append)
    assert Mirror(server.url, SOURCE, tmp_path / "cache", retries=3).fetch("a.dat").read_bytes() == b"abc"
    assert waits == [7.0, 300.0, 0.0]  # as asked; at most 5 minutes; a date already past: at once


@pytest.mark.parametrize(("status", "definitive"), [("404", True), ("410", True), ("403", False), ("401", False)])
def test_refusals_are_not_retried_and_only_missing_files_are_definitive(tmp_path, serve, status, definitive):
    make_remote(tmp_path / "remote", {"a.dat": b"abc"})
    server = serve(tmp_path / "remote", faults={"script": {"/toy/1.0/a.dat": [status]}})
    with pytest.raises(DownloadError, match=f"a.dat: HTTP {status}") as caught:
        Mirror(server.url, SOURCE, tmp_path / "cache", retries=3, backoff=0).fetch("a.dat")
    assert caught.value.reason == f"http_{status}" and is_definitive(caught.value) == definitive
    assert server.requests.count("/toy/1.0/a.dat") == 1


def test_a_corrupt_download_is_deleted_and_reported(tmp_path, serve):
    folder = make_remote(tmp_path / "remote", {"a.dat": b"good"})
    (folder / "a.dat").write_bytes(b"evil")  # the server now sends bytes that fail the checksum
    mirror = Mirror(serve(tmp_path / "remote").url, SOURCE, tmp_path / "cache", backoff=0)
    with pytest.raises(DownloadError, match=r"a.dat: checksum mismatch.*deleted") as caught:
        mirror.fetch("a.dat")
    assert caught.value.reason == "checksum_mismatch"
    assert list((tmp_path / "cache/toy/1.0").iterdir()) == [tmp_path / "cache/toy/1.0/SHA256SUMS.txt"]
    assert mirror.location_record()["files"]["a.dat"]["status"] == "failed"
    assert "a.dat" not in mirror.verified_files()


def test_missing_files_and_unlisted_files(tmp_path, serve):
    folder = make_remote(tmp_path / "remote", {"a.dat": b"x"})
    (folder / "a.dat").unlink()
    mirror = Mirror(serve(tmp_path / "remote").url, SOURCE, tmp_path / "cache", retries=0)
    with pytest.raises(DownloadError, match=r"/toy/1.0/a.dat: HTTP 404") as caught:
        mirror.fetch("a.dat")
    assert caught.value.reason == "http_404"
    with pytest.raises(DownloadError, match="not listed in .*SHA256SUMS.txt"):
        mirror.fetch("unlisted.dat")


def test_a_server_without_the_dataset_fails_with_the_url(tmp_path, serve):
    (tmp_path / "empty").mkdir()
    url = serve(tmp_path / "empty").url
    with pytest.raises(DownloadError, match=f"{url}/toy/1.0/SHA256SUMS.txt: HTTP 404"):
        Mirror(url, SOURCE, tmp_path / "cache", retries=0)


def test_local_folder_is_verified_in_place_and_never_touched(tmp_path):
    folder = make_remote(tmp_path / "local", {"a.dat": b"good", "b.dat": b"fine"})
    (folder / "b.dat").write_bytes(b"bad!")
    mirror = Mirror(str(tmp_path / "local"), SOURCE, tmp_path / "cache")
    assert mirror.fetch("a.dat") == folder / "a.dat"
    with pytest.raises(DownloadError, match="b.dat: checksum mismatch.*left as it is"):
        mirror.fetch("b.dat")
    assert (folder / "b.dat").read_bytes() == b"bad!"
    assert not (tmp_path / "cache").exists()
    with pytest.raises(PipelineError, match="config key physionet_url"):
        Mirror(str(tmp_path / "nowhere"), SOURCE, tmp_path / "cache")
