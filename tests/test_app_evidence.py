"""The Evidence tab through gradio_client (tiny random models): every view is a named endpoint."""

from __future__ import annotations

import numpy as np
import pytest
from browser import require_gradio_client
from PIL import Image

gradio_client = require_gradio_client()

VARIANTS = ("as trained", "SGN off", "prompt off", "aligned prompts")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    d = tmp_path_factory.mktemp("app_evidence")
    yy, xx = np.mgrid[0:32, 0:40]
    rgb = np.stack([xx * 6, yy * 7, (xx + yy) * 3], axis=-1).astype(np.uint8)
    rgb[8:20, 10:24] = 230
    Image.fromarray(rgb).save(d / "gt.png")
    return gradio_client.handle_file(str(d / "gt.png"))


def _rows(md: str) -> list[list[str]]:
    """Body rows of the first markdown table, as cells."""
    out = []
    for line in md.splitlines():
        if line.startswith("| ") and "---" not in line:
            out.append([c.strip() for c in line.strip("|").split("|")])
    return out[1:]


def test_evidence_endpoints_are_named(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/ablation", "/scan_redundancy", "/decay", "/ase_query", "/prompt_quality", "/cost",
            "/prompt_quality_series"} <= names


def test_ablation_ground_truth_mode_scores_every_variant(client, photo):
    from app.handlers import MODE_GT

    outs, diffs, table = client.predict(photo, "SR x2", MODE_GT, api_name="/ablation")
    rows = _rows(table)
    assert [r[0] for r in rows] == list(VARIANTS)
    for r in rows:
        psnr, ssim = float(r[2]), float(r[3])
        assert 0 < psnr < 100 and -1 <= ssim <= 1
    assert len(outs) == 4 and len(diffs) == 3
    with Image.open(outs[0]["image"]) as im:
        assert im.size == (40, 32)  # x2 of the 20x16 LR made from the 40x32 ground truth
    assert "untrained" in table or "random weights" in table


def test_ablation_as_is_has_no_scores(client, photo):
    _, _, table = client.predict(photo, "SR x2", "Restore as is", api_name="/ablation")
    assert [r[0] for r in _rows(table)] == list(VARIANTS)
    assert "PSNR" not in table


def test_views_return_figures_and_text(client, photo):
    fig, md = client.predict(photo, "SR x2", "Restore as is", api_name="/scan_redundancy")
    rows = _rows(md)
    assert fig is not None and rows and all(-1 <= float(r[1]) <= 1 and -1 <= float(r[2]) <= 1 for r in rows)
    v2, v1, md = client.predict(photo, "SR x2", "Restore as is", "1.0", api_name="/decay")
    assert v2 is not None and v1 is not None and "raster order" in md
    fig, md, pick = client.predict(photo, "SR x2", "Restore as is", "0.0", 2, 3, api_name="/ase_query")
    assert fig is not None and "pixel (2, 3)" in md
    with Image.open(pick) as im:
        big = np.asarray(im.convert("RGB"))
    assert big.shape == (32 * 4, 40 * 4, 3)  # the 40x32 input (as is) enlarged 4x
    assert (big[2 * 4:3 * 4, 3 * 4:4 * 4] == (0, 255, 0)).all()  # the query pixel marked
    fig, md = client.predict(photo, "SR x2", "Restore as is", api_name="/prompt_quality")
    assert fig is not None and len(_rows(md)) >= 2
    fig, md = client.predict("SR x2", "16, 24x32", api_name="/cost")
    assert "scan state" in md and "24x32" in md


def test_bad_inputs_are_user_errors(client, photo):
    with pytest.raises(Exception, match="sizes"):
        client.predict("SR x2", "big", api_name="/cost")
    with pytest.raises(Exception, match="outside"):
        client.predict(photo, "SR x2", "Restore as is", "0.0", 500, 3, api_name="/ase_query")


def _series_checkpoint(path, seed: int):
    """A BasicSR-style ``{'params': ...}`` file of one tiny MambaIRv2-light x2 configuration."""
    import torch

    from model import build
    from model.config import MambaIRv2LightConfig

    cfg = MambaIRv2LightConfig(upscale=2, embed_dim=16, d_state=4, depths=(1, 1), num_heads=(2, 2),
                               window_size=8, inner_rank=8, num_tokens=8, convffn_kernel_size=3)
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": build(cfg).state_dict()}, path)
    return path


def test_prompt_quality_series_endpoint_over_a_checkpoint_series(client, tmp_path):
    """Checkpoints of one run (uploaded, then as a folder): one row per checkpoint in iteration order,
    scored on the centre 128x128 of the image exactly as
    model.analysis.evidence.prompt_quality_series does."""
    from model.analysis.evidence import prompt_quality_series

    models = tmp_path / "experiments" / "run" / "models"
    files = [_series_checkpoint(models / f"net_g_{step}.pth", seed=step) for step in (3000, 1000, 2000)]
    yy, xx = np.mgrid[0:140, 0:150]
    rgb = np.stack([xx * 1.6, yy * 1.8, (xx + yy) * 0.8], axis=-1).astype(np.uint8)
    rgb[40:90, 50:110] = 220
    Image.fromarray(rgb).save(tmp_path / "gt.png")
    photo = gradio_client.handle_file(str(tmp_path / "gt.png"))
    fig, md = client.predict([gradio_client.handle_file(str(f)) for f in files], "", photo,
                             api_name="/prompt_quality_series")
    rows = _rows(md)
    assert fig is not None and [r[0] for r in rows] == ["step 1000", "step 2000", "step 3000"]
    gt = rgb[6:134, 11:139].astype(np.float32) / 255.0  # the centre 128x128 of the 140x150 image
    want = prompt_quality_series(files, gt, crop=64)
    for r, w in zip(rows, want, strict=True):
        assert float(r[1]) == pytest.approx(w["psnr"], abs=0.006)
        assert float(r[4]) == pytest.approx(w["feature_ratio"], abs=0.0006)
    assert len({r[1] for r in rows}) == 3  # three different networks, three scores
    assert "128×128" in md and "untrained" in md  # random routers are flagged
    run = str(tmp_path / "experiments" / "run")
    _, md2 = client.predict([], run, photo, api_name="/prompt_quality_series")
    assert [r[0] for r in _rows(md2)] == ["step 1000", "step 2000", "step 3000"]

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not a folder"):
        client.predict([], str(tmp_path / "nope"), photo, api_name="/prompt_quality_series")
