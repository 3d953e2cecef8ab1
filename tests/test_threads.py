"""model.threads: the OpenMP spin default, the per-run thread choice, and the numba scan following it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model import threads
from model.scan import set_backend
from model.scan.cpu import selective_scan_numba

ROOT = Path(__file__).resolve().parents[1]


def _env_after_import(extra: dict[str, str]) -> str:
    """GOMP_SPINCOUNT / OMP_WAIT_POLICY as a fresh interpreter sees them after ``import model``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra, PYTHONPATH=str(ROOT))
    code = ("import os, model; from model.threads import user_environment as u; "
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), "
            "u().get('GOMP_SPINCOUNT'))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_sets_a_short_spin_unless_the_user_chose() -> None:
    # Nothing set: the package sets the short spin, and user_environment() leaves it out (so a
    # subprocess of another tree chooses its own).
    assert _env_after_import({}) == f"{threads.SPIN_COUNT} None None"
    # A user's policy or spin count wins and is passed on.
    assert _env_after_import({"OMP_WAIT_POLICY": "PASSIVE"}) == "None PASSIVE None"
    assert _env_after_import({"GOMP_SPINCOUNT": "5"}) == "5 None 5"


def test_pick_threads_takes_all_cores_only_when_clearly_faster() -> None:
    assert threads.pick_threads(1.0, 0.55, 2) == 2  # idle machine: two threads ~1.8x faster
    assert threads.pick_threads(1.0, 4.0, 2) == 1  # beside a busy process: spinning threads 4x slower
    assert threads.pick_threads(1.0, 0.95, 2) == 1  # a near tie keeps one thread
    assert threads.pick_threads(1.0, 0.1, 1) == 1  # one core: nothing to choose


def test_choose_threads_probes_and_restores() -> None:
    old = torch.get_num_threads()
    assert threads.choose_threads(cores=1) == 1
    n = threads.available_cores()
    got = threads.choose_threads()
    assert got in {1, n}
    assert torch.get_num_threads() == old
    if n > 1:
        one, every = threads.last_probe
        assert one > 0 and every > 0
        assert got == threads.pick_threads(one, every, n)


def test_cpu_threads_sets_and_restores_and_leaves_gpus_alone() -> None:
    old = torch.get_num_threads()
    with threads.cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == old
    with threads.cpu_threads(device="meta") as n:  # not a CPU run: nothing probed or changed
        assert n == old and torch.get_num_threads() == old


def test_numba_scan_follows_torch_threads() -> None:
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    set_backend("numba")
    try:
        b, d, n, l = 1, 16, 4, 32
        u, delta = torch.randn(b, d, l), torch.randn(b, d, l)
        A, B, C = -torch.rand(d, n), torch.randn(b, n, l), torch.randn(b, n, l)
        with threads.cpu_threads(1):
            y1 = selective_scan_numba(u, delta, A, B, C)
            assert numba.get_num_threads() == 1
        with threads.cpu_threads(2):
            y2 = selective_scan_numba(u, delta, A, B, C)
            assert numba.get_num_threads() == 2
        torch.testing.assert_close(y1, y2, rtol=0, atol=0)  # one block per task: same sums
        # MambaIRv2's SGN sort (a parallel numba gather) follows it too.
        from model.scan.cpu import permute_last_numba

        x, perm = torch.randn(1, 4, 32), torch.randperm(32)
        with threads.cpu_threads(1):
            permute_last_numba(x, perm)
            assert numba.get_num_threads() == 1
        with threads.cpu_threads(2):
            permute_last_numba(x, perm)
            assert numba.get_num_threads() == 2
    finally:
        set_backend(None)


def test_available_cores_respects_omp_num_threads(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = threads.available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.available_cores() == 1
    assert threads.choose_threads() == 1  # nothing to probe
    monkeypatch.setenv("OMP_NUM_THREADS", "999")
    assert threads.available_cores() == n
