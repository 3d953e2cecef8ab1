"""glibc's malloc set to keep freed memory for reuse, so that large tensors do not page-fault anew.

Every forward allocates and frees many tensors of several megabytes (MambaIR-light at 256x256: each
of its 24 scans builds four reordered (1, 72, 65536) copies of its input and their projections).
glibc serves blocks above its mmap threshold with a fresh mmap and returns them to the system when
freed, and trims the heap's free top, so the next tensor of that size page-faults and is zeroed by
the kernel page by page: 8.3 million minor faults and 10.9 s of system time over eight 256x256
forwards of the two light models (one process, ``getrusage``), against 0.28 million and 0.6 s when
glibc returned nothing (``MALLOC_MMAP_MAX_=0 MALLOC_ARENA_MAX=1`` and no trimming). Here: blocks up
to 32 MiB (glibc's largest mmap threshold) come from the heap, and the heap keeps up to 1 GiB of free
memory instead of trimming it.
``PYTHONPATH=. python scripts/malloc_reuse.py --rounds 3`` (fresh subprocesses, interleaved, 2-core
Xeon, 2026-12-07, medians): MambaIR-light x2 256x256 forward 5.53 -> 5.20 s (1.06x), MambaIRv2-light
3.41 -> 3.15 s (1.08x); the x4 64x64 inputs within noise (0.95x / 1.04x; six more rounds of
MambaIR-light alone: 1.03x at 64x64, 0.99x at 48x48); minor faults 4.8 M -> 0.6 M, system CPU time
6.4 -> 0.9 s; peak memory 1176 -> 1257 MB (+7%). Disabling mmap altogether (every block from the
heap, one arena) was no faster in a one-off run (1.07x / 1.01x at 256x256).

Only on glibc (Linux); a user's own ``MALLOC_*`` variables or glibc malloc tunables win, and
``MAMBAIR_MALLOC=system`` leaves malloc as it is.

Huge pages: torch's CPU allocator is also asked for transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``,
read at torch's first allocation: blocks of 2 MB and more are 2 MB-aligned and ``madvise``d), so the
scans' scattered reads of a 256x256 map's token rows (MambaIR's column orders, MambaIRv2's semantic
order) walk one page table entry per 2 MB instead of per 4 KB. ``PYTHONPATH=. python
scripts/malloc_reuse.py --against no-huge-pages --rounds 4`` (2-core Xeon, 2026-12-07): see the README's
Speed section. A user's own ``THP_MEM_ALLOC_ENABLE`` (``0`` turns it off) or ``MAMBAIR_MALLOC=system``
wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30

HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"  # torch's switch for transparent huge pages in its CPU allocator
applied = False  # whether keep_freed_memory changed this process's malloc
added: set[str] = set()  # the environment variables use_huge_pages set (not the user's)


def _user_chose() -> bool:
    """Whether the user set malloc's behaviour (or asked us not to)."""
    env = os.environ
    return (env.get("MAMBAIR_MALLOC") == "system" or any(k.startswith("MALLOC_") for k in env)
            or "glibc.malloc" in env.get("GLIBC_TUNABLES", ""))


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module text); True where it was applied."""
    global applied
    if applied or not sys.platform.startswith("linux") or _user_chose():
        return applied
    try:
        mallopt = ctypes.CDLL(None).mallopt  # absent outside glibc (musl has no mallopt)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Setting either turns glibc's own sliding thresholds off; both are needed: without the trim
    # threshold a freed block at the heap's top goes back to the system all the same.
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    applied = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and applied
    return applied


def use_huge_pages() -> bool:
    """Ask torch's CPU allocator for transparent huge pages (before its first allocation: torch
    reads the variable once); True where it is on, by the user's setting or ours."""
    if (sys.platform.startswith("linux") and HUGE_PAGES not in os.environ
            and os.environ.get("MAMBAIR_MALLOC") != "system"):
        os.environ[HUGE_PAGES] = "1"
        added.add(HUGE_PAGES)
    return os.environ.get(HUGE_PAGES, "0") not in ("", "0")
