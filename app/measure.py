"""Measure the app: seconds from ``python app.py`` to a page that answers, and restore time at x4.

    python -m app.measure                 # both measurements
    python -m app.measure --startup       # only the start-up time
    python -m app.measure --restore 128   # only the restore time of a 128x128 input at x4

The restore time uses the models the app would use for "SR x4" (weights/ or the random-weight
light presets), through ``app.handlers.restore`` (so the first call's handler time includes loading
the models and timing them for the estimate, ``app.timing``; the second call is the steady state).
Each model's line gives its measured time and the estimate the app made before the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_app(stdout: Any = subprocess.DEVNULL, timeout: float = 300.0) -> Iterator[tuple[str, float]]:
    """``python app.py`` on a free port while the block runs: yields (its URL, seconds until GET /
    returned 200); ``stdout`` takes the app's output and log (e.g. an open file). Stopped afterwards."""
    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_ANALYTICS_ENABLED="False")
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=stdout,
                            stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with code {proc.returncode}")
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"no answer from app.py within {timeout:.0f} s")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield url, time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def startup_seconds(timeout: float = 300.0) -> float:
    """Start ``python app.py`` on a free port; seconds until GET / returns 200. The server is stopped."""
    with running_app(timeout=timeout) as (_, seconds):
        return seconds


def restore_seconds(size: int = 128, task: str = "SR x4", repeats: int = 2) -> list[str]:
    """Lines with the per-model time of restoring a ``size``x``size`` photo crop, per call."""
    import numpy as np
    from skimage import data

    from app import cache, handlers

    img = data.astronaut()[100:100 + size, 150:150 + size]
    lines = []
    for k in range(repeats):
        t0 = time.perf_counter()
        out = handlers.restore(np.ascontiguousarray(img), task, progress=lambda *a, **kw: None)
        total = time.perf_counter() - t0
        rows = [r for r in out[3].splitlines() if r.startswith("| Mamba")]
        for r in rows:
            cells = [c.strip() for c in r.strip("|").split("|")]
            lines.append(f"call {k + 1}: {cells[0]:9s} {size}x{size} -> x4: {cells[2]} s, estimated "
                         f"{cells[1]} s (params {cells[3]}, {cells[4]}, scan {cells[5]})")
        lines.append(f"call {k + 1}: whole restore handler {total:.2f} s")
    spec = next(iter(cache.tasks()[task].values()))
    lines.append(f"threads: torch {__import__('torch').get_num_threads()}, weights: {spec.source}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--startup", action="store_true", help="only measure start-up")
    ap.add_argument("--restore", type=int, default=0, metavar="SIZE", help="only measure restore at SIZE")
    args = ap.parse_args(argv)
    both = not args.startup and not args.restore
    if args.startup or both:
        print(f"python app.py -> page answers: {startup_seconds():.1f} s")
    if args.restore or both:
        for line in restore_seconds(args.restore or 128):
            print(line)


if __name__ == "__main__":
    main()
