"""MACs per component, including the selective scan, for MambaIRv2 and MambaIR presets, and the time.

    python -m model.evaluation.profile [PRESET ...] [--size 64 256 180x320] [--no-time] [--json out.json]

How the count is made (one forward of a randomly initialised preset on a zero-free random image;
forward hooks read the real shapes each module sees, so padding and scan lengths are exact):
  conv        every nn.Conv2d: output elements x (in_channels / groups) x kh x kw
  linear      every nn.Linear: output elements x in_features (route, wqkv, FFN, out_proj, ...)
  window attn QK^T and AV of the window attention: 2 x windows x n^2 x channels (n = tokens per window)
  scan proj   the scan's x_proj and dt_proj einsums: K x L x D x (dt_rank + 2N) + K x L x D x dt_rank
  scan state  per step, channel and state: delta*A, (delta*u)*B, h = exp(.)*h + . -> 3 BLDN, plus delta*u BLD
  scan output per step and channel: y = C.h (BLDN) plus the skip D*u (BLD)
  prompt      MambaIRv2 only: the pool embeddingB @ embeddingA (T r N) and one-hot policy @ pool (B L T N)
Not MACs, listed apart as element operations: the SGN sort (B L log2 L comparisons) and its gathers
(unfold + fold, B L (D + C); + B L N for the aligned prompt), MambaIR's scan re-orderings (flip and
transpose of the K sequences, in and out: 2 K B L D). Element-wise work (norms, activations, exp,
softmax, additions) is not counted, as common counters do not count it either.
The official repository's counter (analysis/flops_param_fvcore.py: fvcore, one MAC = one "flop", at a
1280x720 output) charges a scan 9 B L D N (+ B L D for D); ``official_rule`` is our total with the scan
rows replaced by that rule. Published figures (``REPORTED``) are printed beside ours where the preset
and the input size match; the paper's own tables could not be read from the stored sources, so these are
third-party transcriptions, labelled as such (see ``REPORTED``).

Letters: B batch, L tokens, D scan channels (x K scans), N d_state, T prompts, r inner rank, C embed dim.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

COMPONENTS = ("conv", "linear", "window attn", "scan proj", "scan state", "scan output", "prompt")
MOVES = ("sort", "gather/reorder")
DEFAULT_PRESETS = ("mambairv2_lightSR_x4", "MambaIR_lightSR_x4")


@dataclass(frozen=True)
class Reported:
    """A published #Params / MACs figure for one preset, and where it comes from."""

    preset: str
    params: int | None  # parameter count as printed (e.g. 774K -> 774_000)
    gmacs: float | None  # GMACs as printed, for an output of ``out_hw``
    out_hw: tuple[int, int]  # (height, width) of the SR output the MACs refer to
    source: str


# The MambaIRv2 paper (arXiv 2411.15269) gives #Params and MACs of the light SR models in its
# lightweight-SR table, but this project's stored sources hold only the opening of its arXiv page
# (abstract and introduction), and the official README has no cost column; so the paper's own MAC
# figures are NOT known here. What is known, each from where it is read (none checked against the paper):
_NOTES = ("third-party paper summary (a paper-notes markdown file found in the code index, repository not "
          "named) transcribing the MambaIRv2 paper's lightweight-SR table: #Param column only, no MACs")
_UCAN = ("UCAN (arXiv 2603.11680, CVPR 2026) comparison table, as transcribed by a third-party paper "
         "summary: UCAN's figure for MambaIRv2-light x4; the summary does not give the size: the usual "
         "1280x720 output is assumed")
REPORTED: tuple[Reported, ...] = (
    Reported("mambairv2_lightSR_x2", 774_000, None, (720, 1280), _NOTES),
    Reported("MambaIR_lightSR_x2", 905_000, None, (720, 1280), _NOTES),
    Reported("mambairv2_lightSR_x4", 794_000, None, (720, 1280), _NOTES),
    Reported("MambaIR_lightSR_x4", 925_000, None, (720, 1280), _NOTES),
    Reported("mambairv2_lightSR_x4", 790_000, 75.6, (720, 1280), _UCAN),
)
# A first-hand check of the x2 figure: the paper's abstract (the stored opening of its arXiv page) says
# MambaIRv2-light has "9.3% less parameters" than SRFormer-light; with SRFormer-light x2 at 853K (the
# same transcription) that is 774K.


