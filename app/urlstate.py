"""The page's state in its address (query string), so that a link opens the same view.

Keys: ``task`` (a task label, e.g. "SR x2"), ``mode`` ("as-is" | "gt"), ``large`` ("region" | "fit"),
``region`` ("x,y" or "x0,y0,x1,y1"), ``layer`` ("stage.block"; absent = auto), ``pixel`` ("row,col";
absent = the default edge pixel), ``tab`` ("restore", "internals", ...), ``example`` (an example
photo's file name). An uploaded photo is not in the address (it lives only in the browser that sent it).

Reading happens on the server at page load (``read_url``, from ``gr.Request.query_params``); writing
happens in the browser (``URL_JS``, history.replaceState), from what the components show. Bad values are
skipped with a warning, never an error: a link is a convenience.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import gradio as gr

from . import cache
from .handlers.common import DEFAULT_TILE, MODE_AS_IS, MODE_GT, explain_errors
from .lesson import AUTO_LAYER, AUTO_LAYER_LABEL
from .region import LARGE_FIT, LARGE_REGION

MODES = {"as-is": MODE_AS_IS, "gt": MODE_GT}
LARGES = {"region": LARGE_REGION, "fit": LARGE_FIT}
TABS = {"restore": "Restore", "internals": "Internals", "evidence": "Evidence", "settings": "Settings",
        "weights": "Weights"}
KEYS = ("tab", "example", "task", "mode", "large", "region", "layer", "pixel")
LINK_NOTE = ("**Share this view:** the page's address keeps the tab, task, mode, region, layer, pixel and "
             "the example photo by name, so a link opens the same view. An uploaded photo is not in the "
             "link (it stays in your browser): the receiver must upload it too.")
_REGION = re.compile(r"^\d+,\d+(,\d+,\d+)?$")
_LAYER = re.compile(r"^\d+\.\d+$")
_PIXEL = re.compile(r"^\d+,\d+$")


def parse_query(params: Mapping[str, str], examples: Mapping[str, str], tasks: list[str]
                ) -> tuple[dict[str, Any], list[str]]:
    """Query parameters -> (the state they name, one note per value that was skipped).

    ``examples``: example file name -> path; ``tasks``: the task labels offered. The state has only the
    keys that were given and valid; ``example`` becomes the path, ``mode``/``large`` the UI labels,
    ``pixel`` a (row, col) pair."""
    state: dict[str, Any] = {}
    bad: list[str] = []
    for key in KEYS:
        raw = params.get(key)
        if raw is None or not str(raw).strip():
            continue
        val = str(raw).strip().replace(" ", "") if key in ("region", "pixel") else str(raw).strip()
        if key == "tab" and val in TABS:
            state["tab"] = val
        elif key == "example" and os.path.basename(val) in examples:
            state["example"] = examples[os.path.basename(val)]
        elif key == "task" and val in tasks:
            state["task"] = val
        elif key == "mode" and val in MODES:
            state["mode"] = MODES[val]
        elif key == "large" and val in LARGES:
            state["large"] = LARGES[val]
        elif key == "region" and _REGION.match(val):
            state["region"] = val
        elif key == "layer" and (_LAYER.match(val) or val == AUTO_LAYER):
            state["layer"] = val
        elif key == "pixel" and _PIXEL.match(val):
            r, c = (int(v) for v in val.split(","))
            state["pixel"] = (r, c)
        else:
            bad.append(f"{key}={raw}")
    return state, bad


def to_query(state: Mapping[str, Any]) -> str:
    """The state (as ``parse_query`` returns it) -> the query string; ``URL_JS`` writes the same form
    (defaults left out: auto layer, mode as is, large photos by region)."""
    out: dict[str, str] = {}
    inverse = {v: k for k, v in {**MODES, **LARGES}.items()}
    for key in KEYS:
        val = state.get(key)
        if val in (None, "", AUTO_LAYER, MODE_AS_IS, LARGE_REGION):
            continue
        if key == "example":
            val = os.path.basename(str(val))
        elif key in ("mode", "large"):
            val = inverse[val]
        elif key == "pixel":
            val = f"{int(val[0])},{int(val[1])}"
        out[key] = str(val)
    return urlencode(out)


def example_map(paths: list[str]) -> dict[str, str]:
    """Example file name -> path."""
    return {os.path.basename(p): p for p in paths}


@lru_cache(maxsize=64)
def _digest(path: str, mtime: float) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def example_name(image: Any, paths: list[str]) -> str:
    """The example's file name when ``image`` (a file path) has the bytes of one of ``paths``, else ''.

    By content, not name: Gradio copies every file to its cache, and an upload may have any name."""
    if not image or not isinstance(image, str) or not os.path.isfile(image):
        return ""
    try:
        digest = _digest(image, os.path.getmtime(image))
        for p in paths:
            if os.path.isfile(p) and _digest(p, os.path.getmtime(p)) == digest:
                return os.path.basename(p)
    except OSError:
        return ""
    return ""


def example_namer(examples: list[str]) -> Callable:
    """Change handler of the input image: the example's file name, or '' (an upload)."""
    @explain_errors
    def name_of(image: Any) -> str:
        return example_name(image, examples)
    return name_of


