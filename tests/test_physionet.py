import hashlib

import pytest

from synthecg.data.physionet import DatasetSource, Mirror, checked_relpath, parse_checksums
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


def test_a_corrupt_download_is_deleted_and_reported(tmp_path, serve):
    folder = make_remote(tmp_path / "remote", {"a.dat": b"good"})
    (folder / "a.dat").write_bytes(b"evil")  # the server now sends bytes that fail the checksum
    mirror = Mirror(serve(tmp_path / "remote").url, SOURCE, tmp_path / "cache", backoff=0)
    with pytest.raises(DownloadError, match=r"a.dat: checksum mismatch.*deleted") as caught:
        mirror.fetch("a.dat")
    assert caught.value.reason == "checksum_mismatch"
    assert list((tmp_path / "cache/toy/1.0").iterdir()) == [tmp_path / "cache/toy/1.0/SHA256SUMS.txt"]
    assert mirror.manifest()["files"]["a.dat"]["status"] == "failed"


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