def compare_reported(results: list[dict[str, Any]], reported: tuple[Reported, ...] = REPORTED
                     ) -> list[dict[str, Any]]:
    """Our counts beside each published figure for the profiled presets.

    One row per (result, figure) of the same preset: params ours / reported always; MACs ours (and under
    the official scan rule) / reported only when the result's input times the preset's scale is the
    output size the figure refers to (else ``macs_ratio`` is None: a different input size).
    """
    from model import PRESETS

    rows = []
    for r in results:
        cfg = PRESETS.get(r["preset"])
        scale = int(getattr(cfg, "upscale", 1)) if cfg is not None else None
        for rep in reported:
            if rep.preset != r["preset"]:
                continue
            out_hw = (r["size"][0] * scale, r["size"][1] * scale) if scale is not None else None
            same_size = out_hw == tuple(rep.out_hw)
            macs_ok = rep.gmacs is not None and same_size
            rows.append({
                "preset": r["preset"], "size": list(r["size"]), "source": rep.source,
                "params": r["params"], "reported_params": rep.params,
                "params_ratio": r["params"] / rep.params if rep.params else None,
                "gmacs": r["total"] / 1e9, "official_rule_gmacs": r["official_rule"] / 1e9,
                "reported_gmacs": rep.gmacs, "out_hw": list(rep.out_hw),
                "macs_ratio": r["total"] / 1e9 / rep.gmacs if macs_ok else None,
                "official_rule_ratio": r["official_rule"] / 1e9 / rep.gmacs if macs_ok else None,
            })
    return rows


def format_reported(rows: list[dict[str, Any]]) -> str:
    """The ``compare_reported`` rows as plain text lines (one per figure, its source below it)."""
    if not rows:
        return "No published cost figures known for these presets."
    lines = ["Published figures (third-party transcriptions, not read from the paper itself):"]
    for c in rows:
        size = f"{c['size'][0]}x{c['size'][1]}"
        text = f"  {c['preset']} at {size}: params ours {c['params'] / 1e3:.1f}K"
        if c["reported_params"]:
            text += f" vs {c['reported_params'] / 1e3:.0f}K reported (ours/reported {c['params_ratio']:.3f})"
        if c["reported_gmacs"] is not None:
            oh, ow = c["out_hw"]
            if c["macs_ratio"] is None:
                text += (f"; MACs {c['reported_gmacs']:.1f}G reported for a {ow}x{oh} output: profile this "
                         f"input size to compare")
            else:
                text += (f"; MACs ours {c['gmacs']:.1f}G (official scan rule {c['official_rule_gmacs']:.1f}G)"
                         f" vs {c['reported_gmacs']:.1f}G reported (ours/reported {c['macs_ratio']:.2f}; "
                         f"official rule / reported {c['official_rule_ratio']:.2f})")
        lines += [text, f"    source: {c['source']}"]
    return "\n".join(lines)


def scan_macs(b: int, l: int, d: int, n: int) -> dict[str, int]:
    """MACs of one selective scan of d channels (all K scans together), length l, state n."""
    return {"scan state": 3 * b * l * d * n + b * l * d, "scan output": b * l * d * n + b * l * d}


def official_scan_rule(b: int, l: int, d: int, n: int) -> int:
    """The official counter's charge for one selective scan with D: 9 B L D N + B L D."""
    return 9 * b * l * d * n + b * l * d


