"""The layout: no module imports a layer above its own (scripts/layout_diagram.py reads the imports),
docs/layout.svg and docs/layout.md are current, and every ``python -m ...`` command the READMEs, docs,
scripts and module docstrings name exists and answers ``--help``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import layout_diagram as ld

ROOT = Path(__file__).parent.parent
COMMAND = re.compile(r"-m ((?:model|viz|app)(?:\.[a-z_][a-z0-9_]*)+)")


def test_no_module_imports_upward() -> None:
    edges = ld.import_graph()
    assert ld.upward_imports(edges) == []
    core = {dst for (src, dst) in edges if src == "model"}
    assert core == {"model"}  # the network imports only itself: no tooling, viz or app
    assert not any(src == "viz" and dst == "app" for src, dst in edges)
    tooling = {src for src, _ in edges if src.startswith("model.")}
    assert {"model.training", "model.evaluation", "model.hub", "model.analysis"} <= tooling


def test_every_imported_project_module_exists() -> None:
    """Lazy imports run only when called: a name left behind by a move is found here, not by a user."""
    assert ld.missing_imports() == []


def test_an_upward_import_is_found(tmp_path) -> None:
    """A small tree with a lazy import of tooling in the network and of app in viz: both are reported."""
    tree = {"model/__init__.py": "", "model/loading.py": "def f():\n    from .hub import weights\n",
            "model/hub/__init__.py": "", "model/hub/weights.py": "from model import loading\n",
            "model/archs/__init__.py": "from ..scan import ref\n", "model/scan/__init__.py": "",
            "model/scan/ref.py": "", "viz/__init__.py": "", "viz/x.py": "import app.io\n",
            "app/__init__.py": "", "app/io.py": "import viz.x\nfrom model.hub.weights import f\n",
            "app/old.py": "def g():\n    from model.weights import f\n    import viz.gone\n"}
    for rel, text in tree.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    edges = ld.import_graph(tmp_path)
    assert ld.upward_imports(edges) == ["model.loading -> model.hub", "model.loading -> model.hub.weights",
                                        "viz.x -> app.io"]
    assert edges[("model", "model")] == [("model.archs", "model.scan"), ("model.archs", "model.scan.ref")]
    assert edges[("app", "model.hub")] == [("app.io", "model.hub.weights")]
    assert ld.missing_imports(tmp_path) == ["app.old -> model.weights", "app.old -> viz.gone"]


def test_docs_layout_is_current() -> None:
    """docs/layout.{svg,md} are what `python scripts/layout_diagram.py` writes from today's code."""
    r = subprocess.run([sys.executable, "scripts/layout_diagram.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def named_commands() -> dict[str, list[str]]:
    """{module: [files naming `python -m module`]} over the READMEs, docs, scripts, .ci and the
    docstrings and messages of model/, viz/, app/."""
    files = [*ROOT.glob("*.md"), *ROOT.glob("*/README.md"), *ROOT.glob("docs/**/*.md"),
             *ROOT.glob("scripts/*"), ROOT / ".ci" / "run"]
    files += [f for pkg in ("model", "viz", "app") for f in (ROOT / pkg).rglob("*.py")] + [ROOT / "app.py"]
    out: dict[str, list[str]] = {}
    for f in files:
        if f.is_file():
            for m in COMMAND.findall(f.read_text(errors="replace")):
                out.setdefault(m, []).append(f.relative_to(ROOT).as_posix())
    return out


COMMANDS = named_commands()


def test_the_commands_are_found() -> None:
    want = {"model.training.train", "model.evaluation.evaluate", "model.hub.download", "viz.lam"}
    assert want <= set(COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_every_named_command_answers_help(module) -> None:
    """`python -m module --help` exits 0 with a usage line: a renamed or broken command fails here."""
    where = ", ".join(sorted(set(COMMANDS[module])))
    stem = ROOT / module.replace(".", "/")
    # `python -m` runs a module file, or a package's __main__.py
    path = stem.with_suffix(".py") if stem.with_suffix(".py").is_file() else stem / "__main__.py"
    assert path.is_file(), f"python -m {module} (named in {where}) has no module"
    assert "argparse" in path.read_text(), f"python -m {module} (named in {where}) has no argparse"
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "usage:" in r.stdout, f"{module} (named in {where}):\n{r.stdout}{r.stderr}"
