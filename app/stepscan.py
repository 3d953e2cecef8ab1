"""The step-through of the scan on the Internals tab: a ``gr.HTML`` that animates in the browser.

The handler sends the whole sequence once (``viz.stepscan.step_data`` as JSON); ``stepscan.js`` (the
component's ``js_on_load``) draws every frame on a canvas, so playing costs no server round-trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

JS = (Path(__file__).with_name("stepscan.js")).read_text(encoding="utf-8")

CSS = """
.ss-host { position: relative; }
.ss-controls { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 8px; }
.ss-controls button { padding: 3px 10px; border: 1px solid #999; border-radius: 6px; background: #f4f4f4;
  cursor: pointer; font-size: 14px; }
.ss-controls button:hover { background: #e4e4ff; }
.ss-slider { flex: 1 1 220px; min-width: 160px; }
.ss-t { font-variant-numeric: tabular-nums; min-width: 14em; }
.ss-fps { color: #777; font-size: 12px; }
.ss-panels { display: flex; flex-wrap: wrap; gap: 18px; }
.ss-panel { display: flex; flex-direction: column; align-items: flex-start; gap: 3px; max-width: 100%; }
.ss-title { font-weight: 600; }
.ss-canvas { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; cursor: crosshair; }
.ss-plot { border: 1px solid #ddd; max-width: 100%; }
.ss-plot-title, .ss-info { font-size: 13px; color: #444; }
.ss-info { min-height: 2.6em; }
.ss-hover { position: absolute; z-index: 20; background: rgba(20, 20, 20, 0.88); color: #fff;
  padding: 4px 8px; border-radius: 4px; font-size: 12px; pointer-events: none; max-width: 420px; }
.ss-empty { color: #666; }
"""


def component() -> gr.HTML:
    """The (empty) step-through; its value is the JSON of ``viz.stepscan.step_data``."""
    return gr.HTML(value="", html_template='<div class="ss-host"></div>', css_template=CSS, js_on_load=JS,
                   elem_id="stepscan", padding=True)


def to_value(data: dict[str, Any] | None) -> str:
    """The component's value for a ``step_data`` dict (empty without one)."""
    return json.dumps(data, separators=(",", ":")) if data else ""
