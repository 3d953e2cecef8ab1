"""Suite-wide settings (set before torch or numba are imported) and the shared launched-app fixture."""

import os

# numba's OpenMP workers spin while idle and slow every later torch op ~10x on
# a 2-core machine; passive waiting removes that (measured in tests/test_vectors).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import pytest  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI=true, stop at once when the browser or API tests could not run (never a silent skip)."""
    from browser import ui_missing, under_ci

    missing = ui_missing() if under_ci() else []
    if missing:
        pytest.exit("CI=true but the browser and API tests cannot run; missing: " + "; ".join(missing),
                    returncode=1)


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def launched_tiny_demo() -> Iterator[str]:
    """The demo with tiny random models (MAMBAIR_APP_DEMO=tiny), launched on a free local port; yields
    its URL. The model cache is emptied before and after, so the demo sees only the tiny models."""
    from app import build_demo, cache

    old = os.environ.get("MAMBAIR_APP_DEMO")
    os.environ["MAMBAIR_APP_DEMO"] = "tiny"
    cache.clear()
    demo = build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                            quiet=True)
    try:
        yield url
    finally:
        demo.close()
        cache.clear()
        if old is None:
            os.environ.pop("MAMBAIR_APP_DEMO", None)
        else:
            os.environ["MAMBAIR_APP_DEMO"] = old


@pytest.fixture(scope="module")
def tiny_app_url():
    """The tiny demo (``launched_tiny_demo``), shared by a test module."""
    with launched_tiny_demo() as url:
        yield url


def official_repo_files(root, presets=("mambairv2_lightSR_x2", "mambairv2_lightSR_x4", "MambaIR_lightSR_x2",
                                       "MambaIR_lightSR_x4")):
    """Fill ``root`` like the official hub repository: official-shaped random checkpoints in its
    folders, plus files that are not checkpoints and one checkpoint of the wrong network.

    Returns {preset: repository path}. Names vary the way people write them (``lightSR_x4``,
    ``lightSRx4``) so that nothing relies on one spelling.
    """
    from pathlib import Path

    import torch

    from model import PRESETS, build

    root = Path(root)
    names = {"mambairv2_lightSR_x2": "MambaIRv2_ckpt/mambairv2_lightSR_x2.pth",
             "mambairv2_lightSR_x4": "MambaIRv2_ckpt/mambairv2_lightSR_x4.pth",
             "MambaIR_lightSR_x2": "MambaIRv1_ckpt/MambaIR_lightSR_x2.pth",
             "MambaIR_lightSR_x4": "MambaIRv1_ckpt/MambaIR_lightSRx4.pth"}
    out = {}
    for i, preset in enumerate(presets):
        torch.manual_seed(100 + i)
        path = root / names[preset]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"params": build(PRESETS[preset]).state_dict()}, path)
        out[preset] = names[preset]
    # Not checkpoints, or not the network the name says.
    (root / "README.md").write_text("# MambaIR checkpoints\n")
    (root / "MambaIRv2_ckpt" / "train_mambairv2_lightSR_x2.log").write_text("iter 1 loss 0.1\n")
    (root / "MambaIRv2_ckpt" / "mambairv2_lightSR_x3.pth").write_text("this is not a checkpoint\n")
    torch.manual_seed(99)
    torch.save({"params": build(PRESETS["mambairv2_lightSR_x3"]).state_dict()},
               root / "MambaIRv1_ckpt" / "MambaIR_lightSR_x3.pth")  # a MambaIRv2 under a MambaIR name
    return out


@pytest.fixture(scope="module")
def client(tiny_app_url):
    """A gradio_client.Client connected to the launched tiny demo."""
    import gradio_client

    return gradio_client.Client(tiny_app_url, verbose=False)


@pytest.fixture(scope="module")
def page(tiny_app_url):
    """A chromium page (Debian's chromium through Playwright) on the launched tiny demo."""
    from browser import chromium_page

    with chromium_page(tiny_app_url) as pg:
        yield pg


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A local hub (tests/hub_server.py) serving an official-shaped repository; yields the server."""
    from hub_server import HubServer

    root = tmp_path_factory.mktemp("hub_repo")
    paths = official_repo_files(root)
    server = HubServer(root).start()
    server.paths = paths
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ref_scan():
    """The reference scan for a module's tests (``pytestmark = pytest.mark.usefixtures("ref_scan")``),
    the previous choice restored afterwards."""
    from model import scan

    previous = scan._forced
    scan.set_backend("ref")
    yield
    scan.set_backend(previous)


@pytest.fixture(scope="module")
def v2net():
    """The tiny MambaIRv2-light of tests/tiny_models.py with randomized weights (seeded)."""
    import torch
    from tiny_models import V2_CFG, randomize

    from model import build

    torch.manual_seed(0)
    return randomize(build(V2_CFG), 1)


@pytest.fixture(scope="module")
def v1net():
    """The tiny MambaIR of tests/tiny_models.py with randomized weights (seeded)."""
    import torch
    from tiny_models import V1_CFG, randomize

    from model import build

    torch.manual_seed(0)
    return randomize(build(V1_CFG), 2)
