"""The Gradio app: ``build_demo()`` returns the Blocks; ``python app.py`` launches it."""

from __future__ import annotations

from .layout import build_demo

__all__ = ["build_demo"]
