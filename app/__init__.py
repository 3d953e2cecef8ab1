"""The Gradio app: ``build_demo()`` returns the Blocks; ``python app.py`` launches it.

Gradio is imported on the first ``build_demo()`` call, so that ``app.io`` stays light.
"""

from __future__ import annotations

import os
from typing import Any

# numba's and torch's OpenMP workers spin while idle; on a small shared CPU that slows every later
# torch op several-fold (measured: light x4 128x128 forward 33 s -> 10 s). Must be set before torch
# or numba load, so it is set here, on the first import of the app package (app.cache imports
# torch before model/__init__.py, which sets the same default for model users).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_demo() -> Any:
    """Build the explorer's ``gr.Blocks`` (no model is loaded until a request needs it)."""
    from .layout import build_demo as _build

    return _build()


__all__ = ["build_demo"]
