"""Real-browser and API test support: Debian's chromium driven by Playwright (which cannot download its
own browsers here), and gradio_client. Browser modules call ``require_browser()`` at import, API modules
``require_gradio_client()``: when what they need is missing they are skipped on a developer's machine,
and under ``CI=true`` they FAIL with a message saying what is missing (CI must not stay green with
every UI test skipped). ``chromium_page(url)`` opens the app in a headless page.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).parent / "screenshots"  # git-ignored
TIMEOUT_MS = 180_000  # model calls on a busy 2-core CPU


def under_ci() -> bool:
    """True when the CI environment variable says so (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def chromium() -> str | None:
    """The chromium executable found on PATH (Debian: /usr/bin/chromium), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ui_missing() -> list[str]:
    """What the browser and API tests need and this machine lacks, one line each (empty: all there)."""
    out = []
    if importlib.util.find_spec("playwright") is None:
        out.append("Playwright (pip install -r requirements-dev.txt)")
    if chromium() is None:
        out.append("chromium on PATH (apt-get install chromium)")
    if importlib.util.find_spec("gradio_client") is None:
        out.append("gradio_client (pip install -r requirements.txt)")
    return out


def _missing(what: str) -> None:
    """Skip the calling module, or fail it under CI, because ``what`` is missing."""
    if under_ci():
        pytest.fail(f"CI=true and {what} is missing: the browser and API tests cannot run "
                    "(install it; under CI a missing UI dependency is a failure, not a skip)", pytrace=False)
    pytest.skip(f"{what} is missing", allow_module_level=True)


def require_browser() -> Any:
    """playwright.sync_api; skips the calling module (fails it under CI) without Playwright or chromium."""
    if importlib.util.find_spec("playwright") is None:
        _missing("Playwright (pip install -r requirements-dev.txt)")
    if chromium() is None:
        _missing("chromium on PATH (apt-get install chromium)")
    import playwright.sync_api

    return playwright.sync_api


def require_gradio_client() -> Any:
    """The gradio_client module; skips the calling module (fails it under CI) when it is not installed."""
    if importlib.util.find_spec("gradio_client") is None:
        _missing("gradio_client (pip install -r requirements.txt)")
    import gradio_client

    return gradio_client


@contextmanager
def chromium_page(url: str, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless chromium page on ``url`` (viewport ``width`` x ``height``), closed afterwards."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()
