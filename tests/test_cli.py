"""Command-line entry points turn user errors into one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model import CheckpointError
from model.cli import run_cli


def test_user_errors_exit_with_one_line() -> None:
    def bad() -> None:
        raise CheckpointError("'x.pth' is not a checkpoint")

    with pytest.raises(SystemExit) as exc:
        run_cli(bad)
    assert exc.value.code == "error: 'x.pth' is not a checkpoint"


def test_success_and_return_codes() -> None:
    for ret, code in ((None, 0), (0, 0), (3, 3)):
        with pytest.raises(SystemExit) as exc:
            run_cli(lambda r=ret: r)
        assert exc.value.code == code


def test_programming_errors_still_raise() -> None:
    with pytest.raises(KeyError):
        run_cli(lambda: {}["missing"])


def test_evaluate_on_a_garbage_file_prints_no_traceback(tmp_path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint at all")
    r = subprocess.run([sys.executable, "-m", "model.evaluation.evaluate", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "not a PyTorch or safetensors checkpoint" in r.stderr
