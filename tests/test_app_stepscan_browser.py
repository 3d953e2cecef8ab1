"""The step-through of the scan in a real browser (Debian's chromium driven by Playwright).

A 64x64 photo, the Internals tab, then: the step control advances t and the number of pixels drawn as
read on each canvas (counted from the canvas' own pixels) equals t; the slider and step back do the
same; playing draws at least 10 frames per second (measured from requestAnimationFrame timestamps);
hovering a pixel says what it is; every lesson step has its caption. Skipped without Playwright or
/usr/bin/chromium. Screenshots go to tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import numpy as np
import pytest
from browser import SHOTS, require_browser
from PIL import Image

from viz.stepscan import UNREAD_RGB

pytestmark = pytest.mark.browser

require_browser()

SIDE = 64
# Cells of a canvas whose centre is not the flat "unread" grey: the pixels drawn as read.
COUNT_READ_JS = """([net, g]) => {
  const c = document.querySelector(`#stepscan canvas.ss-canvas[data-net="${net}"]`);
  const W = +c.dataset.w, H = +c.dataset.h, z = +c.dataset.zoom, h = z >> 1;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = 4 * ((y * z + h) * c.width + x * z + h);
    if (!(d[i] === g[0] && d[i + 1] === g[1] && d[i + 2] === g[2])) n++;
  }
  return n;
}"""


def _photo(path) -> str:
    """A 64x64 texture in which no pixel has the unread grey."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    rgb = np.stack([(xx * 4) % 200, (yy * 4) % 200 + 20, ((xx * yy) // 7) % 180 + 40], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return str(path)


def _read_counts(page) -> tuple[int, int]:
    grey = list(UNREAD_RGB)
    return page.evaluate(COUNT_READ_JS, ["v2", grey]), page.evaluate(COUNT_READ_JS, ["v1", grey])


def _t(page) -> int:
    return int(page.locator("#stepscan .ss-host").get_attribute("data-t"))


def test_step_through_counts_fps_hover_and_captions(page, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_selector("#restore-btn")
    page.locator("#input-image input[type=file]").set_input_files(_photo(tmp_path / "p64.png"))
    page.wait_for_selector("#input-image img")
    page.get_by_role("tab", name="Internals").click()
    page.click("#internals-btn")
    page.wait_for_selector('#stepscan canvas.ss-canvas[data-net="v1"]')
    assert _t(page) == 0 and _read_counts(page) == (0, 0)

    fwd = page.locator("#stepscan .ss-fwd")
    for t in range(1, 6):
        fwd.click()
        assert _t(page) == t
        assert _read_counts(page) == (t, t)
    assert page.locator("#stepscan .ss-slider").input_value() == "5"
    # The slider jumps, step back goes back one.
    page.evaluate("(t) => { const s = document.querySelector('#stepscan .ss-slider'); s.value = t; "
                  "s.dispatchEvent(new Event('input', {bubbles: true})); }", 1000)
    assert _t(page) == 1000 and _read_counts(page) == (1000, 1000)
    page.locator("#stepscan .ss-back").click()
    assert _t(page) == 999 and _read_counts(page) == (999, 999)
    info = page.inner_text('#stepscan .ss-info[data-net="v2"]')
    assert "step 999 of 4096" in info and "label" in info and "prompt added there" in info
    # Row-major: step 999 reads raster pixel 998 = (x 38, y 15).
    assert "pixel (x 38, y 15)" in page.inner_text('#stepscan .ss-info[data-net="v1"]')
    page.locator("#stepscan").screenshot(path=str(SHOTS / "stepscan_999.png"))

    # Play for two seconds at 1000 px/s and count the frames drawn.
    page.locator("#stepscan .ss-rate").select_option("1000")
    page.evaluate("() => { window.__stepscan.frames = []; }")
    page.locator("#stepscan .ss-play").click()
    page.wait_for_timeout(2000)
    page.locator("#stepscan .ss-play").click()  # pause
    frames = page.evaluate("() => window.__stepscan.frames.slice()")
    span = (frames[-1] - frames[0]) / 1000.0
    fps = (len(frames) - 1) / span
    print(f"step-through: {len(frames)} frames in {span:.2f} s = {fps:.1f} frames/s at {SIDE}x{SIDE}")
    assert fps >= 10
    t = _t(page)
    assert 999 + 1000 * 1.0 < t <= 4096  # it moved at about the chosen speed
    assert _read_counts(page) == (t, t)

    # Hover: the pixel under the pointer, in plain words.
    canvas = page.locator('#stepscan canvas.ss-canvas[data-net="v2"]')
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * (10.5 / SIDE), box["y"] + box["height"] * (3.5 / SIDE))
    tip = page.locator("#stepscan .ss-hover")
    tip.wait_for(state="visible")
    assert "pixel (x 10, y 3)" in tip.inner_text() and "label" in tip.inner_text()

    # Captions: two lines per lesson step, for this image.
    page.wait_for_function("document.querySelector('#cap-route').innerText.includes('Label')")
    for step in ("pick", "route", "sort", "scan", "unsort", "step"):
        text = page.inner_text(f"#cap-{step}")
        assert len([line for line in text.splitlines() if line.strip()]) == 2, (step, text)
    assert "of the 4096 pixels" in page.inner_text("#cap-pick")
    page.screenshot(path=str(SHOTS / "stepscan_page.png"), full_page=True)
    page.get_by_role("tab", name="Restore").click()
