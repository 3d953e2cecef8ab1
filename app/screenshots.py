"""Screenshots of the app for the README: ``python -m app.screenshots [--out docs/screenshots]``.

Launches the app (the models it would use: weights/ or the random-weight demo models; set
MAMBAIR_APP_DEMO=tiny for seconds instead of minutes), drives Debian's chromium with Playwright
through restore -> click on the output -> LAM -> internals, and saves restore.png, lam.png and
internals.png. Needs ``pip install playwright`` and ``apt-get install chromium``.
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


def take(out: Path, photo: Path, task: str | None, lam_steps: int, timeout_s: float,
         click: tuple[float, float] = (0.72, 0.62)) -> list[Path]:
    """Drive the app in chromium and save the three screenshots; returns their paths."""
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
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
            page.screenshot(path=str(out / "restore.png"), full_page=True)
            saved.append(out / "restore.png")

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
            page.screenshot(path=str(out / "lam.png"), full_page=True)
            saved.append(out / "lam.png")

            page.get_by_role("tab", name="Internals").click()
            page.click("#internals-btn")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
            page.screenshot(path=str(out / "internals.png"), full_page=True)
            saved.append(out / "internals.png")
            browser.close()
    finally:
        demo.close()
    return saved


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
    args = ap.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    for path in take(args.out, args.photo, args.task, args.lam_steps, args.timeout, tuple(args.click)):
        shrink(path)
        print(path, f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
