"""The project's import structure, read from the code: which package imports which, drawn into docs/.

    python scripts/layout_diagram.py            # writes docs/layout.svg and docs/layout.md
    python scripts/layout_diagram.py --check    # exit 1: stale docs, an upward or a dangling import

Every ``import`` and ``from ... import`` in model/, viz/, app/ and app.py is read with ``ast`` (those
inside functions too: most heavy imports here are lazy), relative imports resolved, and each module
put in a group: the network core (model's top-level modules, model/archs, model/scan,
model/attention, model/layers), one group per tooling subpackage of model (model/training,
model/evaluation, ...), viz, app. Groups are stacked in layers; a module may import its own layer
and the layers below, never one above:

    3  app                  the Gradio app (app/, app.py)
    2  viz                  pictures (pure functions)
    1  model.<subpackage>   the tooling: training, evaluation, analysis, hub, ...
    0  model (core)         the network and what running it needs

``upward_imports`` lists the imports that break this, ``missing_imports`` the imports of project
modules that do not exist (stale names); tests/test_layout.py checks that both are empty and that the
files in docs/ are what this script writes now.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "viz", "app")
CORE_SUBPACKAGES = ("archs", "scan", "attention", "layers")  # model's subpackages that are the network itself
LAYER_NAMES = {0: "network core", 1: "tooling", 2: "pictures", 3: "app"}

__all__ = ["module_files", "imports_of", "missing_imports", "group_of", "layer_of", "import_graph",
           "upward_imports",
           "svg", "markdown", "main"]


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """{dotted module name: file} of every module of the project's packages, and "app.py" for app.py."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    if (root / "app.py").exists():
        out["app.py"] = root / "app.py"  # the entry point: a module of the app layer
    return out


