"""First look, in a real browser (Debian's chromium through Playwright): the default region of a large
photo, the guided tour, and a link that carries the view. Tiny random models (MAMBAIR_APP_DEMO=tiny).
Screenshots go to tests/screenshots/ (git-ignored)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from browser import SHOTS, chromium_page, require_browser
from PIL import Image

pytestmark = pytest.mark.browser

require_browser()

DETAILS_DONE = ("([t]) => { const d = document.querySelector('#details'); "
                "return d && d.innerText.includes(t) && !/processing|\\d\\.\\ds/.test(d.innerText); }")
SUMMARY_DONE = ("([t]) => { const s = document.querySelector('#internals-summary'); "
                "return s && s.innerText.includes(t) && !s.innerText.includes('%'); }")


def _large_photo(path, patch=(300, 1800, 500, 2000)) -> str:
    """2560x1600 JPEG: a smooth colour ramp with faint noise and one textured patch (top, left, bottom,
    right), far from the centre: the only detailed part of the photo."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1600, 0:2560]
    rgb = np.stack([60 + xx * 0.05, 120 + yy * 0.05, np.full(xx.shape, 80.0)], axis=-1)
    rgb += rng.normal(0, 1.0, rgb.shape)
    t, left, b, r = patch
    rgb[t:b, left:r] = np.where(((yy[t:b, left:r] // 6 + xx[t:b, left:r] // 6) % 2)[..., None] == 0, 30, 220)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=92)
    return str(path)


def _region_in_info(page) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) inclusive from the region text "x L–R, y T–B"."""
    m = re.search(r"x (\d+)–(\d+), y (\d+)–(\d+)", page.inner_text("#region-info"))
    assert m, page.inner_text("#region-info")
    left, right, top, bottom = (int(v) for v in m.groups())
    return left, top, right, bottom


def test_large_photo_opens_on_its_most_detailed_region(tiny_app_url, tmp_path):
    """Measure: mean gradient magnitude of the luma per window; the textured patch must be inside the
    default region, the info must say why, Restore must use it, and a click must still move it."""
    SHOTS.mkdir(exist_ok=True)
    with chromium_page(tiny_app_url) as page:
        page.locator("#input-image input[type=file]").set_input_files(_large_photo(tmp_path / "big.jpg"))
        page.wait_for_function("document.querySelector('#region-info').innerText.includes('most detailed')")
        info = page.inner_text("#region-info")
        assert "mean gradient magnitude" in info and "2560x1600" in info
        left, top, right, bottom = _region_in_info(page)
        assert left <= 1800 and right >= 1999 and top <= 300 and bottom >= 499, (left, top, right, bottom)
        assert page.locator("#region input, #region textarea").first.input_value() == ""  # empty = detailed
        page.locator("#region-preview img").first.wait_for(state="visible")
        page.click("#restore-btn")
        page.wait_for_function(DETAILS_DONE, arg=[f"x {left}–{right}, y {top}–{bottom}"])
        page.screenshot(path=str(SHOTS / "firstlook_large_photo.png"), full_page=True)
        # A click on the input moves the region there (x 1280 of 2560: the middle of the shown photo).
        shown = page.locator("#input-image img").first
        shown.scroll_into_view_if_needed()
        box = shown.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        page.wait_for_function("() => !document.querySelector('#region-info').innerText"
                               ".includes('most detailed')")
        region = page.locator("#region input, #region textarea").first.input_value()
        x, y = (int(v) for v in region.split(","))
        assert abs(x - 1280) <= 12 and abs(y - 800) <= 12
        left2, top2, _, _ = _region_in_info(page)
        assert abs(left2 + 128 - x) <= 1 and abs(top2 + 128 - y) <= 1


def _selected_tab(page) -> str:
    return page.evaluate("[...document.querySelectorAll('button[role=tab]')]"
                         ".find(b => b.getAttribute('aria-selected') === 'true').textContent.trim()")


def test_tour_walks_every_step_to_the_last_and_can_be_skipped(tiny_app_url):
    from app.tour import STEPS

    with chromium_page(tiny_app_url) as page:
        page.wait_for_selector("#restore-btn")
        page.click("#tour-btn")
        panel = page.locator("#tour-panel")
        panel.wait_for(state="visible")
        # On the example photo: the tour loads it when the input is empty.
        page.wait_for_function("() => { const e = document.querySelector('#example-name textarea, "
                               "#example-name input'); return e && e.value === 'coffee.png'; }")
        for k, step in enumerate(STEPS, start=1):
            page.wait_for_function(f"document.querySelector('#tour-panel').dataset.step === '{k}'")
            assert f"Step {k} of {len(STEPS)}" in panel.inner_text() and step["title"] in panel.inner_text()
            page.wait_for_function(f"() => document.querySelector('#{step['target']}')"
                                   ".classList.contains('tour-target')")
            assert _selected_tab(page) == step["tab"]
            if k == 3:  # Next on step 2 pressed "Show internals" for the visitor: the lesson is drawn
                page.wait_for_function(SUMMARY_DONE, arg=["Your pixel"])
                page.screenshot(path=str(SHOTS / "firstlook_tour.png"))
            if k < len(STEPS):
                panel.locator(".tour-next").click()
        assert panel.locator(".tour-next").inner_text() == "Finish"
        panel.locator(".tour-next").click()
        panel.wait_for(state="detached")
        assert page.locator(".tour-target").count() == 0
        # Skippable at any step: start again, go one step, skip.
        page.click("#tour-btn")
        panel.wait_for(state="visible")
        panel.locator(".tour-next").click()
        page.wait_for_function("document.querySelector('#tour-panel').dataset.step === '2'")
        panel.locator(".tour-skip").click()
        panel.wait_for(state="detached")
        assert page.locator(".tour-target").count() == 0


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_link_with_state_reproduces_the_view(tiny_app_url, tmp_path):
    """A link names the example, tab, layer and pixel: the page opens on that lesson; after a click on
    another pixel the address follows, and opening the new address shows that pixel."""
    link = f"{tiny_app_url}?tab=internals&example=coffee.png&task=SR+x2&layer=1.0&pixel=5,7"
    with chromium_page(link) as page:
        page.wait_for_function(SUMMARY_DONE, arg=["row 5, column 7"])
        assert _selected_tab(page) == "Internals"
        summary = page.inner_text("#internals-summary")
        assert "MambaIRv2 layer 1.0:" in summary
        assert page.locator("#layer input").input_value() == "1.0"
        assert page.locator("#example-name textarea, #example-name input").first.input_value() == "coffee.png"
        page.wait_for_function("() => window.location.search.includes('pixel=5%2C7')")
        assert _query(page.url) == {"tab": "internals", "example": "coffee.png", "task": "SR x2",
                                    "layer": "1.0", "pixel": "5,7"}
        # Follow another pixel: the address follows it.
        pic = page.locator("#lesson-input img").first
        pic.scroll_into_view_if_needed()
        box = pic.bounding_box()
        pic.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.3})
        page.wait_for_function("() => !window.location.search.includes('pixel=5%2C7')")
        moved = _query(page.url)
        row, col = (int(v) for v in moved["pixel"].split(","))
        page.wait_for_function(SUMMARY_DONE, arg=[f"row {row}, column {col}"])
        second = page.url
    with chromium_page(second) as page2:
        page2.wait_for_function(SUMMARY_DONE, arg=[f"row {row}, column {col}"])
        assert _selected_tab(page2) == "Internals"
        assert "MambaIRv2 layer 1.0:" in page2.inner_text("#internals-summary")
    # Restore-tab state without a photo: mode and region are set, nothing runs.
    with chromium_page(f"{tiny_app_url}?tab=restore&mode=gt&region=40,30") as page3:
        page3.wait_for_function("() => { const e = document.querySelector('#region input, "
                                "#region textarea'); return e && e.value === '40,30'; }")
        assert page3.locator("#mode input:checked").input_value().startswith("Treat as ground truth")
        page3.wait_for_function("() => window.location.search.includes('mode=gt')")
        assert _selected_tab(page3) == "Restore"
        # Reading the link left the input's own file check in place: a corrupt upload gets its message.
        bad = tmp_path / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 16)
        page3.locator("#input-image input[type=file]").set_input_files(str(bad))
        page3.click("#restore-btn")
        page3.get_by_text("corrupt or truncated").first.wait_for(state="visible")


def test_lesson_opens_on_the_most_decided_layer_and_an_edge_pixel(tiny_app_url):
    with chromium_page(f"{tiny_app_url}?tab=internals&example=coffee.png") as page:
        page.wait_for_function(SUMMARY_DONE, arg=["Your pixel"])
        summary = page.inner_text("#internals-summary")
        assert "most decided" in summary and "object edge" in summary
        assert page.locator("#layer input").input_value().startswith("auto")


def test_photo_uploaded_before_the_link_is_read_stays(monkeypatch, tmp_path):
    """On a busy machine the page-load handler that reads the link can answer after the visitor's
    upload: the photo must stay (it used to be replaced by the link's empty input), and restore it."""
    import time

    from conftest import launched_tiny_demo

    import app.urlstate as urlstate

    real_reader = urlstate.reader

    def slow_reader(*args, **kwargs):
        read = real_reader(*args, **kwargs)

        def read_slowly(request):
            time.sleep(6)  # long enough for the upload below to land first, even on a busy machine
            return read(request)
        return read_slowly

    monkeypatch.setattr(urlstate, "reader", slow_reader)
    photo = tmp_path / "photo.png"
    yy, xx = np.mgrid[0:24, 0:32]
    Image.fromarray(np.stack([xx * 8, yy * 10, 255 - (xx + yy) * 4], axis=-1).astype(np.uint8)).save(photo)
    with launched_tiny_demo() as url, chromium_page(url) as page:
        page.wait_for_selector("#restore-btn")
        page.locator("#input-image input[type=file]").set_input_files(str(photo))
        page.wait_for_selector("#input-image img")
        assert page.evaluate("() => !window.__urlState"), "the link was read before the upload"
        page.wait_for_function("() => window.__urlState && window.__urlState.timer")  # the link applied
        page.wait_for_timeout(1000)
        assert page.locator("#input-image img").first.is_visible()
        page.click("#restore-btn")
        page.wait_for_function(DETAILS_DONE, arg=["Scan backend"])
        page.locator("#out-v2 img").first.wait_for(state="visible")


def test_link_naming_an_example_opens_it_restored(tiny_app_url):
    """A link with only an example photo: the input shows that photo (picked by its thumbnail) and the
    Restore tab opens with both networks' results, computed from the link."""
    with chromium_page(f"{tiny_app_url}?example=coffee.png") as page:
        page.wait_for_function(DETAILS_DONE, arg=["Scan backend"])
        for elem in ("out-v2", "out-v1"):
            page.locator(f"#{elem} img").first.wait_for(state="visible")
        page.wait_for_function("() => { const e = document.querySelector('#example-name textarea, "
                               "#example-name input'); return e && e.value === 'coffee.png'; }")
        assert page.locator("#input-image img").first.is_visible()
        assert _selected_tab(page) == "Restore"