def count(net: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Run ``net`` on ``x`` once (no gradients) and count MACs per component; also the wall time."""
    from model.archs.common import WindowAttention
    from model.archs.mambair import SS2D
    from model.archs.mambairv2 import ASSM, SelectiveScan

    macs: dict[str, int] = defaultdict(int)
    moves: dict[str, int] = defaultdict(int)
    official_scan = 0

    def on_conv(m: nn.Conv2d, inp: tuple, out: torch.Tensor) -> None:
        kh, kw = m.kernel_size
        macs["conv"] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def on_linear(m: nn.Linear, inp: tuple, out: torch.Tensor) -> None:
        macs["linear"] += out.numel() * m.in_features

    def on_window(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        bw, n, c3 = inp[0].shape  # (b*nw, n, 3c)
        macs["window attn"] += 2 * bw * n * n * (c3 // 3)

    def on_scan(b: int, l: int, d: int, k: int, n: int, q: int) -> None:
        nonlocal official_scan
        macs["scan proj"] += b * l * d * (q + 2 * n) + b * l * d * q
        for key, v in scan_macs(b, l, d, n).items():
            macs[key] += v
        official_scan += official_scan_rule(b, l, d, n)

    def on_selective(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        b, l, d = inp[0].shape  # (b, l, d) one scan
        on_scan(b, l, d, 1, m.d_state, m.dt_rank)

    def on_ss2d(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        b, h, w, _ = inp[0].shape  # (b, h, w, c)
        k = m.x_proj_weight.shape[0]
        on_scan(b, h * w, k * m.d_inner, k, m.d_state, m.dt_rank)
        moves["gather/reorder"] += 2 * k * b * h * w * m.d_inner

    def on_assm(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        b, l, c = inp[0].shape  # (b, l, c)
        t, r = m.embeddingB.weight.shape
        n = m.d_state
        macs["prompt"] += t * r * n + b * l * t * n
        if m.sgn == "on":
            moves["sort"] += int(b * l * math.log2(max(l, 2)))
        d = m.selectiveScan.d_inner
        moves["gather/reorder"] += b * l * (d + c) + (b * l * n if m.prompt_order == "aligned" else 0)

    hooks = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
        elif isinstance(m, WindowAttention):
            hooks.append(m.register_forward_hook(on_window))
        elif isinstance(m, SelectiveScan):
            hooks.append(m.register_forward_hook(on_selective))
        elif isinstance(m, SS2D):
            hooks.append(m.register_forward_hook(on_ss2d))
        if isinstance(m, ASSM):
            hooks.append(m.register_forward_hook(on_assm))
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            net(x)
        seconds = time.perf_counter() - t0
    finally:
        for h in hooks:
            h.remove()
    scan_ours = macs["scan state"] + macs["scan output"]
    total = sum(macs[c] for c in COMPONENTS)
    return {"macs": {c: int(macs[c]) for c in COMPONENTS}, "moves": {k: int(moves[k]) for k in MOVES},
            "total": int(total), "official_rule": int(total - scan_ours + official_scan),
            "params": int(sum(p.numel() for p in net.parameters())), "seconds": seconds}


def profile(preset: str | Any, hw: tuple[int, int], seed: int = 0, name: str | None = None) -> dict[str, Any]:
    """Count MACs and time one forward of a preset (name or config; random weights) on an (h, w) input."""
    from model import PRESETS, build, last_backend

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        name, cfg = name or preset, PRESETS[preset]
    else:
        name, cfg = name or cfg_name(preset), preset
    torch.manual_seed(seed)
    net = build(cfg)
    x = torch.rand(1, cfg.in_chans, hw[0], hw[1], generator=torch.Generator().manual_seed(seed))
    out = count(net, x)
    return {"preset": name, "size": list(hw), "backend": last_backend(), **out}


def cfg_name(cfg: Any) -> str:
    """A short name for a config: its preset name, else its architecture."""
    from model.hub.weights import preset_of

    return preset_of(cfg) or cfg.arch


def parse_size(s: str) -> tuple[int, int]:
    """'64' -> (64, 64); '180x320' -> (180, 320) (height x width of the input)."""
    parts = s.lower().split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    if len(parts) == 2:
        return int(parts[0]), int(parts[1])
    raise ValueError(f"size must be N or HxW, got {s!r}")


def format_table(results: list[dict[str, Any]], timed: bool = True) -> str:
    """A markdown table: one column per (preset, size), MACs per component (G, or M for small inputs),
    totals, element operations, params, time."""
    head = [f"{r['preset']} {r['size'][0]}x{r['size'][1]}" for r in results]
    big = max(r["total"] for r in results) >= 1e9
    unit, div = ("G", 1e9) if big else ("M", 1e6)
    lines = [f"| {unit}MACs | " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(results)]

    def row(name: str, vals: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(vals) + " |")

    for c in COMPONENTS:
        row(c, [f"{r['macs'][c] / div:.3f}" for r in results])
    row("**total**", [f"**{r['total'] / div:.3f}**" for r in results])
    row("scan share of total", [f"{(r['macs']['scan state'] + r['macs']['scan output']) / r['total']:.1%}"
                                for r in results])
    row("total, official counter's scan rule", [f"{r['official_rule'] / div:.3f}" for r in results])
    for k in MOVES:
        row(f"{k} ({unit} element ops, not MACs)", [f"{r['moves'][k] / div:.4f}" for r in results])
    row("params (K)", [f"{r['params'] / 1e3:.1f}" for r in results])
    if timed:
        row("forward time (s)", [f"{r['seconds']:.2f} ({r['backend']})" for r in results])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m model.evaluation.profile",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("presets", nargs="*", default=list(DEFAULT_PRESETS))
    ap.add_argument("--size", nargs="+", default=["64", "256"], help="input sizes: N or HxW")
    ap.add_argument("--no-time", action="store_true", help="do not print the forward time")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    sizes = [parse_size(s) for s in a.size]
    results = []
    for p in a.presets:
        for hw in sizes:
            print(f"profiling {p} at {hw[0]}x{hw[1]} ...", flush=True)
            results.append(profile(p, hw))
    print()
    print(format_table(results, timed=not a.no_time))
    print("\nCounted with forward hooks on one forward (see `python -m model.evaluation.profile --help` "
          "and the module docstring). MACs of the paper's tables are for a 1280x720 output: "
          "--size 180x320 for x4, 360x640 for x2.\n")
    print(format_reported(compare_reported(results)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