def _imported(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """[(module imported, names taken from it)] for each import statement of ``path`` (module ``name``),
    at any depth of its code, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up (level - 1) more
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [alias.name for alias in node.names]))
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names of everything ``path`` (module ``name``) imports, at any depth of its code."""
    out = set()
    for mod, names in _imported(name, path):
        out.add(mod)
        out.update(f"{mod}.{n}" for n in names)  # `from pkg import submodule` imports pkg.submodule
    return out


def missing_imports(root: Path = ROOT) -> list[str]:
    """'module -> name' for each import of a project module that does not exist (a stale name, e.g. a
    lazy import missed by a move); `from module import function` needs only the module to exist."""
    files = module_files(root)
    out = []
    for name, path in files.items():
        for mod, _ in _imported(name, path):
            if mod.split(".")[0] in PACKAGES and mod not in files:
                out.append(f"{name} -> {mod}")
    return sorted(out)


def group_of(module: str, root: Path = ROOT) -> str | None:
    """The group of a project module ('model', 'model.training', ..., 'viz', 'app'); None when outside."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "model" and len(parts) > 1 and (root / "model" / parts[1]).is_dir() \
            and parts[1] not in CORE_SUBPACKAGES:
        return f"model.{parts[1]}"
    return parts[0]


def layer_of(group: str) -> int:
    """0 network core, 1 tooling (model's other subpackages), 2 viz, 3 app."""
    if group == "model":
        return 0
    if group.startswith("model."):
        return 1
    return {"viz": 2, "app": 3}[group]


def import_graph(root: Path = ROOT) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """{(importing group, imported group): [(module, imported module), ...]} over the project's modules."""
    files = module_files(root)
    known = set(files)
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, path in files.items():
        src = group_of(name, root)
        for imp in sorted(imports_of(name, path)):
            if imp not in known:  # `from pkg import function` also yields pkg.function: keep modules only
                continue
            dst = group_of(imp, root)
            if dst is not None and imp != name:
                edges.setdefault((src, dst), []).append((name, imp))
    return edges


def upward_imports(edges: dict[tuple[str, str], list[tuple[str, str]]]) -> list[str]:
    """'module -> imported' for each import of a higher layer (the network importing tooling, ...)."""
    return [f"{a} -> {b}" for (src, dst), pairs in sorted(edges.items()) if layer_of(dst) > layer_of(src)
            for a, b in pairs]


def _groups(edges: dict) -> list[str]:
    files = module_files()
    names = {group_of(m) for m in files} | {g for e in edges for g in e}
    return sorted(names, key=lambda g: (-layer_of(g), g))


def svg(edges: dict[tuple[str, str], list[tuple[str, str]]]) -> str:
    """The groups as boxes in layers (app on top, the network at the bottom), an arrow per imported group
    labelled with the number of module-to-module imports."""
    files = module_files()
    count = Counter(group_of(m) for m in files)
    groups = _groups(edges)
    by_layer: dict[int, list[str]] = {}
    for g in groups:
        by_layer.setdefault(layer_of(g), []).append(g)
    width, box_w, box_h = 940, 170, 46
    row_y = {3: 30, 2: 170, 1: 310, 0: 540}  # room under the tooling for the imports among it
    pos = {}
    for layer, gs in by_layer.items():
        step = width / len(gs)
        for i, g in enumerate(gs):
            pos[g] = (step * i + step / 2, row_y[layer])
    height = row_y[0] + box_h + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for layer in range(4):
        out.append(f'<text x="6" y="{row_y[layer] - 8}" fill="#888" font-size="11">layer {layer}: '
                   f'{LAYER_NAMES[layer]}</text>')
    for (src, dst), pairs in sorted(edges.items()):
        if src == dst:
            continue
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        colour = "#d00" if layer_of(dst) > layer_of(src) else "#555"
        gap = abs(layer_of(dst) - layer_of(src))
        if gap == 0:  # same layer: an arc under the boxes; rightward arcs shallow, leftward ones deep
            d = box_w / 2 - 25 if x2 > x1 else -(box_w / 2 - 25)
            bottom = y1 + box_h
            low = bottom + (30 if x2 > x1 else 75) + 0.1 * abs(x2 - x1)
            ctrl = 2 * low - bottom
            path = f"M{x1 + d:.0f},{bottom} Q{(x1 + x2) / 2:.0f},{ctrl:.0f} {x2 - d:.0f},{bottom}"
            lx, ly = (x1 + x2) / 2, low + 12
        elif gap == 1:  # the next layer: a straight line between the boxes
            y1 += box_h if y2 > y1 else 0
            y2 += box_h if y1 > y2 else 0
            path = f"M{x1:.0f},{y1:.0f} L{x2:.0f},{y2:.0f}"
            lx, ly = (x1 + 2 * x2) / 3 + 4, (y1 + 2 * y2) / 3
        else:  # past a layer: around the boxes in between, by the side of the picture
            side = width - 12 if x2 >= width / 2 else 12
            sx = x1 + (box_w / 2 if side > x1 else -box_w / 2)
            ex = x2 + (box_w / 4 if side > x2 else -box_w / 4)
            path = (f"M{sx:.0f},{y1 + box_h / 2:.0f} C{side:.0f},{y1 + box_h / 2:.0f} "
                    f"{side:.0f},{y2 - 30:.0f} {ex:.0f},{y2:.0f}")
            lx, ly = ex + (8 if side > x2 else -16), y2 - 10 - 16 * (gap - 2)  # one label height per layer
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.2" '
                   'marker-end="url(#a)"/>')
        out.append(f'<text x="{lx:.0f}" y="{ly:.0f}" fill="{colour}" font-size="11">{len(pairs)}</text>')
    for g, (x, y) in pos.items():
        fill = {0: "#dbe9f6", 1: "#e6f2dc", 2: "#fbeed5", 3: "#f3dde8"}[layer_of(g)]
        out.append(f'<rect x="{x - box_w / 2:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="6" '
                   f'fill="{fill}" stroke="#333"/>')
        label = "model (core)" if g == "model" else g
        out.append(f'<text x="{x:.0f}" y="{y + 19:.0f}" text-anchor="middle" font-weight="bold">{label}'
                   f'</text>')
        out.append(f'<text x="{x:.0f}" y="{y + 36:.0f}" text-anchor="middle" font-size="11">'
                   f'{count[g]} modules</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def markdown(edges: dict[tuple[str, str], list[tuple[str, str]]]) -> str:
    """docs/layout.md: the picture, the rule, and every import between groups as text."""
    files = module_files()
    lines = ["# Import structure", "",
             "Written by `python scripts/layout_diagram.py` from the code (do not edit by hand; "
             "tests/test_layout.py checks it is current).", "",
             "![groups and their imports](layout.svg)", "",
             "Layers, bottom up: 0 the network core (model's top-level modules, model/archs, model/scan), "
             "1 the tooling (model's other subpackages), 2 viz, 3 app. A module imports its own layer and "
             "the layers below, never one above; an arrow's number counts module-to-module imports.", ""]
    upward = upward_imports(edges)
    lines += ["Imports of a higher layer: " + ("none." if not upward else ", ".join(upward)), ""]
    for g in _groups(edges):
        mods = sorted(m for m in files if group_of(m) == g)
        lines.append(f"## {g} (layer {layer_of(g)}: {LAYER_NAMES[layer_of(g)]})")
        lines.append("")
        lines.append("Modules: " + ", ".join(f"`{m}`" for m in mods))
        lines.append("")
        for (src, dst), pairs in sorted(edges.items()):
            if src == g and dst != g:
                lines.append(f"- imports {dst} ({len(pairs)}): "
                             + ", ".join(f"{a} -> {b}" for a, b in pairs))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) docs/layout.svg and docs/layout.md; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python scripts/layout_diagram.py", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/ is stale or an import goes upward")
    ap.add_argument("--docs", default=str(ROOT / "docs"), help="where to write (default: docs/)")
    a = ap.parse_args(argv)
    edges = import_graph()
    want = {Path(a.docs) / "layout.svg": svg(edges), Path(a.docs) / "layout.md": markdown(edges)}
    upward = upward_imports(edges)
    if a.check:
        stale = [str(p) for p, text in want.items() if not p.exists() or p.read_text() != text]
        for p in stale:
            print(f"error: {p} is stale; run python scripts/layout_diagram.py", file=sys.stderr)
        missing = missing_imports()
        for u in upward:
            print(f"error: upward import {u}", file=sys.stderr)
        for m in missing:
            print(f"error: import of a module that does not exist: {m}", file=sys.stderr)
        return 1 if stale or upward or missing else 0
    for p, text in want.items():
        p.write_text(text)
        print(f"wrote {p}")
    for u in upward:
        print(f"warning: upward import {u}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
