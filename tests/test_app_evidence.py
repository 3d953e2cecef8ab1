"""The Evidence tab through gradio_client (tiny random models): every view is a named endpoint."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

VARIANTS = ("as trained", "SGN off", "prompt off", "aligned prompts")


@pytest.fixture(scope="module")
def client(tiny_app_url):
    return gradio_client.Client(tiny_app_url, verbose=False)


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
    assert {"/ablation", "/scan_redundancy", "/decay", "/ase_query", "/prompt_quality", "/cost"} <= names


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
