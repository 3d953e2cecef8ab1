"""The Internals tab: record both networks and draw every picture of one layer."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch

from model.analysis.router_stats import UNIFORM_FACTOR, UNTRAINED_MESSAGE, is_untrained, records_stats
from model.evaluation.degrade import to_uint8

from .. import cache
from ..lesson import AUTO_LAYER, AUTO_LAYER_LABEL, is_auto, pick_layer, pick_pixel
from ..region import LARGE_REGION
from .common import (
    INTERNALS_MAX,
    MODE_AS_IS,
    apply_options,
    centre_crop,
    explain_errors,
    gpu,
    in_chans,
    layer_record,
    prepare,
    specs_for,
    to_tensor,
)

LESSON_SIDE = 384      # pixels per side of the enlarged pictures (a 96-pixel crop: 4 per LR pixel)
# Lesson steps with a caption, in the order ``lesson_extras`` returns them (after the step-through).
LESSON_STEPS = ("pick", "route", "sort", "scan", "unsort", "step")


def layer_choices(task: str | None = None) -> list[str]:
    """'stage.block' of every ASSM layer of the task's MambaIRv2 network (from its config)."""
    spec = specs_for(task).get("MambaIRv2")
    depths = getattr(cache.config_of(spec), "depths", (1,)) if spec is not None else (1,)
    return [f"{i}.{j}" for i, d in enumerate(depths) for j in range(int(d))]


@explain_errors
def layer_dropdown(task: str | None = None) -> gr.Dropdown:
    """The layer dropdown for a newly chosen task (its layers, first one selected)."""
    return gr.Dropdown(choices=layer_choices(task), value="0.0")


def lesson_layer_choices(task: str | None = None) -> list:
    """The lesson's layer menu: "auto" (the most decided router for the input) first, then every layer."""
    return [(AUTO_LAYER_LABEL, AUTO_LAYER), *layer_choices(task)]


@explain_errors
def lesson_layer_dropdown(task: str | None = None) -> gr.Dropdown:
    """The lesson's layer menu for a newly chosen task ("auto" selected)."""
    return gr.Dropdown(choices=lesson_layer_choices(task), value=AUTO_LAYER)


