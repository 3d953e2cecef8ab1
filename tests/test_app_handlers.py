"""Handlers called directly (no server): the error wrapper covers every UI callback."""

from __future__ import annotations

import gradio as gr
import pytest

from app import build_demo, cache, handlers


@pytest.fixture(scope="module")
def tiny_demo():
    """The Blocks with the tiny random demo models (nothing is launched)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAMBAIR_APP_DEMO", "tiny")
        cache.clear()
        yield build_demo()
        cache.clear()


def test_every_app_callback_is_inside_the_error_wrapper(tiny_demo):
    # Without explain_errors an unexpected exception shows Gradio's bare "Error".
    wired = [bf.fn for bf in tiny_demo.fns.values() if bf.fn is not None]
    ours = [fn for fn in wired if fn.__module__.startswith("app.")]
    assert {fn.__name__ for fn in ours} >= {"restore", "internals", "lam", "select_window", "layer_dropdown"}
    unwrapped = [fn.__name__ for fn in ours if not hasattr(fn, "__wrapped__")]
    assert unwrapped == []


def test_task_change_with_an_unknown_task_is_a_message(tiny_demo):
    with pytest.raises(gr.Error, match="unknown task"):
        handlers.layer_dropdown("no such task")
    dd = handlers.layer_dropdown("SR x2")
    assert dd.value == "0.0"


def test_output_click_failure_becomes_a_message():
    class Broken:
        index = None  # not an (x, y) pair

    with pytest.raises(gr.Error, match="TypeError"):
        handlers.explain_errors(handlers.select_window)(None, Broken())


def test_tabs_share_helpers_through_common_only():
    # Issue 23: what two tabs use lives in app/handlers/common.py; a tab never imports a sibling tab.
    import ast
    from pathlib import Path

    folder = Path(handlers.__file__).parent
    tabs = {p.stem for p in folder.glob("*.py")} - {"__init__", "common"}
    found = []
    for p in sorted(folder.glob("*.py")):
        if p.stem == "__init__":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in tabs:
                found.append(f"{p.name} imports .{node.module}")
    assert tabs >= {"restore", "internals", "evidence", "lam", "weights"}
    assert found == []


def test_shared_helpers_pick_the_layer_and_the_centre():
    import numpy as np

    from app.handlers.common import centre_crop, layer_record

    img = np.arange(10 * 7).reshape(10, 7)
    assert centre_crop(img, 4).tolist() == img[3:7, 1:5].tolist()
    assert centre_crop(img, 20).shape == (10, 7)
    recs = [{"stage": 0, "block": 0}, {"stage": 0, "block": 1}, {"stage": 1, "block": 0}]
    assert layer_record(recs, "0.1") is recs[1]
    assert layer_record(recs, "0.5") is recs[1]  # no such block: the nearest earlier one
    with pytest.raises(gr.Error, match="stage.block"):
        layer_record(recs, "first")
