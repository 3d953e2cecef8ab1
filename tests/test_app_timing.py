"""The restore time estimate (app.timing): its arithmetic, and its truth on the real networks."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
import torch
from torch import nn

from app import timing
from model.threads import available_cores


class _Windowed(nn.Module):
    """A stand-in network with a MambaIRv2-like config (window 16), for the arithmetic tests."""

    class config:  # noqa: N801 - read like a network's config
        window_size = 16
        in_chans = 3

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))


def test_padded_pixels_round_each_side_up_to_the_window():
    assert timing.padded_pixels((17, 33), 16) == 32 * 48
    assert timing.padded_pixels((32, 48), 16) == 32 * 48
    assert timing.padded_pixels((17, 33), 1) == 17 * 33
    assert timing.window_of(_Windowed()) == 16 and timing.window_of(nn.Conv2d(3, 3, 1)) == 1


def test_forward_shapes_follow_the_tiling_plan():
    from model.tiling import plan_tiles

    assert timing.forward_shapes((200, 150), 256, 16) == [(200, 150)]
    assert timing.forward_shapes((600, 300), 0, 8) == [(600, 300)]  # tile 0: never tile
    shapes = timing.forward_shapes((600, 300), 256, 16)
    assert len(shapes) == len(plan_tiles(600, 300, 256, 16)) == 3 * 2
    assert set(shapes) == {(256, 256)}


def test_seconds_are_read_off_the_measured_points():
    pts = {1000: 1.0, 4000: 2.5, 16000: 12.0}
    assert timing.seconds_at(pts, 4000) == 2.5                       # measured: itself
    assert timing.seconds_at(pts, 10000) == pytest.approx(2.5 + 9.5 * 0.5)  # between: linear
    assert timing.seconds_at(pts, 32000) == pytest.approx(24.0)      # above: largest per-pixel cost
    assert timing.seconds_at(pts, 500) == pytest.approx(0.75)        # below: the two smallest's line
    assert timing.seconds_at({1000: 1.0, 2000: 3.0}, 10) == pytest.approx(0.01)  # never below 0
    assert timing.seconds_at({1000: 1.0}, 3000) == pytest.approx(3.0)


def test_a_run_moves_the_estimate_half_way_to_its_measured_time():
    net, key = _Windowed(), "test|rescale"
    timing._points[key] = {64 * 64: 1.0, 128 * 128: 4.0}
    try:
        between = 1.0 + 3.0 * (112**2 - 4096) / 12288  # 100 pads to 112: linear between 64^2 and 128^2
        assert timing.estimate(key, net, (100, 100), 0, 8) == pytest.approx(between)
        # Tiled: one forward per tile, each 64x64 here.
        assert timing.estimate(key, net, (100, 100), 64, 8) == pytest.approx(4 * 1.0)
        timing.record_run(key, net, (100, 100), 0, 8, seconds=6.0)  # the machine got busier
        halfway = (between + 6.0) / 2
        assert timing.estimate(key, net, (100, 100), 0, 8) == pytest.approx(halfway)
        assert timing._points[key][64 * 64] == pytest.approx(halfway / between)  # the others follow
        timing.record_run(key, net, (100, 100), 0, 8, seconds=6.0)
        timing.record_run(key, net, (100, 100), 0, 8, seconds=6.0)
        assert timing.estimate(key, net, (100, 100), 0, 8) == pytest.approx(6.0, rel=0.1)  # a lasting load
        four = timing.estimate(key, net, (100, 100), 64, 8)
        timing.record_run(key, net, (100, 100), 64, 8, seconds=2.0)  # 4 tiles of 64x64
        assert timing._points[key][64 * 64] == pytest.approx((four + 2.0) / 2 / 4)
    finally:
        timing.forget(key)


def test_a_run_on_one_thread_counts_as_its_calibrated_equivalent():
    """Calibrated on every core: a run on one thread (chosen beside another job) is estimated at the
    measured one-thread factor, and its time updates the points as its every-core equivalent."""
    net, key = _Windowed(), "test|threads"
    timing._points[key] = {64 * 64: 1.0}
    timing._threads[key], timing._one_thread[key] = 2, 1.6
    try:
        assert timing.estimate(key, net, (64, 64), 0, 8) == pytest.approx(1.0)  # as calibrated
        assert timing.estimate(key, net, (64, 64), 0, 8, threads=2) == pytest.approx(1.0)
        assert timing.estimate(key, net, (64, 64), 0, 8, threads=1) == pytest.approx(1.6)
        timing.record_run(key, net, (64, 64), 0, 8, seconds=1.6, threads=1)  # as predicted: no change
        assert timing._points[key][64 * 64] == pytest.approx(1.0)
        timing.record_run(key, net, (64, 64), 0, 8, seconds=3.2, threads=1)  # 2.0 on every core
        assert timing._points[key][64 * 64] == pytest.approx(1.5)
    finally:
        timing.forget(key)
    assert key not in timing._threads and key not in timing._one_thread


class _Conv(_Windowed):
    """A stand-in that runs: one convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, h, w) -> (b, 32, h, w)."""
        return self.conv(x)


def test_calibration_measures_the_one_thread_factor():
    net, key = _Conv(), "test|factor"
    try:
        timing.calibrate(key, net, sides=(16, 32))
        if available_cores() > 1:  # measured whichever count the probe chose for the points
            f = timing._one_thread[key]
            assert f >= 1.0
            cal = timing._threads[key]
            assert timing.thread_factor(key, cal) == 1.0
            other = 1 if cal > 1 else available_cores()
            assert timing.thread_factor(key, other) == pytest.approx(f if other == 1 else 1 / f)
        else:  # one core: nothing to convert
            assert key not in timing._one_thread and timing.thread_factor(key, 1) == 1.0
    finally:
        timing.forget(key)


# ---------------------------------------------------------------------------
# The real networks (demo weights in weights/): estimate against measurement
# ---------------------------------------------------------------------------

SIDES = (32, 48, 64)  # calibration of this test: small, so that it takes seconds
ROUNDS = 5            # rounds of (calibration, every case); the median of the rounds' ratios counts
# name: (network input (H, W), tile). Inside the measured sizes, as in the app (measured up to the
# 256x256 default region and tile); above them is extrapolated, tested on numbers above.
CASES = {
    "56x40, between the measured sizes": ((56, 40), 0),  # MambaIRv2 pads it to 64x48
    "56x40 in four 32x32 tiles": ((56, 40), 32),  # four calls' overhead: more than one 56x40 call
}
TOLERANCE = 0.30


def _specs():
    from app import cache

    specs = cache.tasks().get("SR x2", {})
    if len(specs) < 2 or any(sp.is_random for sp in specs.values()):
        pytest.skip("needs the shipped demo weights of both light x2 networks in weights/")
    return specs


@pytest.mark.slow
def test_estimate_matches_the_measured_time_of_the_real_networks():
    """The app's estimate (common.estimate_model from app.timing.calibrate's points, in this process)
    against the app's run (common.run_network) of both light x2 networks: within ±30% per network and
    case.

    Like with like on a machine shared with other jobs: the clock is the process's CPU time on both
    sides (on this project's 2-core machine the wall time of one forward varies 1.6x from one call to
    the next, the other jobs' share, not the cost model under test; its CPU time 1.25x; on an idle
    machine wall time is CPU time over the threads at work), and each round pairs a calibration with
    the estimates from it and the runs right after it, so that a slow spell of the machine falls on
    both sides of a pair; the median of the rounds' ratios counts. Wall times are printed beside
    (``pytest -s``); the app itself calibrates with the wall clock.
    """
    from app import cache
    from app.handlers.common import estimate_model, run_network
    from model.threads import choose_threads

    specs = _specs()
    rng = np.random.default_rng(0)
    inputs = {name: rng.random((*hw, 3)) for name, (hw, _) in CASES.items()}
    results = []
    try:
        for fam, sp in specs.items():
            net = cache.get_model(sp)
            # As a restore does (common.run_threads): the thread count is probed once, before the
            # estimate and the runs, and given to both; the probe itself (20-90 ms) is in neither.
            n = choose_threads()
            ratios = {name: [] for name in CASES}
            wall = {name: [] for name in CASES}
            for _ in range(ROUNDS):
                timing.calibrate(sp.key, net, sides=SIDES, clock=time.process_time)  # this round's points
                for name, (hw, tile) in CASES.items():
                    est = estimate_model(sp, hw, tile, n)
                    t0, c0 = time.perf_counter(), time.process_time()
                    run_network(net, inputs[name], tile, threads=n)
                    ratios[name].append(est / (time.process_time() - c0))
                    wall[name].append(time.perf_counter() - t0)
            for name in CASES:
                results.append((fam, name, statistics.median(ratios[name]), ratios[name], min(wall[name])))
    finally:
        for sp in specs.values():
            timing.forget(sp.key)
    lines = [f"{fam:9s} {name}: estimate / measured CPU time, median {r:.2f} of rounds "
             f"{', '.join(f'{x:.2f}' for x in rs)}; fastest wall {w:.2f} s"
             for fam, name, r, rs, w in results]
    print("\n".join(lines + [f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}"]))
    bad = [line for (_, _, r, _, _), line in zip(results, lines, strict=True)
           if not 1 - TOLERANCE <= r <= 1 + TOLERANCE]
    assert bad == [], "\n".join(lines)