@gpu
@explain_errors
def internals(image: Any, task: str | None = None, mode: str = MODE_AS_IS, layer: str = AUTO_LAYER,
              query_row: float = -1, query_col: float = -1, routing: str = "argmax", seed: float = 0,
              prompt_order: str = "official", region: str | None = "", large: str = LARGE_REGION,
              progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Record both networks on the (centre-cropped) input and draw every internals picture of one layer,
    each marking the followed pixel (query_row, query_col; -1 = on an object edge) of the crop: the lesson
    view. ``layer`` "auto" (or empty): the layer whose router is most decided for this input (app.lesson).

    Returns (summary, label overlay with the pixel, label figure, sequence ribbon, sequence figure,
    MambaIR scan orders, routing histogram, usage heatmap, prompt projection, prompt similarity, ASE
    figure, MambaIRv2 attention, MambaIR attention, view state for clicks). ``region``/``large``: the
    part of a large photo to use, as in ``restore``.
    """
    from model.capture import capture
    from viz import ase, attention, prompts, sequence, sgn
    from viz import routing as vrouting

    prep = prepare(image, task, mode, region, large)
    specs = specs_for(task)
    lr = np.clip(centre_crop(prep.lr, INTERNALS_MAX), 0.0, 1.0)
    lr_u8 = to_uint8(lr)
    hw = lr.shape[:2]
    records: dict[str, list[dict]] = {}
    for i, fam in enumerate(cache.FAMILIES):
        spec = specs.get(fam)
        if spec is None:
            continue
        progress((i, 2), desc=f"recording {fam}")
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        x = to_tensor(lr, in_chans(net), next(net.parameters()).device)
        with torch.no_grad(), capture(net) as rec:
            net(x)
        records[fam] = list(rec.assm) if fam == "MambaIRv2" else list(rec.ss2d)
    layer, (edge, pixel_why), layer_why = _lesson_defaults(records.get("MambaIRv2"), layer, lr_u8, hw)
    given_r, given_c = (v is not None and v >= 0 for v in (query_row, query_col))
    auto_px = not (given_r or given_c)
    qr = int(query_row) if given_r else edge[0]
    qc = int(query_col) if given_c else edge[1]
    px = (min(qr, hw[0] - 1), min(qc, hw[1] - 1))
    progress((1, 2), desc="drawing")
    zoom = max(1, LESSON_SIDE // max(hw))  # small crops are shown enlarged (nearest neighbour)
    out: list[Any] = []
    notes = [f"Input: {hw[1]}x{hw[0]} LR pixels (centre crop, at most {INTERNALS_MAX}). "
             f"**Your pixel: row {px[0]}, column {px[1]}**"
             + (f", {pixel_why}" if auto_px else "") + " (click the picture to follow another)."]
    if layer_why:
        notes.append(f"**Layer {layer}** {layer_why} (pick another in the menu).")
    v2recs = records.get("MambaIRv2")
    r = amap = r1 = amap1 = None
    if v2recs:
        r = layer_record(v2recs, layer)
        st = vrouting.routing_stats(r, hw)
        rc_seq, _ = sequence.scan_sequence(r, hw)
        at = sequence.sequence_position(rc_seq, px)
        own, added = ase.prompt_indices(r, px)
        group = int(sgn.same_label_mask(r, px, hw).sum())
        notes.append(f"MambaIRv2 layer {r['stage']}.{r['block']}: {st['used']} of {st['num_prompts']} "
                     f"prompts used, perplexity {st['perplexity']:.1f}, "
                     f"mean router confidence {st.get('mean_confidence', float('nan')):.2f}.")
        if is_untrained(records_stats(v2recs)):
            notes.insert(0, f"⚠️ **{UNTRAINED_MESSAGE}** (mean largest route probability below "
                            f"{UNIFORM_FACTOR:g}/T in most layers): the label pictures below show no "
                            "semantic groups.")
        notes.append(f"Route: label {own} ({group} pixels share it) → sort: position {at} of {len(rc_seq)} "
                     f"in the sequence → scan with prompt {added}"
                     + (" (its own)" if added == own else f" (official order; its own is {own})")
                     + f" → unsort: the output goes back to row {px[0]}, column {px[1]}.")
        big = np.repeat(np.repeat(lr_u8, zoom, axis=0), zoom, axis=1)  # (H, W, 3) -> (zH, zW, 3)
        out += [sgn.label_overlay(big, r, image_hw=hw, pixel=px),
                sgn.label_map_figure(r, image=lr_u8, image_hw=hw, pixel=px),
                # Two image rows per ribbon row: half as tall, and as wide as a 1000 px window allows.
                sequence.sequence_ribbon(r, lr_u8, width=2 * hw[1], zoom=max(1, LESSON_SIDE // hw[1]),
                                         pixel=px),
                sequence.sequence_distance_figure(r, image_hw=hw, pixel=px)]
    else:
        out += [None, None, None, None]
    v1recs = records.get("MambaIR")
    out.append(sequence.scan_orders_figure(layer_record(v1recs, layer), image_hw=hw, pixel=px)
               if v1recs else None)
    if v2recs:
        out += [vrouting.routing_histogram(r, hw), vrouting.usage_heatmap(v2recs, hw),
                prompts.prompt_projection(r, image_hw=hw, pixel=px),
                prompts.prompt_similarity(r, image_hw=hw),
                ase.ase_figure(r, image=lr_u8, image_hw=hw, pixel=px)]
        amap = attention.implicit_attention_map(r, px, image_hw=hw)
        out.append(attention.attention_figure(amap, image=lr_u8, pixel=px,
                                              title=f"MambaIRv2 {r['stage']}.{r['block']}", record=r))
    else:
        out += [None] * 6
    if v1recs:
        r1 = layer_record(v1recs, layer)
        amap1 = attention.implicit_attention_map(r1, px, image_hw=hw)
        out.append(attention.attention_figure(amap1, image=lr_u8, pixel=px,
                                              title=f"MambaIR {r1['stage']}.{r1['block']}"))
    else:
        out.append(None)
    if any(sp.is_random for sp in specs.values()):
        notes.insert(0, f"⚠️ {cache.RANDOM_NOTE}.")
    view = {"zoom": zoom, "hw": [int(hw[0]), int(hw[1])]}
    view.update(_lesson_extras_data(r, r1, lr_u8, hw, px, amap, amap1))
    return ("\n\n".join(notes), *out, view)


def _lesson_defaults(v2recs: list[dict] | None, layer: str, lr_u8: np.ndarray, hw: tuple[int, int]
                     ) -> tuple[str, tuple[tuple[int, int], str], str]:
    """The layer ("auto": the most decided router, ``app.lesson``), the default pixel (an edge, in a label
    group of some size) and why."""
    from viz.sgn import label_grid

    why = ""
    if is_auto(layer):
        layer = "0.0"
        if v2recs:
            i, why = pick_layer(records_stats(v2recs, image_hw=hw))
            layer = f"{v2recs[i]['stage']}.{v2recs[i]['block']}"
    labels = label_grid(layer_record(v2recs, layer), hw) if v2recs else None  # (H, W) labels of that layer
    return layer, pick_pixel(lr_u8, labels), why


def _lesson_extras_data(v2: dict | None, v1: dict | None, lr_u8: np.ndarray, hw: tuple[int, int],
                        px: tuple[int, int], amap: np.ndarray | None, amap1: np.ndarray | None) -> dict:
    """The step-through data and the captions of the lesson (kept in the view state for ``lesson_extras``)."""
    from viz import captions, stepscan

    if v2 is None and v1 is None:
        return {"steps": None, "captions": {}}
    data = stepscan.step_data(v2, v1, lr_u8, hw, px)
    return {"steps": data, "captions": captions.lesson_captions(v2, v1, hw, px, data, amap, amap1)}


@explain_errors
def lesson_extras(view: dict | None) -> tuple[str, ...]:
    """The step-through (its JSON) and one caption per lesson step, from the state ``internals`` left:
    (steps, then the captions of ``LESSON_STEPS``). No network runs."""
    from ..stepscan import to_value

    view = view or {}
    caps = view.get("captions") or {}
    return (to_value(view.get("steps")), *(caps.get(k, "") for k in LESSON_STEPS))


@explain_errors
def select_pixel(view: dict | None, evt: gr.SelectData) -> tuple[int, int]:
    """Click on the lesson picture: the (row, col) of the LR pixel under the pointer."""
    if not view:
        raise gr.Error("run 'Show internals' first")
    zoom = int(view["zoom"])
    x, y = (int(v) for v in evt.index[:2])
    h, w = view["hw"]
    return min(y // zoom, int(h) - 1), min(x // zoom, int(w) - 1)
