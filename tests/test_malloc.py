"""model.malloc: after ``import model`` the networks reuse freed memory instead of page-faulting (glibc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Six 16 MiB blocks allocated as torch's CPU allocator does (posix_memalign, 64-byte aligned), written,
# all freed, four rounds; the minor page faults of each round, and whether model.malloc changed malloc.
_WORKER = r"""
import ctypes, json, resource
import model, model.malloc
libc = ctypes.CDLL(None)
libc.posix_memalign.argtypes = (ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t)
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
libc.free.argtypes = (ctypes.c_void_p,)
size = 16 << 20
ptrs = [ctypes.c_void_p() for _ in range(6)]
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for p in ptrs:
        libc.posix_memalign(ctypes.byref(p), 64, size)
        libc.memset(p, 1, size)
    for p in ptrs:
        libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": model.malloc.applied, "faults": faults}))
"""


def _run(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k != "MAMBAIR_MALLOC" and not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", _WORKER], env=dict(base, PYTHONPATH=str(ROOT), **env),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_kept_for_reuse() -> None:
    kept = _run()
    system = _run(MAMBAIR_MALLOC="system")
    assert kept["applied"] and not system["applied"]
    pages = 6 * (16 << 20) // 4096
    # The system's default returns the 96 MiB freed at the heap's top each round (the blocks are
    # larger than its trim threshold), so every round faults it in again; kept, a round soon reuses
    # the last one's pages (the aligned blocks settle in within two rounds: faults of the four rounds
    # here 24555, 12289-20480, 0-20480, 0 kept, against ~24550 each with the default).
    assert system["faults"][-1] > pages // 2, system
    assert kept["faults"][-1] < pages // 20, kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_users_malloc_setting_wins() -> None:
    assert not _run(MALLOC_TRIM_THRESHOLD_="131072")["applied"]
    assert not _run(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536")["applied"]


_THP_WORKER = r"""
import json, torch
import model, model.malloc
x = torch.ones(16 << 20)  # 64 MiB, written
rollup = open("/proc/self/smaps_rollup").read()
kb = int(rollup.split("AnonHugePages:")[1].split()[0])
print(json.dumps({"on": model.malloc.use_huge_pages(), "huge_kb": kb}))
"""


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "absent"
    return text.split("[")[1].split("]")[0]


@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"), reason="no transparent huge pages here")
def test_large_tensors_get_huge_pages_unless_the_user_says_no() -> None:
    """torch's allocator is asked for huge pages at ``import model`` (even after ``import torch``), and
    a user's THP_MEM_ALLOC_ENABLE=0 wins."""
    def run(**env: str) -> dict:
        base = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "MAMBAIR_MALLOC")}
        done = subprocess.run([sys.executable, "-c", _THP_WORKER], capture_output=True, text=True,
                              env=dict(base, PYTHONPATH=str(ROOT), **env), check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    ours = run()
    assert ours["on"] and ours["huge_kb"] >= 2048, ours
    if _thp_mode() == "madvise":  # the kernel gives them only where asked
        off = run(THP_MEM_ALLOC_ENABLE="0")
        assert not off["on"] and off["huge_kb"] == 0, off
        system = run(MAMBAIR_MALLOC="system")
        assert not system["on"] and system["huge_kb"] == 0, system
