"""Latency and memory of the networks per scan backend: ``python -m model.evaluation.bench``.

Prints one table: preset, input size, backend (the one that actually ran),
median forward latency (wall clock, and process CPU time, which is steadier
when other programs share the CPU) over ``--repeats`` runs after one warm-up, peak memory
during the forward, speed-up over the reference scan measured in the same run,
and the median forward+backward time (gradient of ``output.sum()`` w.r.t. the
input, parameters frozen, as LAM needs it). Weights are random: latency does
not depend on them.

CPU threads: the OpenMP wait settings decide much of a CPU forward's time; the package sets a
short spin before torch loads (``model/threads.py`` says why and what it measured), and the header
shows the settings in force.

Memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the peak resident
set size (sampled every 2 ms from /proc/self/statm, else ``ru_maxrss``) minus
the resident size before the forward -- tracemalloc does not see torch's
allocations.

    python -m model.evaluation.bench                      # default CPU rows
    python -m model.evaluation.bench --quick              # fewer repeats, smaller inputs, no ref backward
    python -m model.evaluation.bench --presets MambaIR_lightSR_x4 --sizes 64 96 --backends auto ref
    python -m model.evaluation.bench --device cuda        # mamba_ssm and torch backends on the GPU
    python -m model.evaluation.bench --compare HEAD~3     # old (a git revision) vs this tree, one run

``--compare REV`` checks REV out into a temporary ``git worktree`` and times the same inputs
(seeded random weights and image) in both trees, each in its own subprocess (the numba scan and
torch are imported per tree), interleaved round by round in alternating order so that a load
change on a shared machine hits both alike; it prints the medians over rounds and new/old
ratios of forward and forward+backward (input gradient) time, wall and process CPU. The
measuring code is passed to the subprocess, so REV needs only ``model.archs.build`` and
``model.config.PRESETS``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from model import malloc, scan
from model.archs import build
from model.config import PRESETS
from model.threads import user_environment

CPU_ROWS: list[tuple[str, int, tuple[str, ...]]] = [
    ("mambairv2_lightSR_x4", 64, ("auto", "ref")),
    ("MambaIR_lightSR_x4", 48, ("auto", "ref")),
    ("mambairv2_lightSR_x4", 128, ("auto",)),
]
CUDA_ROWS: list[tuple[str, int, tuple[str, ...]]] = [
    ("mambairv2_lightSR_x4", 128, ("mamba_ssm", "torch", "ref")),
    ("MambaIR_lightSR_x4", 128, ("mamba_ssm", "torch")),
    ("mambairv2_classicSR_x4", 256, ("mamba_ssm", "torch")),
]


@dataclass
class Row:
    """One measured configuration."""

    preset: str
    size: int
    backend: str
    forward_s: float
    forward_cpu_s: float
    peak_mb: float
    fwd_bwd_s: float | None
    speedup: float | None = None
    speedup_cpu: float | None = None


class PeakMemory:
    """Peak memory above the level at entry, in MiB (CUDA allocator or sampled CPU RSS)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_bytes() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = self._rss_bytes()
            if rss is not None:
                self._max = max(self._max, rss)
            time.sleep(0.002)

    @staticmethod
    def _trim() -> None:
        """Give freed heap pages back to the OS (glibc), so the RSS before a run is a fair base."""
        try:
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._trim()
        self._base = self._rss_bytes()
        if self._base is None:  # no /proc: process-lifetime peak (only shows new highs)
            self._base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return self
        self._max = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self._base is None:
            self.peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                            - self._base_maxrss) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._rss_bytes() or 0)
            self.peak_mb = (self._max - self._base) / 2**20


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call (CPU time is steadier on a shared machine)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, time.process_time() - c0


def measure(preset: str, size: int, backend: str, repeats: int, device: torch.device,
            backward: bool = True, seed: int = 0) -> Row:
    """Median forward (and forward+backward) latency and peak forward memory of one configuration."""
    torch.manual_seed(seed)
    # Parameters frozen: the backward is w.r.t. the input only, as LAM attribution needs it.
    net = build(PRESETS[preset]).to(device).requires_grad_(False)
    x = torch.rand(1, PRESETS[preset].in_chans, size, size, device=device)
    scan.set_backend(backend)
    try:
        with torch.no_grad():
            net(x)  # warm-up: numba loads/compiles, CUDA initialises, allocator warms
            ran = scan.last_backend() or "?"
            with PeakMemory(device) as mem:
                times = [_timed(lambda: net(x), device)]
            times += [_timed(lambda: net(x), device) for _ in range(repeats - 1)]
        fwd_bwd = None
        if backward:
            xg = x.clone().requires_grad_()

            def step() -> None:
                torch.autograd.grad(net(xg).sum(), xg)

            step()  # warm-up of the backward kernels
            fwd_bwd = statistics.median(_timed(step, device)[0] for _ in range(repeats))
    finally:
        scan.set_backend(None)
    return Row(preset, size, ran, statistics.median(t for t, _ in times),
               statistics.median(c for _, c in times), mem.peak_mb, fwd_bwd)


