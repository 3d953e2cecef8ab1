"""The app in a real browser (Debian's chromium driven by Playwright): upload, restore, click, LAM.

Skipped when Playwright or /usr/bin/chromium is missing. Screenshots go to tests/screenshots/
(git-ignored). Tiny random models (MAMBAIR_APP_DEMO=tiny) keep it to seconds of model time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import SHOTS, require_browser
from PIL import Image

pytestmark = pytest.mark.browser

require_browser()


def _photo(path: Path) -> str:
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = np.stack([xx * 8, yy * 10, 255 - (xx + yy) * 4], axis=-1).astype(np.uint8)
    rgb[6:16, 8:20] = (240, 200, 40)
    Image.fromarray(rgb).save(path)
    return str(path)


def _output_img(page, elem_id: str):
    return page.locator(f"#{elem_id} img").first


def test_upload_restore_click_lam(page, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_selector("#restore-btn")
    page.locator("#input-image input[type=file]").set_input_files(_photo(tmp_path / "photo.png"))
    page.wait_for_selector("#input-image img")
    page.click("#restore-btn")
    for elem in ("out-v2", "out-v1"):
        _output_img(page, elem).wait_for(state="visible")
    page.wait_for_selector("#details table")
    assert "random weights" in page.inner_text("#details")
    page.screenshot(path=str(SHOTS / "restore.png"), full_page=True)

    # Fewer LAM steps, then click on the MambaIRv2 output: the box is drawn and LAM runs for both.
    steps = page.locator("#lam-steps input[type=number]")
    steps.fill("2")
    steps.press("Enter")
    img = _output_img(page, "out-v2")
    src_before = img.get_attribute("src")
    box = img.bounding_box()
    img.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old; }",
        arg=["#out-v2 img", src_before])
    for elem in ("lam-v2", "lam-v1"):
        _output_img(page, elem).wait_for(state="visible")
    page.wait_for_selector("#lam-info table")
    info = page.inner_text("#lam-info")
    assert "MambaIRv2" in info and "MambaIR" in info and "DI" in info
    x = int(float(page.locator("#lam-x input").input_value()))
    y = int(float(page.locator("#lam-y input").input_value()))
    assert 0 < x < 64 and 0 < y < 48  # the click landed inside the 64x48 output
    page.screenshot(path=str(SHOTS / "lam.png"), full_page=True)
    for name in ("restore.png", "lam.png"):
        assert (SHOTS / name).stat().st_size > 10_000


def test_internals_tab_draws_the_pictures(page):
    """After the upload of the first test: the Internals tab draws plots and the two images."""
    page.get_by_role("tab", name="Internals").click()
    page.click("#internals-btn")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    assert "Your pixel" in page.inner_text("#internals-summary")
    page.screenshot(path=str(SHOTS / "internals.png"), full_page=True)
    page.get_by_role("tab", name="Restore").click()


# Every plot of the lesson view and where it marks pixel (r, c) of a w-wide crop ("seq" plots the
# sorted position against the raster index r*w + c, so only its y is known in advance).
LESSON_PLOTS = {"sgn-fig": 2, "seq-fig": 1, "scan-fig": 4, "ase-fig": 2, "attn-v2": 2, "attn-v1": 2}
CYAN_MARKS_JS = """(sel) => {
  const p = document.querySelector(sel + ' .js-plotly-plot');
  if (!p || !p.data) return null;
  return p.data.filter(t => t.type === 'scatter' && t.marker && t.marker.color === 'cyan'
                       && t.x && t.x[0] !== null).map(t => [t.x[0], t.y[0]]);
}"""


def test_click_a_pixel_and_every_picture_follows_it(page):
    """Lesson view: a click on the input picture moves the cyan mark of every linked picture there."""
    page.get_by_role("tab", name="Internals").click()
    page.click("#internals-btn")
    page.wait_for_function("document.querySelector('#internals-summary').innerText.includes('Your pixel')")
    pic = page.locator("#lesson-input img").first
    pic.wait_for(state="visible")
    pic.scroll_into_view_if_needed()
    nat_w, nat_h = page.evaluate("(s) => { const i = document.querySelector(s); "
                                 "return [i.naturalWidth, i.naturalHeight]; }", "#lesson-input img")
    crop_w, crop_h = 32, 24  # the upload of the first test (32x24), all of it under INTERNALS_MAX
    zoom = nat_w // crop_w
    assert nat_h == crop_h * zoom
    box = pic.bounding_box()
    old_ribbon = page.locator("#seq-ribbon img").first.get_attribute("src")
    # Click the centre of LR pixel (row 5, col 25): away from the default centre (12, 16). Gradio shows
    # the picture with object-fit: scale-down: shrunk to fit (never enlarged) and centred in its box.
    row, col = 5, 25
    s = min(box["width"] / nat_w, box["height"] / nat_h, 1.0)
    ox, oy = (box["width"] - nat_w * s) / 2, (box["height"] - nat_h * s) / 2
    pic.click(position={"x": ox + (col + 0.5) * zoom * s, "y": oy + (row + 0.5) * zoom * s})
    page.wait_for_function(f"document.querySelector('#internals-summary').innerText"
                           f".includes('row {row}, column {col}')")
    for elem, n in LESSON_PLOTS.items():
        page.wait_for_function(f"({CYAN_MARKS_JS})('#{elem}') !== null")
        marks = page.evaluate(CYAN_MARKS_JS, f"#{elem}")
        if elem == "seq-fig":
            assert [m[1] for m in marks] == [row * crop_w + col]
        else:
            assert marks == [[col, row]] * n, elem
    assert page.locator("#seq-ribbon img").first.get_attribute("src") != old_ribbon
    assert page.locator("#q-row input").input_value() == str(row)
    page.screenshot(path=str(SHOTS / "lesson.png"), full_page=True)
    page.get_by_role("tab", name="Restore").click()


def test_corrupt_upload_shows_an_error(page, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 16)
    page.locator("#input-image input[type=file]").set_input_files(str(bad))
    page.click("#restore-btn")
    toast = page.get_by_text("corrupt or truncated")
    toast.first.wait_for(state="visible")
    page.screenshot(path=str(SHOTS / "error.png"))


def copy_screenshots_to_docs() -> None:
    """Copy the screenshots of the last run to docs/screenshots/ (for the README)."""
    dest = Path(__file__).parent.parent / "docs" / "screenshots"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("restore.png", "lam.png", "internals.png"):
        if (SHOTS / name).exists():
            shutil.copy(SHOTS / name, dest / name)


def _wait_for_size(page, elem_id: str, width: int, height: int) -> None:
    """Wait until the image shown in ``elem_id`` is a ``width`` x ``height`` file (times out otherwise)."""
    page.wait_for_function("([sel, w, h]) => { const i = document.querySelector(sel); "
                           "return i && i.complete && i.naturalWidth === w && i.naturalHeight === h; }",
                           arg=[f"#{elem_id} img", width, height], timeout=30_000)


def _restore_and_wait(page, expect: str, where: str = "#details") -> str:
    """Click Restore and wait until ``where`` shows ``expect`` with no progress text; returns the details.

    (While a run is in progress the old text stays, under a progress overlay, so a change alone is no
    sign that the run is done.)"""
    page.click("#restore-btn")
    page.wait_for_function("([sel, text]) => { const d = document.querySelector(sel); "
                           "return d && d.innerText.includes(text) "
                           "&& !/processing|\\d\\.\\ds/.test(d.innerText); }", arg=[where, expect])
    return page.inner_text("#details")


def test_camera_photo_restores_as_is_and_as_ground_truth(page, tmp_path):
    """A 2560x1600 JPEG: as is, the default region (its most detailed window, as ``app.region.default_box``
    finds it in the decoded photo; tests/test_app_firstlook_browser.py checks where that lands); then a
    region drawn on the input; then ground truth."""
    from app.io import load_image
    from app.region import REGION_SIDE, default_box

    yy, xx = np.mgrid[0:1600, 0:2560]
    rgb = np.stack([(xx // 10) % 256, (yy // 7) % 256, ((xx + yy) // 13) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "camera.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    page.get_by_role("tab", name="Restore").click()
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    page.wait_for_function("document.querySelector('#region-info').innerText.includes('2560x1600')")
    assert "estimated time" in page.inner_text("#region-info")
    page.locator("#region-preview img").first.wait_for(state="visible")

    # As is, default: the most detailed window, x2.
    (t, left, b, r), _ = default_box(load_image(str(path), max_side=None), REGION_SIDE)
    assert (b - t, r - left) == (REGION_SIDE, REGION_SIDE)
    details = _restore_and_wait(page, f"x {left}–{r - 1}, y {t}–{b - 1}")
    assert "Scan backend" in details
    _wait_for_size(page, "out-v2", 2 * REGION_SIDE, 2 * REGION_SIDE)
    page.screenshot(path=str(SHOTS / "camera_default.png"), full_page=True)

    # Drag a box on the input from 10%/10% to 13%/14% of the shown photo.
    shown = page.locator("#input-image img").first
    shown.scroll_into_view_if_needed()
    box = shown.bounding_box()  # in viewport coordinates, as the mouse
    page.mouse.move(box["x"] + box["width"] * 0.10, box["y"] + box["height"] * 0.10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.13, box["y"] + box["height"] * 0.14, steps=5)
    page.mouse.up()
    region = page.locator("#region input, #region textarea").first
    page.wait_for_function("() => document.querySelector('#region-info').innerText.includes('x 25')",
                           timeout=20_000)
    x0, y0, x1, y1 = (int(v) for v in region.input_value().split(","))
    assert abs(x0 - 256) <= 6 and abs(y0 - 160) <= 6 and abs(x1 - 333) <= 6 and abs(y1 - 224) <= 6
    _restore_and_wait(page, f"x {x0}–{x1 - 1}, y {y0}–{y1 - 1}")
    _wait_for_size(page, "out-v2", 2 * (x1 - x0), 2 * (y1 - y0))
    page.screenshot(path=str(SHOTS / "camera_region.png"), full_page=True)

    # Ground truth: degraded x2 to 1280x800, still over the limit, so the drawn region is used; scored.
    page.get_by_label("Treat as ground truth: degrade, restore, score").check()
    _restore_and_wait(page, "PSNR", where="#scores")
    assert "MambaIRv2" in page.inner_text("#scores")
    _wait_for_size(page, "out-v2", (x1 - x0) // 2 * 2, (y1 - y0) // 2 * 2)  # modcrop, /2, x2
    page.get_by_label("Restore as is").check()