def reader(examples: list[str], lesson_choices: Callable[[str | None], list]) -> Callable:
    """The page-load handler for the given examples: ``read(request)`` -> updates of (task, mode, large,
    region, layer, pixel row, pixel column, url state, pending region, pending layer).

    The input image is not among them: on a busy machine this handler can return after the visitor has
    uploaded a photo, and its answer would replace that photo (a value) or the input's own file check
    (an update rebuilds the component for the session). The link's example photo is picked in the
    browser instead (``url_js``: a click on its thumbnail, into an empty input only), and the views a
    link opens read it from the url state (``opener``).

    The region and layer are also kept as "pending": a new photo resets the region and a new task resets
    the layer menu, and those change events run after this load; they take the pending values instead.
    """
    ex = example_map(examples)

    @explain_errors
    def read_url(request: gr.Request) -> tuple:
        params = dict(request.query_params) if request is not None else {}
        state, bad = parse_query(params, ex, cache.task_names())
        if bad:
            gr.Warning("Ignored in the link: " + ", ".join(bad))
        keep = gr.skip()
        task = state.get("task")
        layer = state.get("layer")
        pixel = state.get("pixel")
        return (task or keep, state.get("mode", keep), state.get("large", keep), state.get("region", keep),
                gr.Dropdown(choices=lesson_choices(task), value=layer) if layer else keep,
                pixel[0] if pixel else keep, pixel[1] if pixel else keep,
                state, state.get("region"), layer)
    return read_url


def photo_changed(new_photo: Callable) -> Callable:
    """Wrap the new-photo handler (region, preview text, preview image): a pending region from the link
    is used once instead of the reset; returns those three and the cleared pending region."""
    @explain_errors
    def changed(image: Any, task: str | None, mode: str, large: str, pending: str | None,
                tile: float = DEFAULT_TILE) -> tuple:
        if pending:
            from .handlers.restore import region_preview

            return (pending, *region_preview(image, task, mode, pending, large, tile), None)
        return (*new_photo(image, task, mode, large, tile), None)
    return changed


def task_changed(lesson_dropdown: Callable) -> Callable:
    """Wrap the lesson layer menu's reset on a new task: a pending layer from the link is kept once."""
    @explain_errors
    def changed(task: str | None, pending: str | None) -> tuple:
        dd = lesson_dropdown(task)
        if pending:
            dd = gr.Dropdown(choices=dd.choices, value=pending)
        return dd, None
    return changed


def opener(tab: str, run: Callable, n_out: int) -> Callable:
    """Page-load follow-up: when the link names an example photo and its tab is ``tab`` (the Restore tab
    also when the link names none), compute that tab's view of that photo with ``run``; else change
    nothing.

    ``run(state, *inputs)`` returns the view's ``n_out`` outputs; the photo is ``state["example"]``."""
    @explain_errors
    def open_view(state: dict | None, *inputs: Any) -> tuple:
        state = state or {}
        here = state.get("tab", "restore") == tab
        if not (here and state.get("example")):
            return tuple(gr.skip() for _ in range(n_out))
        out = run(state, *inputs)
        return out if n_out > 1 else (out,)
    return open_view


def open_restore(restore: Callable) -> Callable:
    """``restore`` of the link's example with the link's region (the region box may still be waiting for
    its change event)."""
    def run(state: dict, task: str | None, mode: str, routing: str, seed: float, prompt_order: str,
            tile: float, large: str) -> tuple:
        return restore(state["example"], task, mode, routing, seed, prompt_order, tile,
                       state.get("region", ""), large)
    return run


