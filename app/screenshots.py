"""Screenshots of the app for the README: ``python -m app.screenshots [--out docs/screenshots]``.

Launches the app (the models it would use: weights/ or the random-weight demo models; set
MAMBAIR_APP_DEMO=tiny for seconds instead of minutes), drives Debian's chromium with Playwright
through restore -> click on the output -> LAM -> internals -> click on a pixel (the lesson view) at a
1400 px and a 1000 px wide window, and saves restore.png, lam.png, internals.png (1400 px) and
restore_1000.png, lam_1000.png, internals_1000.png. Needs ``pip install playwright`` and
``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parent.parent


WIDTHS = (1400, 1000)  # window widths the layout is checked at


def take(out: Path, photo: Path, task: str | None, lam_steps: int, timeout_s: float,
         click: tuple[float, float] = (0.72, 0.62), pixel: tuple[float, float] = (0.3, 0.75),
         widths: tuple[int, ...] = WIDTHS) -> list[Path]:
    """Drive the app in chromium and save three screenshots per window width; returns their paths.

    ``click``: where on the MambaIRv2 output LAM is placed; ``pixel``: which pixel of the lesson
    picture is followed (fractions of the picture's width/height).
    """
    from playwright.sync_api import sync_playwright

    from app import build_demo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    demo = build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for width in widths:
                suffix = "" if width == widths[0] else f"_{width}"
                saved += _session(browser, url, out, suffix, width, photo, task, lam_steps, timeout_s, click,
                                  pixel)
            browser.close()
    finally:
        demo.close()
    return saved


def _session(browser, url: str, out: Path, suffix: str, width: int, photo: Path, task: str | None,
             lam_steps: int, timeout_s: float, click: tuple[float, float], pixel: tuple[float, float]
             ) -> list[Path]:
    """One page at ``width``: restore, LAM, lesson view; the three full-page screenshots."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.set_default_timeout(timeout_s * 1000)
    page.goto(url)
    page.locator("#input-image input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#input-image img")
    if task:
        page.locator("#task input").fill(task)
        page.locator("#task input").press("Enter")
    page.click("#restore-btn")
    page.locator("#out-v1 img").first.wait_for(state="visible")
    page.wait_for_selector("#details table")
    names = [out / f"restore{suffix}.png", out / f"lam{suffix}.png", out / f"internals{suffix}.png"]
    page.screenshot(path=str(names[0]), full_page=True)

    steps = page.locator("#lam-steps input[type=number]")
    steps.fill(str(lam_steps))
    steps.press("Enter")
    img = page.locator("#out-v2 img").first
    box = img.bounding_box()
    # Click at a fraction of the shown image's box (default: the spoon in coffee.png, many edges).
    img.click(position={"x": box["width"] * click[0], "y": box["height"] * click[1]})
    page.locator("#lam-v1 img").first.wait_for(state="visible")
    page.wait_for_selector("#lam-info table")
    page.locator("#lam-info").scroll_into_view_if_needed()
    page.screenshot(path=str(names[1]), full_page=True)

    page.get_by_role("tab", name="Internals").click()
    page.click("#internals-btn")
    page.wait_for_function("document.querySelector('#internals-summary').innerText.includes('Your pixel')")
    before = page.locator("#q-row input").input_value()
    pic = page.locator("#lesson-input img").first
    pic.scroll_into_view_if_needed()
    box = pic.bounding_box()
    pic.click(position={"x": box["width"] * pixel[0], "y": box["height"] * pixel[1]})  # follow a pixel
    page.wait_for_function("([old]) => document.querySelector('#q-row input').value !== old", arg=[before])
    row, col = page.locator("#q-row input").input_value(), page.locator("#q-col input").input_value()
    # Done when the summary names the clicked pixel and no progress text ("... 50.0%") is left.
    page.wait_for_function("([t]) => { const s = document.querySelector('#internals-summary').innerText; "
                           "return s.includes(t) && !s.includes('%'); }", arg=[f"row {row}, column {col}"])
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    page.wait_for_timeout(1500)  # let plotly finish drawing the new figures
    page.screenshot(path=str(names[2]), full_page=True)
    page.close()
    return names


def shrink(path: Path, width: int = 1000) -> None:
    """Resize a screenshot to ``width`` pixels (README size) and re-save it as an optimised PNG."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im.save(path, optimize=True)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--photo", type=Path, default=ROOT / "assets" / "coffee.png")
    ap.add_argument("--task", default=None, help="task label, e.g. 'SR x2' (default: the first)")
    ap.add_argument("--lam-steps", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each step")
    ap.add_argument("--click", type=float, nargs=2, default=(0.72, 0.62), metavar=("FX", "FY"),
                    help="where to click on the MambaIRv2 output, as fractions of its width/height")
    ap.add_argument("--pixel", type=float, nargs=2, default=(0.3, 0.75), metavar=("FX", "FY"),
                    help="which pixel the lesson view follows, as fractions of its picture")
    args = ap.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    for path in take(args.out, args.photo, args.task, args.lam_steps, args.timeout, tuple(args.click),
                     tuple(args.pixel)):
        shrink(path)
        print(path, f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
