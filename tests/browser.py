"""Real-browser test support: Debian's chromium driven by Playwright (which cannot download its own
browsers here). Modules call ``require_browser()`` at import, which skips them when Playwright or
/usr/bin/chromium is missing; ``chromium_page(url)`` opens the app in a headless page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).parent / "screenshots"  # git-ignored
TIMEOUT_MS = 180_000  # model calls on a busy 2-core CPU


def require_browser() -> Any:
    """playwright.sync_api, or skip the calling module (no Playwright, or no Debian chromium)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)
    return sync_api


@contextmanager
def chromium_page(url: str, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless chromium page on ``url`` (viewport ``width`` x ``height``), closed afterwards."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()
