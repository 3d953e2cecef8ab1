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
- 10000 spins, the setting until the seventh stop, last ~0.13 ms on the 2-core Sapphire Rapids
  (libgomp pauses each turn: 12.6-12.9 ns a pause there, a C loop of 10^7): beside a busy process
  the worker burns that after every op, on the core the other process wants. The seventh stop took
  300 (~4 us there): idle as fast as 10000 on that Xeon (``--spins 300 10000 --rounds 3 --probes
  0``: forwards 0.150-0.161 / 0.104-0.115 s against 0.147-0.156 / 0.104-0.141 s), and beside a busy
  process 0.256-0.259 / 0.148-0.163 s against 0.551-0.555 / 0.242-0.279 s.
- but a spin must outlast the gaps between regions, and a pause is not the same length everywhere:
  29 ns on the 2-core AMD EPYC (firecracker VM) of 2026-12-08, so 300 spins were ~9 us there, and
  waking the worker cost ~50-70 us (the add asleep 52-85 us, spinning 9-14 us). There two threads
  with 300 spins were no faster than one (forwards 0.30 / 0.19 s both), and the probe below picked
  one thread on an idle machine 17-20 times in 20. 3000 spins (~38 us on the Xeon, ~87 us on the
  EPYC: about what one wake-up costs, so a worker never spins much longer than a wake would have
  cost): ``python scripts/thread_policy.py --paired 20 --spins 300 1000 3000 10000`` (EPYC,
  interleaved per run, median ratio over the pairs against 300): forwards 1.19x / 1.38x,
  forward+backward 1.31x / 1.11x (1000: 1.11x / 1.11x / 1.19x / 0.98x; 10000: 1.14x / 1.36x / 1.19x
  / 1.14x). The cost is where the probe misjudges a busy machine: ``--busy --spins 300 3000
  --rounds 2`` (EPYC) forwards on 2 threads 0.49-0.53 / 0.31-0.32 s with 3000 against 0.29-0.36 /
  0.19-0.23 s with 300 (one thread 0.27-0.30 / 0.15-0.16 s), and the probe took two threads there
  in 0-2 of 20 (one-off runs of ``choose_threads``' rule). Idle, with 3000 spins, it took two in
  3-19 of 20 (``--paired``'s last line and one-off runs; this VM's slow spells move it), with 300
  in 0-3.

So a short spin (3000) is set before torch loads (``set_runtime_defaults``; a user's own
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` wins), and before each run ``choose_threads`` times a burst
of small ops with 1 thread and with every core, three rounds interleaved, and takes every core only
if their slowest round beats the median one-thread round (a burst can fall into a moment when the
other job is descheduled; the slowest round does not): every core on an idle machine, one while
another job runs (the script's 20 probes on the Xeon: idle, one thread 1.19-1.91x slower, every
core picked; beside a busy process, one thread 2-4x faster, picked every time; on the EPYC VM, less
steady: see the 3000-spin item above). A probe measures what the run
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

SPIN_COUNT = "3000"  # ~38 us on the Xeon, ~87 us on the EPYC: about one wake-up (see above)
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
