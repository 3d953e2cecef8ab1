"""Official checkpoints through real huggingface_hub and real HTTP, against tests/hub_server.py."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import torch

import model.hub.download as dl
from model import PRESETS, build
from model.hub.weights import load_manifest, scan_weights, sha256_file


@pytest.fixture
def at_hub(hub, monkeypatch, tmp_path):
    """HF_ENDPOINT at the local hub, a fresh hub cache; yields the cache folder."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    return tmp_path / "hub_cache"


def test_listing_and_candidates_by_name(hub, at_hub):
    files = dl.list_official()
    paths = {f.path for f in files}
    assert set(hub.paths.values()) <= paths and "README.md" in paths
    assert all(f.size for f in files)
    # As on the Hub: checkpoints are LFS files (sha256 listed), small text files are plain git files
    # (no sha256; their git blob id instead).
    by_path = {f.path: f for f in files}
    assert all(by_path[p].sha256 and not by_path[p].git_oid for p in hub.paths.values())
    readme = by_path["README.md"]
    assert readme.sha256 is None and readme.git_oid == dl.git_blob_id(hub.root / "README.md")
    for preset, path in hub.paths.items():
        assert dl.candidates_for(preset, files)[0].path == path
    # Names that are not checkpoints never become candidates; no file means no candidate.
    assert [f.path for f in dl.candidates_for("mambairv2_lightSR_x3", files)] == [
        "MambaIRv2_ckpt/mambairv2_lightSR_x3.pth"]
    assert dl.candidates_for("mambairv2_classicSR_x4", files) == []
    assert dl.candidates_for("mambairv2_JPEG_q10", [dl.OfficialFile("MambaIRv2_ckpt/mambairv2_jpeg_q10.pth")])
    with pytest.raises(dl.DownloadError, match="unknown preset"):
        dl.candidates_for("nope", files)


def test_fetch_verifies_and_registers_official(hub, at_hub, tmp_path):
    dest = tmp_path / "weights" / "official"
    path = dl.fetch("mambairv2_lightSR_x2", dest)
    assert path == dest / "mambairv2_lightSR_x2.pth"
    served = hub.root / hub.paths["mambairv2_lightSR_x2"]
    assert sha256_file(path) == sha256_file(served)
    (entry,) = load_manifest(dest / "manifest.json")
    assert entry["source"] == "official" and entry["preset"] == "mambairv2_lightSR_x2"
    assert entry["url"].startswith(hub.url) and entry["url"].endswith(hub.paths["mambairv2_lightSR_x2"])
    # Present and unchanged: no second download.
    gets = sum(1 for m, p in hub.requests if m == "GET" and "/resolve/" in p)
    assert dl.fetch("mambairv2_lightSR_x2", dest) == path
    assert sum(1 for m, p in hub.requests if m == "GET" and "/resolve/" in p) == gets
    entries, skipped = scan_weights(tmp_path / "weights")
    assert [e["source"] for e in entries] == ["official"] and skipped == []
    # The checkpoint (LFS) came from the CDN stand-in, after a redirect that huggingface_hub did not
    # follow for its HEAD (another origin): exactly one GET of the bytes there.
    sha = sha256_file(served)
    assert [m for m, p in hub.cdn_requests if p.startswith(f"/{sha}")] == ["GET"]


def test_fetch_refuses_files_that_are_not_the_network(hub, at_hub, tmp_path):
    with pytest.raises(dl.DownloadError, match="not the MambaIR_lightSR_x3 network"):
        dl.fetch("MambaIR_lightSR_x3", tmp_path)
    with pytest.raises(dl.DownloadError, match="not a usable checkpoint"):
        dl.fetch("mambairv2_lightSR_x3", tmp_path)
    with pytest.raises(dl.DownloadError, match="has no file for mambairv2_classicSR_x4"):
        dl.fetch("mambairv2_classicSR_x4", tmp_path)
    assert not list(tmp_path.glob("*.pth"))


