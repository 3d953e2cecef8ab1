"""Router curves of training runs, for weights/README.md: a markdown table per run and one figure.

    python scripts/router_curves.py runs/base runs/eps_lr100 ... [--png weights/router_curves.png]

Reads each run's ``log.jsonl`` (``python -m model.training.train``), keeps the validation events with router
numbers, prints a markdown table per run (step, PSNR-Y gain over bicubic on the validation crops,
median and largest mean max route probability x T over the ASSM layers, layers >= 2/T and >= 4/T,
median RMS logit change since the start) and writes ``viz.timeline.training_curves_figure`` as PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viz.timeline import training_curves_figure  # noqa: E402


def load_events(run: Path) -> list[dict]:
    """The validation events with router numbers of one run."""
    lines = (run / "log.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if "router" in e]


def table(events: list[dict]) -> str:
    """A markdown table of one run's validation events."""
    rows = ["| step | val PSNR-Y − bicubic (dB) | median ×T | max ×T | layers ≥ 2/T | layers ≥ 4/T | "
            "median logit change |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for e in events:
        xt = [r["mean_max_prob_xT"] for r in e["router"]["layers"]]
        lc = [r.get("logit_change", 0.0) for r in e["router"]["layers"]]
        gain = e["val_psnr_y"] - e["val_psnr_y_bicubic"]
        at2, at4 = sum(v >= 2 for v in xt), sum(v >= 4 for v in xt)
        rows.append(f"| {e['step']} | {gain:+.3f} | {np.median(xt):.3f} | {max(xt):.3f} | {at2} | {at4} | "
                    f"{np.median(lc):.4f} |")
    return "\n".join(rows)


def main() -> None:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders of python -m model.training.train")
    ap.add_argument("--png", help="write the figure here (kaleido + chromium)")
    a = ap.parse_args()
    runs = {Path(r).name: load_events(Path(r)) for r in a.runs}
    for name, events in runs.items():
        print(f"\n{name}\n\n{table(events)}")
    if a.png:
        training_curves_figure(runs).write_image(a.png, width=1100, height=700)
        print(f"\nwrote {a.png}")


if __name__ == "__main__":
    main()
