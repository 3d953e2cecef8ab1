"""Trained weights behind the app: official ones fetched from a hub (a real local HTTP server speaking
the hub's API, tests/hub_server.py), the user's own checkpoints, provenance, and a broken manifest."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import require_gradio_client
from PIL import Image

from model import build
from model.config import MambaIRv2LightConfig

gradio_client = require_gradio_client()

ROOT = Path(__file__).parent.parent

# A MambaIRv2-light configuration that is no official preset, saved the way BasicSR saves it.
CUSTOM = MambaIRv2LightConfig(upscale=3, embed_dim=16, d_state=4, depths=(1, 1), num_heads=(2, 2),
                              window_size=8, inner_rank=8, num_tokens=8, convffn_kernel_size=3)


def basicsr_checkpoint(path: Path, cfg=CUSTOM, seed: int = 3) -> Path:
    """A BasicSR-style file ``{'params': state_dict}`` of ``cfg`` with seeded random weights."""
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": build(cfg).state_dict()}, path)
    return path


class _RunsCode:
    """Unpickling this writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A .pth whose pickle runs code when loaded without weights_only."""
    with open(path, "wb") as f:
        pickle.dump({"params": {"conv_first.weight": _RunsCode(str(marker))}}, f)
    return path


def _photo(path: Path, h: int = 24, w: int = 32) -> str:
    yy, xx = np.mgrid[0:h, 0:w]
    Image.fromarray(np.stack([xx * 7, yy * 9, 255 - (xx + yy) * 4], axis=-1).astype(np.uint8)).save(path)
    return str(path)


def _free_port() -> int:
    from conftest import _free_port as free

    return free()


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"app.py did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_app_started_with_official_weights_restores_with_both(hub, tmp_path):
    """`MAMBAIR_WEIGHTS=official python app.py` fetches x2 and x4 of both networks before serving;
    `/restore` runs them with "official" on both rows of its details."""
    port = _free_port()
    env = dict(os.environ, MAMBAIR_WEIGHTS="official", HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"),
               MAMBAIR_WEIGHTS_DIR=str(tmp_path / "weights"), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", PYTHONUNBUFFERED="1")
    env.pop("MAMBAIR_APP_DEMO", None)
    env.pop("HF_HUB_OFFLINE", None)
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, proc, log)
        text = log.read_text()
        assert "fetching MambaIRv2_ckpt/mambairv2_lightSR_x2.pth" in text
        assert ("Official weights: 4 of 6 present; not available: MambaIR_lightSR_x3, "
                "mambairv2_lightSR_x3") in text
        client = gradio_client.Client(url, verbose=False)
        for task in ("SR x2", "SR x4"):
            v2, v1, _, details, *_ = client.predict(gradio_client.handle_file(_photo(tmp_path / "p.png")),
                                                    task, api_name="/restore")
            rows = [r for r in details.splitlines() if r.startswith("- **MambaIR")]  # one per network
            assert len(rows) == 2 and all(" weights: official: `" in r for r in rows), details
            s = int(task[-1])
            assert np.asarray(Image.open(v2)).shape == np.asarray(Image.open(v1)).shape == (24 * s, 32 * s, 3)
        assert sorted(p.name for p in (tmp_path / "weights" / "official").glob("*.pth")) == [
            "MambaIR_lightSR_x2.pth", "MambaIR_lightSRx4.pth", "mambairv2_lightSR_x2.pth",
            "mambairv2_lightSR_x4.pth"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_offline_start_says_so_in_one_line(tmp_path, monkeypatch):
    from app import cache, handlers

    monkeypatch.setenv("MAMBAIR_WEIGHTS", "official")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MAMBAIR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MAMBAIR_APP_DEMO", raising=False)
    cache.clear()
    try:
        line = cache.prepare_weights(lambda _msg: None)
        assert line.startswith("Official weights not fetched: the hub at http://127.0.0.1:9")
        assert line.endswith("The app starts with the weights it has.")
        status = handlers.weights_status()
        assert "\n" not in status and line in status and "random weights" in status
        assert all(sp.is_random for fams in cache.tasks().values() for sp in fams.values())
    finally:
        cache.clear()


def test_space_defaults_to_official(monkeypatch):
    from app import cache

    monkeypatch.delenv("MAMBAIR_WEIGHTS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert cache.weights_mode() == "local"
    monkeypatch.setenv("SPACE_ID", "someone/mambairv2-explorer")
    assert cache.weights_mode() == "official"
    monkeypatch.setenv("MAMBAIR_WEIGHTS", "local")
    assert cache.weights_mode() == "local"


def test_broken_manifest_is_reported_not_replaced_by_random(tmp_path, monkeypatch):
    from app import cache, handlers

    basicsr_checkpoint(tmp_path / "mine.pth")
    (tmp_path / "manifest.json").write_text("{ not json")
    monkeypatch.setenv("MAMBAIR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MAMBAIR_APP_DEMO", raising=False)
    cache.clear()
    try:
        fams = cache.tasks()["SR x3"]
        assert fams["MambaIRv2"].source == "user file"  # provenance unknown: never upgraded
        assert not any(sp.is_random for f in cache.tasks().values() for sp in f.values())
        table = handlers.weights_table()
        assert "manifest.json" in table and "broken manifest" in table
        assert "manifest.json` is broken" in handlers.weights_status()
    finally:
        cache.clear()


@pytest.fixture(scope="module")
def user_weights(tmp_path_factory):
    """MAMBAIR_WEIGHTS_DIR at an empty folder for the launched tiny demo (uploads land there)."""
    d = tmp_path_factory.mktemp("user_weights")
    old = os.environ.get("MAMBAIR_WEIGHTS_DIR")
    os.environ["MAMBAIR_WEIGHTS_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MAMBAIR_WEIGHTS_DIR", None)
    else:
        os.environ["MAMBAIR_WEIGHTS_DIR"] = old


@pytest.fixture(scope="module")
def client(user_weights, tiny_app_url):
    return gradio_client.Client(tiny_app_url, verbose=False)


def test_add_checkpoint_offers_a_custom_configuration(client, user_weights, tmp_path):
    ckpt = basicsr_checkpoint(tmp_path / "experiments" / "run" / "models" / "net_g_5000.pth")
    label, _menu, table, msg = client.predict(gradio_client.handle_file(str(ckpt)),
                                              api_name="/add_checkpoint")
    assert label == "SR x3 · net_g_5000.pth"
    assert "net_g_5000.pth" in table and "user file" in table and label in msg
    assert (user_weights / "user" / "net_g_5000.pth").read_bytes() == ckpt.read_bytes()
    photo = gradio_client.handle_file(_photo(tmp_path / "p.png", 16, 20))
    v2, v1, _, details, *_ = client.predict(photo, label, api_name="/restore")
    assert np.asarray(Image.open(v2)).shape == (48, 60, 3)
    assert v1 is None  # the tiny demo has no MambaIR at x3: the row says so
    assert "user file: `net_g_5000.pth`" in details and "no weights for this task" in details
    summary, *_ = client.predict(photo, label, api_name="/internals")
    assert "MambaIRv2 layer" in summary
    lam_v2, _, info = client.predict(photo, label, "Restore as is", -1, -1, "Saliency", 1,
                                     api_name="/lam")
    assert lam_v2 is not None and "DI" in info


def test_add_checkpoint_refuses_bad_files_and_runs_no_code(client, user_weights, tmp_path):
    from gradio_client.exceptions import AppError

    marker = tmp_path / "pwned.txt"
    evil = malicious_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(AppError, match="arbitrary code execution, so it was refused"):
        client.predict(gradio_client.handle_file(str(evil)), api_name="/add_checkpoint")
    assert not marker.exists()
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(AppError):
        client.predict(gradio_client.handle_file(str(text)), api_name="/add_checkpoint")
    png = _photo(tmp_path / "photo.png")
    with pytest.raises(AppError, match="Invalid file type|not a checkpoint file"):
        client.predict(gradio_client.handle_file(png), api_name="/add_checkpoint")
    assert not (user_weights / "user" / "evil.pth").exists()
    with pytest.raises(AppError, match="unknown task"):
        client.predict(gradio_client.handle_file(png), "SR x3 · evil.pth", api_name="/restore")


def test_timeline_endpoint_over_a_checkpoint_series(client, tmp_path):
    """Three checkpoints of one run (uploaded) and the same run as a folder: curves, label maps, the
    table per iteration, and the untrained flag for random routers."""
    models = tmp_path / "experiments" / "run" / "models"
    files = [basicsr_checkpoint(models / f"net_g_{step}.pth", seed=step) for step in (3000, 1000, 2000)]
    photo = gradio_client.handle_file(_photo(tmp_path / "p.png", 20, 28))
    curves, maps, info = client.predict([gradio_client.handle_file(str(f)) for f in files], "", photo, "1.0",
                                        api_name="/timeline")
    assert curves is not None and maps is not None
    assert info.index("step 1000") < info.index("step 2000") < info.index("step 3000")
    assert "router not trained" in info and "label maps of layer 1.0" in info
    run = str(tmp_path / "experiments" / "run")
    _, _, info2 = client.predict([], run, photo, "0.0", api_name="/timeline")
    assert info2.count("step ") >= 3

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not a folder"):
        client.predict([], str(tmp_path / "nope"), photo, "0.0", api_name="/timeline")


def test_internals_flags_a_router_that_has_not_learned(client, tmp_path):
    """Random routers (the tiny demo) are near uniform: the label pictures come with the plain warning."""
    from model.analysis.router_stats import UNTRAINED_MESSAGE

    photo = gradio_client.handle_file(_photo(tmp_path / "p.png", 16, 20))
    summary, *_ = client.predict(photo, "SR x2", api_name="/internals")
    assert UNTRAINED_MESSAGE in summary
