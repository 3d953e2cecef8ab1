"""The app's onnxruntime restore backend (Settings: Restore runtime) gives the PyTorch pictures.

Tiny random models (MAMBAIR_APP_DEMO=tiny); the first onnxruntime call exports both networks
(verified there against PyTorch to 1e-4) into a temporary cache folder.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    """A fresh ONNX cache folder for this module (MAMBAIR_ONNX_DIR), shared by its tests."""
    d = tmp_path_factory.mktemp("onnx_cache")
    old = os.environ.get("MAMBAIR_ONNX_DIR")
    os.environ["MAMBAIR_ONNX_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MAMBAIR_ONNX_DIR", None)
    else:
        os.environ["MAMBAIR_ONNX_DIR"] = old


def _png(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_restore_through_onnxruntime_equals_pytorch(client, tmp_path, onnx_dir) -> None:
    yy, xx = np.mgrid[0:24, 0:30]
    rgb = np.stack([xx * 8, yy * 9, (xx + yy) * 4], axis=-1).astype(np.uint8)
    rgb[6:15, 8:20] = 220
    Image.fromarray(rgb).save(tmp_path / "in.png")
    img = gradio_client.handle_file(str(tmp_path / "in.png"))
    torch_out = client.predict(img, task="SR x2", runtime="PyTorch", api_name="/restore")
    onnx_out = client.predict(img, task="SR x2", runtime="onnxruntime", api_name="/restore")
    for k in (0, 1):  # MambaIRv2, MambaIR
        a, b = _png(torch_out[k]), _png(onnx_out[k])
        assert a.shape == b.shape == (48, 60, 3)
        assert np.abs(a - b).max() <= 1  # within 1/255
    details = onnx_out[3]
    assert "| onnxruntime |" in details and "internals, capture and LAM run on PyTorch" in details
    assert "onnxruntime" not in torch_out[3]
    files = sorted(p.name for p in onnx_dir.iterdir())
    assert len(files) == 2 and all(f.endswith("_dynamic.onnx") for f in files)  # one per network, cached
    again = client.predict(img, task="SR x2", runtime="onnxruntime", api_name="/restore")
    np.testing.assert_array_equal(_png(again[0]), _png(onnx_out[0]))


def test_weights_tab_download_as_onnx_gives_the_networks_file(client, onnx_dir) -> None:
    import torch

    from app import cache
    from model.export import run_session, session

    path, text = client.predict(task="SR x2", family="MambaIR", api_name="/onnx_download")
    assert path.endswith(".onnx") and "input `image`" in text and "any H, W >=" in text
    net = cache.get_model(cache.tasks()["SR x2"]["MambaIR"])  # the same process serves the app
    x = torch.rand(1, 3, 13, 22)
    with torch.no_grad():
        assert float((run_session(session(path), x) - net(x)).abs().max()) < 1e-4
