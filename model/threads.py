"""How many CPU threads a run should use right now, and the OpenMP setting that lets two threads pay.

torch runs each op of these networks as an OpenMP parallel region: a few thousand per forward, most
under 100 us on a 64x64 input. How the idle worker waits between regions decides the speed
(``python scripts/thread_policy.py`` and ``--busy``, 2-core machine, medians in seconds for the
MambaIRv2-light x4 64x64 / MambaIR-light x4 48x48 forwards):

- asleep (``OMP_WAIT_POLICY=PASSIVE``, this project's default until now): every region first wakes
  it: a (4096, 48) add 40-66 us on 2 threads, 14-15 us on one; idle 0.305-0.333 / 0.173-0.189 s.
- spinning a little (``GOMP_SPINCOUNT=10000``: some microseconds, then asleep): the add 8-9 us;
  idle 0.226-0.257 / 0.113-0.152 s.
- but spinning beside another busy process is far worse than sleeping: the spinning worker and the
  descheduled one wait for each other: 1.054 / 0.350 s on 2 threads, against 0.420 / 0.262 s on one
  and 0.395 / 0.267 s asleep.
- 10000 spins, the setting until the seventh stop, last ~0.13 ms here (libgomp pauses each turn:
  12.6-12.9 ns a pause on the 2-core Sapphire Rapids, a C loop of 10^7): beside a busy process the
  worker burns that after every op, on the core the other process wants. 300 spins (~4 us) bridge
  the gaps between an idle forward's ops as well. ``python scripts/thread_policy.py --spins 300 10000
  --rounds 3 --probes 0`` (2-core Sapphire Rapids, 2026-12-07): idle, the same speed (the add 10-11
  us with both; the forwards 0.150-0.161 / 0.104-0.115 s with 300, 0.147-0.156 / 0.104-0.141 s with
  10000; forward+backward at 64x64 within noise); ``--busy --rounds 2``: 0.256-0.259 / 0.148-0.163 s
  with 300 against 0.551-0.555 / 0.242-0.279 s with 10000, forward+backward 0.80-0.87 / 0.79-0.85 s
  against 1.38-1.49 / 1.01-1.06 s (one thread 0.22 / 0.13 s and 0.68-0.82 / 0.76-0.89 s), so a probe
  that misjudges a busy machine now costs little.

So the short spin (300) is set before torch loads (``set_runtime_defaults``; a user's own
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` wins), and before each run ``choose_threads`` times a burst
of small ops with 1 thread and with every core, three rounds interleaved, and takes every core only
if their slowest round beats the median one-thread round (a burst can fall into a moment when the
other job is descheduled; the slowest round does not): every core on an idle machine, one while
another job runs (the script's 20 probes: idle, one thread 1.19-1.91x slower, every core picked;
beside a busy process, one thread 2-4x faster, picked every time). A probe measures what the run
will meet, where the load average or /proc/stat would describe the host of a container, not this
process's share of it.
``cpu_threads()`` applies the choice for one run; the numba scan follows torch's thread count.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator

SPIN_COUNT = "300"
# Two threads must beat one by this factor, or the probe keeps one: a near tie means the other
# core is partly taken, and a run long enough to matter would meet that load at its worst.
MIN_GAIN = 1.15
_PROBE_ROUNDS = 3  # per thread count, interleaved; the median of each is compared
last_probe: tuple[float, float] | None = None  # the last probe's median seconds, 1 thread and all cores


_ours: set[str] = set()  # the environment variables set_runtime_defaults added


def set_runtime_defaults() -> None:
    """Set the short OpenMP spin before torch or numba loads (no-op if the user set a policy)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    _ours.add("GOMP_SPINCOUNT")


def user_environment() -> dict[str, str]:
    """This process's environment without what ``set_runtime_defaults`` added (for a subprocess
    that must choose its own defaults, e.g. an older tree timed by ``bench --compare``)."""
    return {k: v for k, v in os.environ.items() if k not in _ours}


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at most a user's
    ``OMP_NUM_THREADS``."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        n = max(1, os.cpu_count() or 1)
    cap = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(n, int(cap)) if cap.isdigit() and int(cap) > 0 else n


def pick_threads(one_s: float, all_s: float, cores: int) -> int:
    """The thread count to run with, from the probe's seconds with 1 thread and with ``cores``."""
    return cores if cores > 1 and all_s * MIN_GAIN < one_s else 1


def _burst() -> float:
    """Seconds of 16 small ops of a light network's size (a (4096, 48) layer norm and add each)."""
    import torch
    import torch.nn.functional as F

    x = torch.ones(4096, 48)
    t0 = time.perf_counter()
    for _ in range(8):
        x = F.layer_norm(x, (48,)) + x  # (l, c): the norm and the residual add of every block
    return time.perf_counter() - t0


def choose_threads(cores: int | None = None) -> int:
    """Threads for a CPU run now: all ``cores`` if they beat one thread in a probe (20-90 ms), else 1."""
    import torch

    n = cores or available_cores()
    if n <= 1:
        return 1
    old = torch.get_num_threads()
    times: dict[int, list[float]] = {1: [], n: []}
    try:
        for _ in range(_PROBE_ROUNDS):
            for k in (1, n):
                torch.set_num_threads(k)
                _burst()  # the first region of a new team size pays for starting it
                times[k].append(_burst())
    finally:
        torch.set_num_threads(old)
    global last_probe
    last_probe = (statistics.median(times[1]), max(times[n]))
    return pick_threads(*last_probe, n)


@contextlib.contextmanager
def cpu_threads(threads: int | None = None, device: object = "cpu") -> Iterator[int]:
    """Run the body with ``threads`` torch threads (``choose_threads()`` when None); restored after.

    For a run on another ``device`` (a GPU) nothing is probed or changed."""
    import torch

    if torch.device(device).type != "cpu":
        yield torch.get_num_threads()
        return
    n = threads if threads is not None else choose_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)
