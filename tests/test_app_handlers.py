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
