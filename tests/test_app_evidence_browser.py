"""The Evidence tab in a real browser (Debian's chromium via Playwright): every view clicked through.

Skipped when Playwright or /usr/bin/chromium is missing; tiny random models keep it to seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from browser import SHOTS, require_browser
from PIL import Image

pytestmark = pytest.mark.browser

require_browser()


def _photo(path: Path) -> str:
    yy, xx = np.mgrid[0:32, 0:40]
    rgb = np.stack([xx * 6, yy * 7, 255 - (xx + yy) * 3], axis=-1).astype(np.uint8)
    rgb[8:20, 10:24] = (240, 200, 40)
    Image.fromarray(rgb).save(path)
    return str(path)



def test_evidence_tab_clicks_through_every_view(page, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_selector("#restore-btn")
    page.locator("#input-image input[type=file]").set_input_files(_photo(tmp_path / "photo.png"))
    page.wait_for_selector("#input-image img")
    page.get_by_label("Treat as ground truth: degrade, restore, score").check()
    page.get_by_role("tab", name="Evidence").click()

    page.click("#ev-redundancy-btn")
    page.wait_for_selector("#ev-redundancy table")
    assert "0.7" in page.inner_text("#ev-redundancy")

    page.click("#ev-decay-btn")
    page.wait_for_selector("#ev-decay p")
    assert "raster order" in page.inner_text("#ev-decay")

    page.click("#ev-ase-btn")
    page.wait_for_function("document.querySelector('#ev-ase') && "
                           "document.querySelector('#ev-ase').innerText.includes('sorted position')")
    # Click a pixel of the enlarged crop: the query moves there and the map is redrawn.
    pick = page.locator("#ev-ase-pick img").first
    pick.wait_for(state="visible")
    box = pick.bounding_box()
    pick.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.1})
    page.wait_for_function("document.querySelector('#ev-row input').value !== '-1'")
    row = int(float(page.locator("#ev-row input").input_value()))
    col = int(float(page.locator("#ev-col input").input_value()))
    assert 0 <= row <= 3 and 0 <= col <= 3  # near the top-left corner of the 20x16 LR crop
    page.wait_for_function("(want) => document.querySelector('#ev-ase').innerText.includes(want)",
                           arg=f"pixel ({row}, {col})")  # the map is redrawn for the clicked pixel

    page.click("#ev-ablation-btn")
    page.wait_for_selector("#ev-ablation table")
    text = page.inner_text("#ev-ablation")
    for name in ("as trained", "SGN off", "prompt off", "aligned prompts", "PSNR"):
        assert name in text
    assert page.locator("#ev-ablation-out img").count() >= 4

    page.click("#ev-quality-btn")
    page.wait_for_selector("#ev-quality table")

    # Prompt quality across a run: two uploaded checkpoints, one row each, next to PSNR.
    from test_app_evidence import _series_checkpoint

    ckpts = [str(_series_checkpoint(tmp_path / "run" / f"net_g_{s}.pth", s)) for s in (200, 100)]
    page.locator("#ev-series-files input[type=file]").set_input_files(ckpts)
    page.wait_for_function("document.querySelector('#ev-series-files').innerText.includes('net_g_200')")
    page.click("#ev-series-btn")
    page.wait_for_selector("#ev-series table")
    text = page.inner_text("#ev-series")
    assert text.index("step 100") < text.index("step 200") and "PSNR" in text

    page.locator("#ev-cost-sizes textarea, #ev-cost-sizes input").first.fill("16, 24")
    page.click("#ev-cost-btn")
    page.wait_for_selector("#ev-cost table")
    assert "scan state" in page.inner_text("#ev-cost")

    # Redundancy, two decay plots, ASE, prompt quality, the series and cost figures are drawn.
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 7")
    page.screenshot(path=str(SHOTS / "evidence.png"), full_page=True)
    assert (SHOTS / "evidence.png").stat().st_size > 10_000