def test_fetch_many_reports_what_it_got(hub, at_hub, tmp_path):
    said = []
    report = dl.fetch_many(["MambaIR_lightSR_x4", "MambaIR_lightSR_x3"], tmp_path, log=said.append)
    assert set(report.fetched) == {"MambaIR_lightSR_x4"} and set(report.failed) == {"MambaIR_lightSR_x3"}
    assert report.line() == "Official weights: 1 of 2 present; not available: MambaIR_lightSR_x3."
    assert any("fetching MambaIRv1_ckpt/MambaIR_lightSRx4.pth" in s for s in said)


def test_offline_uses_the_hub_cache(hub, at_hub, tmp_path, monkeypatch):
    dl.fetch("MambaIR_lightSR_x2", tmp_path / "a")
    n = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert [f.path for f in dl.list_official()] == [hub.paths["MambaIR_lightSR_x2"]]
    path = dl.fetch("MambaIR_lightSR_x2", tmp_path / "b")
    assert sha256_file(path) == sha256_file(tmp_path / "a" / path.name)
    assert len(hub.requests) == n  # nothing asked of the hub
    report = dl.fetch_many(["mambairv2_lightSR_x4"], tmp_path / "b")
    assert report.failed and not report.problem  # listed from the cache: not there


def test_a_hub_that_does_not_answer_fails_fast(tmp_path, monkeypatch):
    """A server that accepts the connection and never answers: the short probe gives up, no hang."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()
    threading.Thread(target=lambda: stop.wait(30), daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setenv("MAMBAIR_HUB_TIMEOUT", "0.5")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t0 = time.monotonic()
    report = dl.fetch_many(dl.APP_PRESETS, tmp_path)
    took = time.monotonic() - t0
    stop.set()
    sock.close()
    assert not report.fetched and set(report.failed) == set(dl.APP_PRESETS)
    assert report.line().startswith("Official weights not fetched: the hub at http://127.0.0.1")
    assert took < 20  # one probe of 0.5 s, not one retry loop per file


def test_register_local_is_official_only_by_hash(hub, at_hub, tmp_path):
    served = hub.root / hub.paths["mambairv2_lightSR_x4"]
    mine = tmp_path / "downloads" / "renamed.pth"
    mine.parent.mkdir()
    mine.write_bytes(served.read_bytes())
    path, source = dl.register_local(mine, "mambairv2_lightSR_x4", tmp_path / "official")
    assert source == "official" and path.name == "renamed.pth"
    torch.manual_seed(5)
    other = tmp_path / "downloads" / "mambairv2_lightSR_x4.pth"
    torch.save({"params": build(PRESETS["mambairv2_lightSR_x4"]).state_dict()}, other)
    path, source = dl.register_local(other, "mambairv2_lightSR_x4", tmp_path / "official")
    assert source == "user file"
    by_file = {e["file"]: e for e in load_manifest(tmp_path / "official" / "manifest.json")}
    assert by_file["mambairv2_lightSR_x4.pth"]["source"] == "user file"
    assert "not marked official" in by_file["mambairv2_lightSR_x4.pth"]["notes"]


def test_broken_manifest_is_reported_never_overwritten(hub, at_hub, tmp_path):
    dest = tmp_path / "w" / "official"
    dest.mkdir(parents=True)
    (dest / "manifest.json").write_text("[{broken")
    with pytest.raises(dl.DownloadError, match="manifest.json is broken"):
        dl.fetch("mambairv2_lightSR_x2", dest)
    assert (dest / "manifest.json").read_text() == "[{broken"
    assert not (dest / "mambairv2_lightSR_x2.pth").exists()
    # The registry lists the folder's other files as of unknown provenance and says why.
    torch.save({"params": build(PRESETS["mambairv2_lightSR_x2"]).state_dict()}, dest / "x.pth")
    entries, skipped = scan_weights(tmp_path / "w")
    assert [e["source"] for e in entries] == ["user file"]
    assert skipped[0]["file"] == "official/manifest.json" and "broken manifest" in skipped[0]["reason"]


def test_cli_lists_fetches_and_explains_offline(hub, at_hub, tmp_path, capsys, monkeypatch):
    assert dl.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert f"{hub.paths['MambaIR_lightSR_x4']}" in out and "mambairv2_classicSR_x4" in out
    assert dl.main(["mambairv2_lightSR_x4", "--dest", str(tmp_path / "w")]) == 0
    assert json.loads((tmp_path / "w" / "manifest.json").read_text())[0]["source"] == "official"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert dl.main(["mambairv2_lightSR_x2", "--dest", str(tmp_path / "w")]) == 1
    err = capsys.readouterr()
    assert "Official weights not fetched" in err.out and "--local FILE" in err.err


def test_small_plain_file_is_served_without_lfs(hub, at_hub):
    """A small text file: no redirect, no sha256; huggingface_hub gets it from the hub itself."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download

    meta = get_hf_file_metadata(dl.file_url("README.md"))
    assert meta.etag == dl.git_blob_id(hub.root / "README.md") and meta.location == dl.file_url("README.md")
    lfs_meta = get_hf_file_metadata(dl.file_url(hub.paths["MambaIR_lightSR_x2"]))
    assert lfs_meta.location.startswith(hub.cdn_url)
    assert lfs_meta.etag == sha256_file(hub.root / hub.paths["MambaIR_lightSR_x2"])
    n = len(hub.cdn_requests)
    path = hf_hub_download(dl.repo_id(), "README.md", endpoint=dl.endpoint())
    assert open(path, "rb").read() == (hub.root / "README.md").read_bytes() and len(hub.cdn_requests) == n
    (listed,) = [f for f in dl.list_official() if f.path == "README.md"]
    assert dl.same_content(path, listed) is True