def open_internals(internals: Callable) -> Callable:
    """``internals`` of the link's example with the link's layer, pixel and region."""
    def run(state: dict, task: str | None, mode: str, routing: str, seed: float, prompt_order: str,
            large: str) -> tuple:
        row, col = state.get("pixel") or (-1, -1)
        return internals(state["example"], task, mode, state.get("layer", AUTO_LAYER), row, col, routing,
                         seed, prompt_order, state.get("region", ""), large)
    return run


# JS: pick an example photo as a visitor would, by a click on its thumbnail under Examples, and only
# into an empty input (never over a photo the visitor has put there). A server handler that outputs to
# the input image would replace its custom preprocess. ``name``: the example's file name; ``fallback``:
# take the first example when none has that name. Used by the link (url_js) and the tour (app.tour).
PICK_EXAMPLE_JS = """(name, fallback) => {
  const shown = document.querySelector('#input-image img');
  if (shown && shown.getAttribute('src')) return;
  const thumbs = [...document.querySelectorAll('button.gallery-item')];
  const pick = thumbs.find((b) => [...b.querySelectorAll('img')]
    .some((im) => (im.getAttribute('src') || '').endsWith('/' + name))) || (fallback ? thumbs[0] : null);
  if (pick) pick.click();
}"""


def url_js() -> str:
    """JS run once, after the page-load handler has applied the link: picks the link's example photo
    (PICK_EXAMPLE_JS), switches to the link's tab and from then on keeps the address in step with the
    page (history.replaceState). Not earlier: the load handler's request carries the address it reads.
    It polls twice a second because values set by the server fire no DOM events."""
    conf = {"modes": {v: k for k, v in MODES.items()}, "larges": {v: k for k, v in LARGES.items()},
            "tabs": {v: k for k, v in TABS.items()}, "auto": [AUTO_LAYER, AUTO_LAYER_LABEL], "keys": KEYS,
            "defaults": {"mode": "as-is", "large": "region"}}
    body = URL_JS.replace("__CONF__", json.dumps(conf)).replace("__PICK__", PICK_EXAMPLE_JS)
    return "() => { (" + body + ")(); window.__urlState.start(); }"


URL_JS = """() => {
  if (window.__urlState) return;
  const conf = __CONF__;
  const q = (sel) => document.querySelector(sel);
  const val = (sel) => { const e = q(sel); return e ? String(e.value || '').trim() : ''; };
  const checked = (id) => { const e = q(`#${id} input:checked`); return e ? e.value : ''; };
  const tabButton = (name) => [...document.querySelectorAll('button[role="tab"]')]
      .find((b) => b.textContent.trim() === name);
  const current = () => {
    const s = {};
    const sel = [...document.querySelectorAll('button[role="tab"]')]
      .find((b) => b.getAttribute('aria-selected') === 'true');
    if (sel && conf.tabs[sel.textContent.trim()]) s.tab = conf.tabs[sel.textContent.trim()];
    const img = q('#input-image img');
    const ex = val('#example-name textarea, #example-name input');
    if (img && ex) s.example = ex;
    s.task = val('#task input');
    s.mode = conf.modes[checked('mode')] || '';
    s.large = conf.larges[checked('large')] || '';
    if (s.mode === conf.defaults.mode) s.mode = '';
    if (s.large === conf.defaults.large) s.large = '';
    s.region = val('#region textarea, #region input').replace(/\\s+/g, '');
    const layer = val('#layer input');
    s.layer = conf.auto.includes(layer) ? '' : layer;
    const r = parseInt(val('#q-row input'), 10), c = parseInt(val('#q-col input'), 10);
    s.pixel = (r >= 0 && c >= 0) ? `${r},${c}` : '';
    const p = new URLSearchParams();
    for (const k of conf.keys) if (s[k]) p.set(k, s[k]);
    return p.toString();
  };
  const write = () => {
    const qs = current();
    if (qs !== window.location.search.replace(/^\\?/, '')) {
      history.replaceState(null, '', window.location.pathname + (qs ? '?' + qs : ''));
    }
  };
  window.__urlState = {
    current: current,
    start: () => {
      if (window.__urlState.timer) return;
      const link = new URLSearchParams(window.location.search);
      if (link.get('example')) (__PICK__)(link.get('example'), false);
      const tab = link.get('tab');
      const name = Object.keys(conf.tabs).find((k) => conf.tabs[k] === tab);
      let tries = 0;
      const open = () => {
        const b = name && tabButton(name);
        if (b) b.click(); else if (name && tries++ < 20) { setTimeout(open, 150); return; }
        window.__urlState.timer = setInterval(write, 500);
      };
      open();
    },
  };
}"""
