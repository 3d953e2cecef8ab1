"""How long a restore will take on this machine: each model's cost curve, measured here, not assumed.

The cost of one forward is a function of P, the number of pixels the network really processes
(MambaIRv2 pads its input to multiples of its attention window; MambaIR pads nothing). It is not
proportional to P: small inputs pay a per-call overhead, and large ones run out of the CPU's caches
(on the project's 2-core CPU, MambaIR-light costs about twice as much per pixel at 256x256 as at
128x128). So ``calibrate`` measures forwards at a few sizes up to the size users run (the 256x256
default region and tile) and the estimate for any P is read off the measured points: linear between
two of them (``seconds_at`` says what it does outside them).

Each finished run is a measured point too: the next estimate of its size is half-way between the
estimate it had and the time just measured, and every other stored time moves by the same factor (the
machine is that much busier or idler than when they were measured). Half-way, because on a machine
shared with other jobs two runs of the same input can differ by 2x: the estimate follows a lasting
change of load within a few runs without jumping after every disturbed one. A tiled run costs one
forward per tile.

Plain functions (no Gradio); the handlers in ``app.handlers.common`` call them. Nothing runs at import.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

from model.threads import available_cores, choose_threads, cpu_threads

# Sides of the square calibration inputs, up to the default region and tile (256); multiples of
# MambaIRv2's window of 16. A 256x256 forward of a light model takes seconds on a 2-core CPU: the
# calibration costs about one restore, once per model and process (at app start, in the background).
CALIBRATION_SIDES = (64, 128, 256)

# One timed network run at a time: a calibration must not share the machine with a restore (or with
# another calibration), or both measure the other's load.
RUN_LOCK = threading.RLock()

# Per model (ModelSpec.key): {processed pixels P: seconds of one forward}, at the thread count in
# _threads (model.threads' choice when it was calibrated), and the time of one thread over the time
# of every core for that model (measured at calibration when it ran on every core; absent else).
_points: dict[str, dict[int, float]] = {}
_threads: dict[str, int] = {}
_one_thread: dict[str, float] = {}


def padded_pixels(hw: tuple[int, int], window: int) -> int:
    """Pixels of an (h, w) input after padding each side up to a multiple of ``window``."""
    m = max(1, int(window))
    return (-(-int(hw[0]) // m) * m) * (-(-int(hw[1]) // m) * m)


def window_of(net: nn.Module) -> int:
    """The multiple a network pads its input to (MambaIRv2: its window size; MambaIR: 1)."""
    cfg = getattr(net, "config", None)
    return int(getattr(cfg, "window_size", 1) or 1)


def forward_shapes(hw: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int]]:
    """(h, w) of every forward a run makes: one for the whole input, or one per tile
    (``model.tiling``'s plan) when the input is larger than ``tile`` (0 = never tile)."""
    h, w = int(hw[0]), int(hw[1])
    if not tile or max(h, w) <= int(tile):
        return [(h, w)]
    from model.tiling import plan_tiles

    return [(y1 - y0, x1 - x0) for y0, y1, x0, x1 in plan_tiles(h, w, int(tile), int(overlap))]


def seconds_at(points: dict[int, float], p: int) -> float:
    """Seconds of one forward on ``p`` processed pixels, read off measured ``{P: seconds}`` points:
    linear between the two measured sizes around ``p``; below the smallest, on the line through the
    two smallest (it keeps the per-call overhead); above the largest, at the largest one's cost per
    pixel (a line through two noisy points would multiply their noise far above them)."""
    if not points:
        raise ValueError("no measured points")
    if p in points:
        return points[p]
    ps = sorted(points)
    if len(ps) == 1 or p > ps[-1]:
        return points[ps[-1]] * p / ps[-1]
    i = max(bisect.bisect_left(ps, p), 1)
    lo, hi = ps[i - 1], ps[i]
    t = points[lo] + (points[hi] - points[lo]) / (hi - lo) * (p - lo)
    if t <= 0:  # below the smallest size, a line through two noisy small sizes can cross zero
        t = points[lo] * p / lo
    return t


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(net: nn.Module, hw: tuple[int, int],
                 clock: Callable[[], float] = time.perf_counter, threads: int | None = None) -> float:
    """Seconds (of ``clock``) of one forward of ``net`` on a random (1, C, h, w) input (no gradients),
    with ``threads`` CPU threads (None: ``model.threads``' choice now, as ``run_network`` makes it)."""
    p = next(net.parameters())
    chans = int(getattr(getattr(net, "config", None), "in_chans", 3))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, chans, int(hw[0]), int(hw[1]), generator=gen).to(p.device)
    with torch.no_grad(), cpu_threads(threads, device=p.device):
        _sync(p.device)
        t0 = clock()
        net(x)
        _sync(p.device)
        return clock() - t0


