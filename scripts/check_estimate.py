"""The app's time estimate against its measured time, as a user meets them: ``python app.py`` on a free
port, a large photo uploaded in a real browser (the preview's estimate), Restore clicked (the details'
estimate and measured time per model, and the seconds from click to picture), then the same photo
through ``gradio_client`` (the ``restore`` endpoint).

    python scripts/check_estimate.py PHOTO [--task "SR x2"] [--runs 2]

Needs Playwright and Debian's chromium (as the browser tests); prints one line per measurement.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from app.measure import running_app  # noqa: E402


def _rows(details: str) -> list[str]:
    """'model: estimated E s, measured M s' per row of the details table."""
    out = []
    for line in details.splitlines():
        # markdown (gradio_client) has '|' between cells; the page's rendered table has tabs
        cells = [c.strip() for c in re.split(r"[|\t]", line.strip().strip("|"))]
        if len(cells) >= 3 and cells[0].startswith("Mamba") and re.match(r"^[\d.]+$", cells[2]):
            e, m = float(cells[1]), float(cells[2])
            where = f", {cells[4]}" if len(cells) > 4 else ""
            out.append(f"{cells[0]}: estimated {e:.2f} s, measured {m:.2f} s (ratio {e / m:.2f}){where}")
    return out


def _wait_for_warm_up(log_path: str, n_models: int, timeout: float) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        with open(log_path) as f:
            text = f.read()
        if text.count("warm-up:") >= n_models or "warm-up of task" in text:
            return
        time.sleep(1)
    raise TimeoutError("no warm-up lines in the app's log")


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("--task", default="SR x2")
    ap.add_argument("--runs", type=int, default=2, help="restores through gradio_client after the browser's")
    args = ap.parse_args(argv)
    log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"check_estimate_{os.getpid()}.log")
    t_start = time.perf_counter()
    with open(log_path, "w") as log, running_app(stdout=log, timeout=600) as (url, seconds):
        print(f"page answers after {seconds:.1f} s")
        _wait_for_warm_up(log_path, 2, 1800)
        print(f"warm-up done after {time.perf_counter() - t_start:.1f} s:")
        with open(log_path) as f:
            for line in f:
                if "warm-up" in line:
                    print("  " + line.strip().split(": ", 1)[-1])

        from browser import chromium_page

        with chromium_page(url) as page:
            page.locator("#input-image input[type=file]").set_input_files(args.photo)
            page.wait_for_function("document.querySelector('#region-info').innerText.includes('estimated')")
            print("browser preview: " + page.inner_text("#region-info").strip())
            t0 = time.perf_counter()
            page.click("#restore-btn")
            page.wait_for_function("() => { const d = document.querySelector('#details'); "
                                   "return d && d.innerText.includes('Scan backend') "
                                   "&& !/processing|\\d\\.\\ds/.test(d.innerText); }")
            wall = time.perf_counter() - t0
            print(f"browser restore: click to details {wall:.1f} s, load average {os.getloadavg()[0]:.1f}")
            for row in _rows(page.inner_text("#details")):
                print("  " + row)

        from gradio_client import Client, handle_file

        client = Client(url, verbose=False)
        for k in range(args.runs):
            t0 = time.perf_counter()
            out = client.predict(handle_file(args.photo), args.task, api_name="/restore")
            wall = time.perf_counter() - t0
            print(f"gradio_client restore {k + 1}: {wall:.1f} s, load average {os.getloadavg()[0]:.1f}")
            for row in _rows(out[3]):
                print("  " + row)


if __name__ == "__main__":
    main()
