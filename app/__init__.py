"""The Gradio app: ``build_demo()`` returns the Blocks; ``python app.py`` launches it.

Gradio is imported on the first ``build_demo()`` call, so that ``app.io`` stays light.
"""

from __future__ import annotations

from typing import Any

# OpenMP reads its wait policy once, when torch or numba loads (app.cache imports torch): importing
# the model package first sets it (a short spin, see model/threads.py).
import model  # noqa: F401


def build_demo() -> Any:
    """Build the explorer's ``gr.Blocks`` (no model is loaded until a request needs it)."""
    from .layout import build_demo as _build

    return _build()


__all__ = ["build_demo"]