def test_damaged_lfs_download_is_refused(hub, at_hub, tmp_path):
    rel = hub.paths["mambairv2_lightSR_x4"]
    hub.damaged.add(rel)
    try:
        with pytest.raises(dl.DownloadError, match="sha256 differs from the repository's listing"):
            dl.fetch("mambairv2_lightSR_x4", tmp_path)
    finally:
        hub.damaged.discard(rel)
    assert not list(tmp_path.glob("*.pth"))


@pytest.fixture(scope="module")
def plain_hub(tmp_path_factory):
    """A hub whose .gitattributes tracks nothing: every file below 10 MiB, checkpoints too, is plain git."""
    from conftest import official_repo_files
    from hub_server import LFS_MIN_SIZE, HubServer

    root = tmp_path_factory.mktemp("plain_repo")
    paths = official_repo_files(root)
    server = HubServer(root, is_lfs=lambda rel, size: size >= LFS_MIN_SIZE).start()
    server.paths = paths
    yield server
    server.stop()


def test_checkpoint_stored_without_lfs_is_checked_by_git_blob_id(plain_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", plain_hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    rel = plain_hub.paths["mambairv2_lightSR_x2"]
    (listed,) = [f for f in dl.list_official() if f.path == rel]
    assert listed.sha256 is None and listed.git_oid == dl.git_blob_id(plain_hub.root / rel)
    plain_hub.damaged.add(rel)
    try:
        with pytest.raises(dl.DownloadError, match="git blob id differs from the repository's listing"):
            dl.fetch("mambairv2_lightSR_x2", tmp_path / "a")
    finally:
        plain_hub.damaged.discard(rel)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache2"))  # the damaged copy stays in the first
    path = dl.fetch("mambairv2_lightSR_x2", tmp_path / "a")
    assert sha256_file(path) == sha256_file(plain_hub.root / rel) and plain_hub.cdn_requests == []
    gets = sum(1 for m, p in plain_hub.requests if m == "GET" and "/resolve/" in p)
    assert dl.fetch("mambairv2_lightSR_x2", tmp_path / "a") == path  # present: matched by git blob id
    assert sum(1 for m, p in plain_hub.requests if m == "GET" and "/resolve/" in p) == gets
    mine = tmp_path / "renamed.pth"
    mine.write_bytes(path.read_bytes())
    _, source = dl.register_local(mine, "mambairv2_lightSR_x2", tmp_path / "b")
    assert source == "official"
    assert "git blob id checked" in load_manifest(tmp_path / "b" / "manifest.json")[0]["notes"]
