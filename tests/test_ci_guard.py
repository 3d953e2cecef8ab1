"""Under CI=true a missing chromium, Playwright or gradio_client fails the run with a message that says
so (tests/conftest.py, tests/browser.py); without CI the browser and API modules are skipped instead.

Each case runs pytest in a subprocess with what is missing hidden: chromium by a PATH that holds only
this Python, a module by a ``sitecustomize`` that marks it absent in ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run_pytest(tmp_path: Path, module: str, *, ci: bool, hide_chromium: bool = False,
               hide_modules: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m pytest -q tests/<module> --collect-only`` with CI set or not and things hidden."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONPATH")}
    env["CI"] = "true" if ci else "false"
    if hide_chromium:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "python").unlink(missing_ok=True)
        (bin_dir / "python").symlink_to(sys.executable)
        env["PATH"] = str(bin_dir)  # this Python only: no chromium on PATH
    if hide_modules:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(
            "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in hide_modules))
        env["PYTHONPATH"] = str(site)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--collect-only",
           f"tests/{module}"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_ci_fails_without_chromium(tmp_path) -> None:
    r = run_pytest(tmp_path, "test_app_browser.py", ci=True, hide_chromium=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "CI=true" in out and "the browser and API tests cannot run" in out and "chromium on PATH" in out


@pytest.mark.parametrize("module, name", [("test_app_browser.py", "Playwright"),
                                          ("test_app_api.py", "gradio_client")])
def test_ci_fails_without_a_ui_module(tmp_path, module, name) -> None:
    r = run_pytest(tmp_path, module, ci=True, hide_modules=("playwright", "gradio_client"))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "CI=true" in out and "the browser and API tests cannot run" in out and name in out


def test_without_ci_the_ui_modules_are_skipped(tmp_path) -> None:
    r = run_pytest(tmp_path, "test_app_browser.py", ci=False, hide_chromium=True)
    out = r.stdout + r.stderr
    assert r.returncode == 5, out  # 5: no tests collected (the module skipped itself)
    assert "SKIPPED" in out and "chromium on PATH (apt-get install chromium) is missing" in out