def format_table(rows: list[Row], header: str) -> str:
    """The table as printed: fixed-width columns, one line per row."""
    cols = ["preset", "input", "backend", "forward s", "fwd CPU s", "peak MiB", "speed-up vs ref",
            "(CPU time)", "fwd+bwd s", "fwd+bwd/fwd"]
    lines = []
    for r in rows:
        lines.append([
            r.preset, f"{r.size}x{r.size}", r.backend, f"{r.forward_s:.3f}", f"{r.forward_cpu_s:.3f}",
            f"{r.peak_mb:.0f}", f"{r.speedup:.1f}x" if r.speedup is not None else "-",
            f"{r.speedup_cpu:.1f}x" if r.speedup_cpu is not None else "-",
            f"{r.fwd_bwd_s:.3f}" if r.fwd_bwd_s is not None else "-",
            f"{r.fwd_bwd_s / r.forward_s:.2f}" if r.fwd_bwd_s is not None else "-",
        ])
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [header, fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def plan(args: argparse.Namespace) -> list[tuple[str, int, tuple[str, ...]]]:
    """Rows to run: the defaults for the device, or presets x sizes x backends from the flags."""
    if args.presets or args.sizes:
        presets = args.presets or ["mambairv2_lightSR_x4"]
        sizes = args.sizes or [64]
        default_backends = ("mamba_ssm", "torch") if args.device == "cuda" else ("auto", "ref")
        backends = tuple(args.backends or default_backends)
        return [(p, s, backends) for p in presets for s in sizes]
    rows = CUDA_ROWS if args.device == "cuda" else CPU_ROWS
    if args.quick:
        rows = [(p, s // 2, b) for p, s, b in rows]
    if args.backends:
        rows = [(p, s, tuple(args.backends)) for p, s, _ in rows]
    return rows


COMPARE_ROWS: list[tuple[str, int]] = [
    ("mambairv2_lightSR_x4", 64), ("MambaIR_lightSR_x4", 48),
    ("mambairv2_lightSR_x2", 256), ("MambaIR_lightSR_x2", 256),
]
# Run inside each tree (cwd = the tree): forward and forward+backward times of one preset/size.
_WORKER = """
import json, os, statistics, sys, time
import model  # first: each tree's package sets its own OpenMP defaults before torch loads
import torch
threads, preset, size, repeats, backward = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                            int(sys.argv[4]), sys.argv[5] == "1")
torch.set_num_threads(threads)
try:
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
except ImportError:
    pass
from model.archs import build
from model.config import PRESETS
torch.manual_seed(0)
net = build(PRESETS[preset]).eval().requires_grad_(False)
x = torch.rand(1, PRESETS[preset].in_chans, size, size)
def timed(fn):
    fn()  # warm-up (numba compile or cache load, allocator)
    out = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - t0, time.process_time() - c0))
    return [statistics.median(t[i] for t in out) for i in (0, 1)]
def fwd():
    with torch.no_grad():
        net(x)
res = {"fwd": timed(fwd)}
if backward:
    xg = x.clone().requires_grad_()
    res["fwd_bwd"] = timed(lambda: torch.autograd.grad(net(xg).sum(), xg))
print("RESULT " + json.dumps(res))
"""


@contextlib.contextmanager
def revision_tree(rev: str) -> Iterator[Path]:
    """A temporary detached ``git worktree`` of ``rev`` (removed afterwards)."""
    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True).stdout.strip())
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    tree = tmp / "tree"
    done = subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), rev],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot check out {rev!r}: {done.stderr.strip()}")
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def _worker(tree: Path, threads: int, preset: str, size: int, repeats: int, backward: bool
            ) -> dict[str, list[float]]:
    # No OpenMP setting of ours: each tree runs with the defaults its model package sets (a user's
    # OMP_WAIT_POLICY / GOMP_SPINCOUNT in the environment applies to both).
    # Likewise torch's huge pages (model.malloc): each tree sets them or not.
    env = {k: v for k, v in user_environment().items() if k not in malloc.added}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run([sys.executable, "-c", _WORKER, str(threads), preset, str(size), str(repeats),
                           "1" if backward else "0"], cwd=tree, env=env, capture_output=True, text=True)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not line:
        raise SystemExit(f"timing {preset} {size} in {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(line[-1][len("RESULT "):])


def compare(rev: str, rows: list[tuple[str, int]], threads: int, repeats: int, rounds: int,
            backward_max: int) -> str:
    """Old (``rev``) vs new (this tree) times of ``rows``, interleaved; the printed table."""
    new_tree = Path(sys.modules["model"].__file__).resolve().parents[1]  # the tree this package is in
    load0 = os.getloadavg()
    lines = []
    with revision_tree(rev) as old_tree:
        for preset, size in rows:
            backward = size <= backward_max
            got: dict[str, list[dict[str, list[float]]]] = {"old": [], "new": []}
            for r in range(rounds):
                order = [("old", old_tree), ("new", new_tree)]
                for name, tree in order if r % 2 == 0 else order[::-1]:
                    got[name].append(_worker(tree, threads, preset, size, repeats, backward))
            med = {name: {key: [statistics.median(g[key][i] for g in runs) for i in (0, 1)]
                          for key in runs[0]} for name, runs in got.items()}
            row = [preset, f"{size}x{size}"]
            for key in ("fwd", "fwd_bwd"):
                if key not in med["old"]:
                    row += ["-"] * 4
                    continue
                (ow, oc), (nw, nc) = med["old"][key], med["new"][key]
                row += [f"{ow:.3f}", f"{nw:.3f}", f"{ow / nw:.2f}x", f"{oc / max(nc, 1e-9):.2f}x"]
            lines.append(row)
            print(f"  compared {preset} {size}", file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    cols = ["preset", "input", "old fwd s", "new fwd s", "speed-up", "(CPU time)",
            "old fwd+bwd s", "new fwd+bwd s", "speed-up", "(CPU time)"]
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    head = (f"# model.evaluation.bench --compare {rev}: old = {rev}, new = this tree; CPU, "
            f"{threads} threads, torch {torch.__version__}; median of {repeats} runs after a warm-up "
            f"per subprocess, median over {rounds} interleaved rounds; load average {load0[0]:.1f} before, "
            f"{load1[0]:.1f} after; speed-up = old / new")
    out = [head, fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
    return "\n".join(out + [fmt.format(*line) for line in lines])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", choices=sorted(PRESETS), metavar="PRESET",
                    help="preset names (default rows if unset)")
    ap.add_argument("--sizes", nargs="+", type=int, help="square input sizes in pixels")
    ap.add_argument("--backends", nargs="+",
                    help="scan backends per row (auto, ref, numba, torch, mamba_ssm)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row (median reported)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="2 repeats, half-size default rows")
    ap.add_argument("--ref-backward", action="store_true",
                    help="also time forward+backward with the ref scan (a Python loop: minutes)")
    ap.add_argument("--threads", type=int, default=None, help="torch/numba CPU threads (default: all)")
    ap.add_argument("--compare", metavar="REV",
                    help="time git revision REV against this tree, interleaved (CPU; see above)")
    ap.add_argument("--rounds", type=int, default=3, help="--compare: interleaved rounds")
    ap.add_argument("--backward-max", type=int, default=128,
                    help="--compare: time forward+backward only up to this input size")
    args = ap.parse_args(argv)
    if args.compare:
        rows = ([(p, s) for p in (args.presets or ["mambairv2_lightSR_x4"]) for s in (args.sizes or [64])]
                if args.presets or args.sizes else COMPARE_ROWS)
        threads = args.threads or torch.get_num_threads()
        print(compare(args.compare, rows, threads, 2 if args.quick else max(1, args.repeats),
                      max(1, args.rounds), args.backward_max))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 2
    if args.threads:
        import numba  # the numba scan's prange threads

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    repeats = 2 if args.quick else max(1, args.repeats)
    device = torch.device(args.device)

    rows: list[Row] = []
    for preset, size, backends in plan(args):
        ref_row = None
        measured = []
        for backend in backends:
            is_ref = backend == "ref"
            row = measure(preset, size, backend, min(repeats, 3) if is_ref else repeats, device,
                          backward=(not is_ref) or args.ref_backward)
            if row.backend == "ref":
                ref_row = row
            measured.append(row)
            print(f"  measured {preset} {size} {row.backend}: {row.forward_s:.3f} s",
                  file=sys.stderr, flush=True)
        for row in measured:
            if ref_row is not None and row.backend != "ref":
                row.speedup = ref_row.forward_s / row.forward_s
                row.speedup_cpu = ref_row.forward_cpu_s / max(row.forward_cpu_s, 1e-9)
        rows.extend(measured)

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = (f"CPU, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
                f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
                f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}")
    header = (f"# model.evaluation.bench on {name}; torch {torch.__version__}; median of {repeats} runs "
              f"(ref rows: <= 3) after a warm-up; scan {scan.backend_report(device.type)}")
    print(format_table(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
