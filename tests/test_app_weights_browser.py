"""The Weights tab in a real browser (Debian's chromium via Playwright): fetch an official checkpoint
from a local hub (tests/hub_server.py, real HTTP), upload a checkpoint, restore with each.

The weights folder starts empty, so once a checkpoint is there no random demo model is offered: each
task runs the MambaIRv2 checkpoint it has, and the MambaIR row says it has no weights."""

from __future__ import annotations

import os

import pytest
from test_app_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, TIMEOUT_MS, _photo
from test_app_weights import basicsr_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def page(hub, tmp_path_factory):
    """The app with an empty weights folder and HF_ENDPOINT at the local hub, in chromium."""
    from conftest import _free_port

    from app import build_demo, cache

    weights = tmp_path_factory.mktemp("weights")
    names = ("HF_ENDPOINT", "HF_HOME", "MAMBAIR_WEIGHTS_DIR", "MAMBAIR_APP_DEMO", "HF_HUB_OFFLINE")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path_factory.mktemp("hf")),
                      MAMBAIR_WEIGHTS_DIR=str(weights))
    os.environ.pop("MAMBAIR_APP_DEMO", None)
    os.environ.pop("HF_HUB_OFFLINE", None)
    cache.clear()
    demo = build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                            quiet=True)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(url)
            yield pg
            browser.close()
    finally:
        demo.close()
        cache.clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _restore(page, task: str, tmp_path, expect: str) -> str:
    """Restore the test photo with ``task``; waits for details that name ``expect``."""
    page.get_by_role("tab", name="Restore").click()
    page.locator("#task input").fill(task)
    page.locator("#task input").press("Enter")
    page.locator("#input-image input[type=file]").set_input_files(_photo(tmp_path / "photo.png"))
    page.wait_for_selector("#input-image img")
    page.click("#restore-btn")
    page.wait_for_function("([sel, text]) => { const d = document.querySelector(sel);"
                           " return d && d.querySelector('table') && d.innerText.includes(text); }",
                           arg=["#details", expect])
    page.locator("#out-v2 img").first.wait_for(state="visible")
    return page.inner_text("#details")


def test_fetch_official_upload_and_restore_with_each(page, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Weights").click()
    page.click("#fetch-mambairv2_lightSR_x2")
    page.get_by_text("fetched and verified (source: official)").first.wait_for(state="visible")
    assert "official: mambairv2_lightSR_x2.pth" in page.inner_text("#weights-table").replace("`", "")
    assert "1 of 6 light SR checkpoints present (mambairv2_lightSR_x2)" in page.inner_text("#weights-status")

    ckpt = basicsr_checkpoint(tmp_path / "net_g_5000.pth")
    page.locator("#ckpt-upload input[type=file]").set_input_files(str(ckpt))
    page.wait_for_function("document.querySelector('#added-label textarea, #added-label input')"
                           ".value.includes('net_g_5000.pth')")
    label = page.locator("#added-label textarea, #added-label input").first.input_value()
    assert label == "SR x3 · net_g_5000.pth"
    page.screenshot(path=str(SHOTS / "weights.png"), full_page=True)

    details = _restore(page, "SR x2", tmp_path, "mambairv2_lightSR_x2.pth")
    assert "official: mambairv2_lightSR_x2.pth" in details.replace("`", "")
    details = _restore(page, label, tmp_path, "net_g_5000.pth")
    assert "user file: net_g_5000.pth" in details.replace("`", "")
    page.screenshot(path=str(SHOTS / "restore_user_checkpoint.png"), full_page=True)