def calibrate(key: str, net: nn.Module, sides: tuple[int, ...] = CALIBRATION_SIDES, repeats: int = 1,
              clock: Callable[[], float] = time.perf_counter) -> dict[int, float]:
    """Time ``net`` on square inputs of ``sides`` on this machine now (the fastest of ``repeats``
    forwards each, after a warm-up that loads the compiled scan); remembered under ``key``.
    ``clock``: wall time for the app; the test of the estimate also uses process CPU time."""
    with RUN_LOCK:
        cpu = next(net.parameters()).device.type == "cpu"
        n = choose_threads() if cpu else torch.get_num_threads()
        time_forward(net, (sides[0], sides[0]), threads=n)  # warm-up: not timed
        w = window_of(net)
        points: dict[int, float] = {}
        for s in sides:
            times = [time_forward(net, (s, s), clock, n) for _ in range(max(1, int(repeats)))]
            points[padded_pixels((s, s), w)] = min(times)
        _points[key], _threads[key] = points, n
        _one_thread.pop(key, None)
        cores = available_cores()
        if cpu and cores > 1:
            # The middle size on the other thread count too (one thread, or every core when the
            # probe chose one): what a run the probe later puts on that count costs against these.
            mid = sides[len(sides) // 2]
            other = 1 if n > 1 else cores
            t_other = min(time_forward(net, (mid, mid), clock, other) for _ in range(max(1, int(repeats))))
            t_cal = points[padded_pixels((mid, mid), w)]
            one, every = (t_other, t_cal) if other == 1 else (t_cal, t_other)
            _one_thread[key] = max(1.0, one / every)
        return dict(points)


def thread_factor(key: str, threads: int | None) -> float:
    """Seconds with ``threads`` over seconds at ``key``'s calibration thread count (1 when the same,
    None, or not measured). ``_one_thread`` is one thread's time over every core's, at least 1 (a
    machine too busy for every core to help is estimated as if they ran like one)."""
    cal, f = _threads.get(key), _one_thread.get(key)
    if threads is None or cal is None or threads == cal or f is None:
        return 1.0
    return f if threads == 1 else 1.0 / f


def remember(key: str, points: dict[int, float]) -> None:
    """Use measured ``{P: seconds}`` points for ``key`` (e.g. the fastest of several calibrations)."""
    _points[key] = {int(p): float(t) for p, t in points.items()}


def points(key: str) -> dict[int, float]:
    """A copy of the measured ``{P: seconds}`` points of ``key`` (empty before its calibration)."""
    return dict(_points.get(key, {}))


def is_calibrated(key: str) -> bool:
    """Whether ``key`` has measured points."""
    return key in _points


def estimate(key: str, net: nn.Module, hw: tuple[int, int], tile: int, overlap: int,
             threads: int | None = None) -> float:
    """Predicted seconds of a run of ``net`` on an ``hw`` input with ``threads`` CPU threads (None:
    as calibrated), calibrating first if needed."""
    if key not in _points:
        with RUN_LOCK:  # a calibration under way (the warm-up thread) is waited for, not repeated
            if key not in _points:
                calibrate(key, net)
    w = window_of(net)
    base = sum(seconds_at(_points[key], padded_pixels(s, w)) for s in forward_shapes(hw, tile, overlap))
    return base * thread_factor(key, threads)


def record_run(key: str, net: nn.Module, hw: tuple[int, int], tile: int, overlap: int,
               seconds: float, threads: int | None = None) -> None:
    """A finished run of ``seconds`` on ``threads`` CPU threads: the estimate of its size moves half-way
    to the measured time (a run slowed down by another job for a moment moves it only half-way), every
    other stored time of ``key`` by the same factor (the machine is that much busier or idler than when
    they were measured). A run on another thread count counts as its calibration-thread equivalent."""
    points = _points.get(key)
    if points is None or seconds <= 0:
        return
    seconds = float(seconds) / thread_factor(key, threads)
    shapes = forward_shapes(hw, tile, overlap)
    w = window_of(net)
    predicted = sum(seconds_at(points, padded_pixels(s, w)) for s in shapes)
    target = 0.5 * (predicted + float(seconds))
    for p in points:
        points[p] *= target / predicted
    sizes = {padded_pixels(s, w) for s in shapes}
    if len(sizes) == 1:  # always: model.tiling cuts tiles of one size
        points[sizes.pop()] = target / len(shapes)


def forget(key: str | None = None) -> None:
    """Drop the measured points of ``key`` (all of them when None): the next estimate calibrates."""
    for d in (_points, _threads, _one_thread):
        if key is None:
            d.clear()
        else:
            d.pop(key, None)
