"""The Gradio Blocks: components and event wiring only (the work is in ``handlers``)."""

from __future__ import annotations

import os
import tempfile
import types
from typing import Any

import gradio as gr

from model.hub.download import APP_PRESETS

from . import cache, handlers, stepscan, texts, tour, urlstate
from .io import MAX_SIDE
from .region import LARGE_CHOICES, LARGE_REGION, REGION_SIDE

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
HEAVY = "model"          # concurrency_id shared by every event that runs a network
HEAVY_LIMIT = 1          # one network job at a time: the CPU has few cores
QUEUE_SIZE = 16
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# Width (px) below which a pair of plots in one row wraps to one per line: side by side at a 1400 px
# window, stacked at 1000 px, so that the maps stay large enough to see single pixels.
PAIR_MIN = 560
# Run once on page load: a click on the input image writes "x,y", a drag "x0,y0,x1,y1" (pixels of
# the photo) into the region box. Gradio shows images with object-fit: scale-down (never enlarged,
# centred), so the pointer is mapped as Gradio maps its own clicks; capture-phase listeners run
# before the upload widget sees the pointer.
PAGE_JS = """() => {
  if (window.__regionPicker) return; window.__regionPicker = true;
  const natural = (img, e) => {
    const r = img.getBoundingClientRect();
    const s = Math.min(1, r.width / img.naturalWidth, r.height / img.naturalHeight);
    const ox = (r.width - img.naturalWidth * s) / 2, oy = (r.height - img.naturalHeight * s) / 2;
    const x = Math.floor((e.clientX - r.left - ox) / s), y = Math.floor((e.clientY - r.top - oy) / s);
    return [Math.min(Math.max(x, 0), img.naturalWidth - 1), Math.min(Math.max(y, 0), img.naturalHeight - 1)];
  };
  const setRegion = (text) => {
    const box = document.querySelector('#region textarea, #region input');
    if (!box) return;
    box.value = text;
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  let start = null;
  document.addEventListener('pointerdown', (e) => {
    const img = e.target.closest ? e.target.closest('#input-image img') : null;
    if (!img || !img.naturalWidth || e.button !== 0) return;
    start = {img: img, xy: natural(img, e), cx: e.clientX, cy: e.clientY};
    e.preventDefault();
  }, true);
  document.addEventListener('pointerup', (e) => {
    if (!start) return;
    const s = start; start = null;
    const end = natural(s.img, e);
    const moved = Math.abs(e.clientX - s.cx) + Math.abs(e.clientY - s.cy) > 6;
    setRegion(moved ? `${s.xy[0]},${s.xy[1]},${end[0] + 1},${end[1] + 1}` : `${end[0]},${end[1]}`);
  }, true);
}"""


def raw_file_preprocess(component: gr.Image, payload: Any) -> Any:
    """Preprocess of the input image: the uploaded file's path, untouched.

    The stock ``gr.Image`` opens every upload with PIL while preprocessing, so a corrupt file fails
    there with a generic error; instead ``app.io.load_image`` reads the file and says what is wrong.
    Data URLs go through the stock path. (Bound on the instance: a ``gr.Image`` subclass would make
    Gradio write a .pyi stub next to this file.)
    """
    if payload is not None and getattr(payload, "path", None) and not str(payload.url or "").startswith(
            "data:"):
        return str(payload.path)
    return gr.Image.preprocess(component, payload)


def example_files() -> list[str]:
    """Example photos from assets/, else two scikit-image photos saved once to a temp folder."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
    found = sorted(os.path.join(root, f) for f in os.listdir(root)
                   if f.lower().endswith(IMAGE_EXTS)) if os.path.isdir(root) else []
    if found:
        return found
    out_dir = os.path.join(tempfile.gettempdir(), "mambair_explorer_examples")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    try:
        from PIL import Image
        from skimage import data

        for name in ("astronaut", "coffee"):
            path = os.path.join(out_dir, f"{name}_crop96.png")
            if not os.path.exists(path):
                img = getattr(data, name)()
                h, w = img.shape[:2]
                crop = img[h // 2 - 48: h // 2 + 48, w // 2 - 48: w // 2 + 48]  # small: fast on a CPU
                Image.fromarray(crop).save(path)
            paths.append(path)
    except Exception:  # examples are a convenience; the app works without them
        pass
    return paths


def _layer_and_pixel(task: str | None, what: str, layer_id: str, row_id: str, col_id: str, auto: bool = False
                     ) -> tuple[gr.Dropdown, gr.Number, gr.Number]:
    """The layer menu and the pixel row/column boxes of the Internals and Evidence tabs (``auto``: the
    lesson's, which opens on the most decided layer and an edge pixel)."""
    if auto:
        layer = gr.Dropdown(handlers.lesson_layer_choices(task), value="auto", label="Layer (stage.block)",
                            elem_id=layer_id)
    else:
        layer = gr.Dropdown(handlers.layer_choices(task) if task else ["0.0"], value="0.0",
                            label="Layer (stage.block)", elem_id=layer_id)
    default = "on an edge" if auto else "centre"
    row = gr.Number(value=-1, precision=0, label=f"{what} row (-1 = {default})", elem_id=row_id)
    col = gr.Number(value=-1, precision=0, label=f"{what} column (-1 = {default})", elem_id=col_id)
    return layer, row, col


def _caption(step: str) -> gr.Markdown:
    """The caption of one lesson step (two lines on this image, filled in by ``lesson_extras``)."""
    return gr.Markdown(elem_id=f"cap-{step}", elem_classes=["lesson-caption"])


def build_demo() -> gr.Blocks:
    """Build the Blocks (no model is loaded here: models load on the first request)."""
    task_names = cache.task_names()
    default_task = task_names[0] if task_names else None

    with gr.Blocks(title="MambaIRv2 Explorer") as demo:
        gr.Markdown(texts.INTRO)
        with gr.Row(equal_height=False):
            tour_btn = gr.Button("Take the tour", elem_id="tour-btn", size="sm", scale=0, min_width=150)
            gr.Markdown(urlstate.LINK_NOTE, elem_id="link-note")
        # The link's state (app.urlstate): as read at page load, and the region / layer still to apply
        # after the change events that a new photo or task triggers.
        url_state, pending_region, pending_layer = gr.State(None), gr.State(None), gr.State(None)
        # One line on the weights (official fetched or not, random demo models, a broken manifest),
        # refreshed on page load and after a fetch.
        top_status = gr.Markdown(handlers.weights_status(), elem_id="weights-status-top")
        result_state = gr.State(None)

        with gr.Tab("Restore", id="restore"):
            with gr.Row():
                with gr.Column(scale=1):
                    inp = gr.Image(label="Input image", type="filepath", image_mode=None,
                                   sources=["upload", "clipboard"], elem_id="input-image", height=320)
                    inp.preprocess = types.MethodType(raw_file_preprocess, inp)
                    examples = example_files()
                    if examples:
                        gr.Examples(examples=examples, inputs=inp, label="Examples", cache_examples=False)
                    # The example's file name when the input is one (for the link), else empty.
                    example_name = gr.Textbox(visible="hidden", elem_id="example-name")
                    # Custom values are allowed because checkpoints added while the app runs (Weights tab,
                    # add_checkpoint) bring new labels; the handlers check every label against the cache.
                    task = gr.Dropdown(task_names, value=default_task, label="Task", allow_custom_value=True,
                                       info="Only tasks with weights are listed.", elem_id="task")
                    mode = gr.Radio(handlers.MODES, value=handlers.MODE_AS_IS, label="Mode", elem_id="mode")
                    large = gr.Radio(LARGE_CHOICES, value=LARGE_REGION, elem_id="large",
                                     label=f"Photos over {MAX_SIDE} px per side (what the networks see)")
                    region = gr.Textbox(value="", label="Region (x,y or x0,y0,x1,y1; empty = most detailed)",
                                        placeholder="click or drag on the input", elem_id="region")
                    region_info = gr.Markdown(elem_id="region-info")
                    region_img = gr.Image(label="Region of the photo", format="png", interactive=False,
                                          elem_id="region-preview", height=200, visible=False)
                    run_btn = gr.Button("Restore", variant="primary", elem_id="restore-btn")
                    gr.Markdown(texts.fill(texts.RESTORE_HELP, max_side=MAX_SIDE,
                                           region_side=REGION_SIDE))
                with gr.Column(scale=1):
                    slider = gr.ImageSlider(label="Before (bicubic / input) | after (MambaIRv2)",
                                            format="png", elem_id="slider", max_height=480)
            with gr.Row():
                out_v2 = gr.Image(label="MambaIRv2 (click to place the LAM window)", format="png",
                                  interactive=False, elem_id="out-v2", height=360,
                                  buttons=["download", "fullscreen"])
                out_v1 = gr.Image(label="MambaIR (click to place the LAM window)", format="png",
                                  interactive=False, elem_id="out-v1", height=360,
                                  buttons=["download", "fullscreen"])
            details = gr.Markdown(elem_id="details")
            scores = gr.Markdown(elem_id="scores")

            with gr.Accordion("LAM: which input pixels made this output window?", open=True):
                gr.Markdown(texts.fill(texts.LAM_HELP, context=handlers.LAM_CONTEXT,
                                       steps=handlers.LAM_DEFAULT_STEPS), latex_delimiters=LATEX)
                with gr.Row():
                    lam_method = gr.Radio(handlers.LAM_METHODS, value="LAM", label="Method")
                    nodes = handlers.LAM_DEFAULT_STEPS
                    lam_steps = gr.Slider(1, 100, value=nodes, step=1, label=(
                        f"Steps (LAM: Gauss–Legendre nodes, {nodes} beat LAM_Demo's 50)"),
                                          elem_id="lam-steps")
                    lam_x = gr.Number(value=-1, precision=0, label="x (output pixel, -1 = centre)",
                                      elem_id="lam-x")
                    lam_y = gr.Number(value=-1, precision=0, label="y (output pixel, -1 = centre)",
                                      elem_id="lam-y")
                    lam_btn = gr.Button("Run LAM", elem_id="lam-btn")
                with gr.Row():
                    lam_v2 = gr.Image(label="MambaIRv2 LAM", format="png", interactive=False,
                                      show_label=False, elem_id="lam-v2")
                    lam_v1 = gr.Image(label="MambaIR LAM", format="png", interactive=False, show_label=False,
                                      elem_id="lam-v1")
                lam_info = gr.Markdown(elem_id="lam-info")

            # Choosing the region of a large photo: a click or a drag on the input writes the region
            # box (PAGE_JS); every change redraws the preview (wired below, once the tile slider exists).
            demo.load(None, js=PAGE_JS)
            inp.change(urlstate.example_namer(examples), inputs=[inp], outputs=[example_name],
                       api_visibility="private", queue=False)

        with gr.Tab("Internals", id="internals"):
            # The lesson view, in the order data flows through one ASSM layer: route -> sort -> scan
            # with the prompt -> unsort. Every picture marks the same pixel (cyan); a click on the
            # picture of step 0 follows another pixel (select_pixel, then the `internals` endpoint).
            gr.Markdown(texts.fill(texts.INTERNALS_HELP, size=handlers.INTERNALS_MAX))
            with gr.Row():
                layer, q_row, q_col = _layer_and_pixel(default_task, "pixel", "layer", "q-row", "q-col",
                                                       auto=True)
                int_btn = gr.Button("Show internals", variant="primary", elem_id="internals-btn")
            lesson_view = gr.State(None)
            gr.Markdown(texts.STEP_PICK)
            caps = {"pick": _caption("pick")}
            with gr.Row(equal_height=False):
                sgn_overlay = gr.Image(label="labels over the input: click a pixel to follow it",
                                       format="png", interactive=False, elem_id="lesson-input", height=400,
                                       buttons=["fullscreen"])
                int_summary = gr.Markdown(elem_id="internals-summary")
            gr.Markdown(texts.STEP_ROUTE, latex_delimiters=LATEX)
            caps["route"] = _caption("route")
            sgn_fig = gr.Plot(label="label map", elem_id="sgn-fig")
            with gr.Row():
                hist_fig = gr.Plot(label="pixels per prompt", min_width=PAIR_MIN)
                usage_fig = gr.Plot(label="prompt usage per layer", min_width=PAIR_MIN)
            gr.Markdown(texts.STEP_SORT, latex_delimiters=LATEX)
            caps["sort"] = _caption("sort")
            seq_ribbon = gr.Image(label="MambaIRv2: pixels in scan order (your pixel boxed, its label group "
                                        "kept, the rest faded)", format="png", interactive=False,
                                  elem_id="seq-ribbon", buttons=["fullscreen"])
            seq_fig = gr.Plot(label="MambaIRv2: where each sequence entry comes from", elem_id="seq-fig")
            scan_fig = gr.Plot(label="MambaIR: the four raster scans", elem_id="scan-fig")
            # Step through the scan: animated in the browser from data sent once (app/stepscan.js).
            gr.Markdown(texts.STEP_THROUGH, latex_delimiters=LATEX)
            caps["step"] = _caption("step")
            step_html = stepscan.component()
            gr.Markdown(texts.STEP_SCAN, latex_delimiters=LATEX)
            caps["scan"] = _caption("scan")
            with gr.Row():
                proj_fig = gr.Plot(label="prompt projection", elem_id="proj-fig", min_width=PAIR_MIN)
                sim_fig = gr.Plot(label="prompt similarity", min_width=PAIR_MIN)
            ase_fig = gr.Plot(label="ASE", elem_id="ase-fig")
            gr.Markdown(texts.STEP_UNSORT, latex_delimiters=LATEX)
            caps["unsort"] = _caption("unsort")
            with gr.Row():
                attn_v2 = gr.Plot(label="MambaIRv2 implicit attention", elem_id="attn-v2", min_width=PAIR_MIN)
                attn_v1 = gr.Plot(label="MambaIR implicit attention", elem_id="attn-v1", min_width=PAIR_MIN)

        with gr.Tab("Evidence", id="evidence"):
            gr.Markdown(texts.fill(texts.EVIDENCE_HELP, size=handlers.INTERNALS_MAX))
            with gr.Row():
                ev_layer, ev_row, ev_col = _layer_and_pixel(default_task, "query", "ev-layer", "ev-row",
                                                            "ev-col")
            gr.Markdown(texts.EV_REDUNDANCY, latex_delimiters=LATEX)
            red_btn = gr.Button("Measure scan redundancy (MambaIR)", elem_id="ev-redundancy-btn")
            red_fig = gr.Plot(label="four-scan similarity")
            red_md = gr.Markdown(elem_id="ev-redundancy")
            gr.Markdown(texts.EV_DECAY, latex_delimiters=LATEX)
            decay_btn = gr.Button("Measure decay", elem_id="ev-decay-btn")
            with gr.Row():
                decay_v2 = gr.Plot(label="MambaIRv2")
                decay_v1 = gr.Plot(label="MambaIR")
            decay_md = gr.Markdown(elem_id="ev-decay")
            gr.Markdown(texts.EV_ASE, latex_delimiters=LATEX)
            ase_btn = gr.Button("Draw the ASE query map", elem_id="ev-ase-btn")
            with gr.Row():
                ase_pick = gr.Image(label="click a pixel to query it", format="png", interactive=False,
                                    elem_id="ev-ase-pick", scale=1)
                ase_q_fig = gr.Plot(label="ASE query map", scale=3)
            ase_md = gr.Markdown(elem_id="ev-ase")
            gr.Markdown(texts.EV_ABLATION, latex_delimiters=LATEX)
            abl_btn = gr.Button("Run the knock-outs", elem_id="ev-ablation-btn")
            with gr.Row():
                abl_out = gr.Gallery(label="outputs", format="png", columns=4, elem_id="ev-ablation-out")
                abl_diff = gr.Gallery(label="difference to 'as trained' (x10)", format="png", columns=3,
                                      elem_id="ev-ablation-diff")
            abl_md = gr.Markdown(elem_id="ev-ablation")
            gr.Markdown(texts.EV_QUALITY, latex_delimiters=LATEX)
            pq_btn = gr.Button("Measure prompt quality", elem_id="ev-quality-btn")
            pq_fig = gr.Plot(label="prompt quality")
            pq_md = gr.Markdown(elem_id="ev-quality")
            gr.Markdown(texts.EV_SERIES, latex_delimiters=LATEX)
            with gr.Row():
                pqs_files = gr.File(label="Checkpoints of one SR run (several files)", file_count="multiple",
                                    type="filepath", file_types=[".pth", ".pt", ".safetensors"],
                                    elem_id="ev-series-files")
                with gr.Column():
                    pqs_folder = gr.Textbox(label="…or a folder on this machine",
                                            placeholder="experiments/<run>/models",
                                            elem_id="ev-series-folder")
                    pqs_btn = gr.Button("Prompt quality and PSNR across checkpoints", elem_id="ev-series-btn")
            pqs_fig = gr.Plot(label="prompt quality and PSNR across checkpoints", elem_id="ev-series-fig")
            pqs_md = gr.Markdown(elem_id="ev-series")
            gr.Markdown(texts.EV_COST, latex_delimiters=LATEX)
            with gr.Row():
                cost_sizes = gr.Textbox(value=handlers.COST_SIZES, label="input sizes (N or HxW, comma "
                                        "separated)", elem_id="ev-cost-sizes")
                cost_btn = gr.Button("Count MACs and time", elem_id="ev-cost-btn")
            cost_fig = gr.Plot(label="cost vs size")
            cost_md = gr.Markdown(elem_id="ev-cost")

        with gr.Tab("Settings", id="settings"):
            routing = gr.Radio(handlers.ROUTINGS, value="argmax", label="Routing",
                               info="argmax = deterministic (official model with zero Gumbel noise); "
                                    "gumbel = the official code's random routing, seeded.")
            seed = gr.Number(value=0, precision=0, label="Gumbel seed")
            prompt_order = gr.Radio(handlers.PROMPT_ORDERS, value="official", label="Prompt order",
                                    info="official = prompt added in raster order to the sorted sequence "
                                         "(what the weights were trained with); aligned = prompt moves "
                                         "with its pixel.")
            tile = gr.Slider(64, MAX_SIDE, value=handlers.DEFAULT_TILE, step=32,
                             label="Tile size (LR pixels)",
                             info="Inputs larger than this are restored in overlapping tiles.")
            runtime = gr.Radio(handlers.RUNTIMES, value=handlers.default_runtime(), label="Restore runtime",
                               elem_id="runtime",
                               info="onnxruntime: the Restore tab runs each network as an ONNX file, "
                                    "exported on first use (minutes), checked against PyTorch to 1e-4 and "
                                    "cached in weights/onnx/; argmax routing only. Internals, capture and "
                                    "LAM always run on PyTorch.")

            gr.Markdown("### How much do these settings change MambaIRv2's output?\n"
                        "Runs MambaIRv2 on the current input (Restore tab) several times.")
            with gr.Row():
                effect = gr.Radio(handlers.EFFECTS, value=handlers.EFFECTS[0], label="Compare")
                effect_runs = gr.Slider(2, 8, value=3, step=1, label="Gumbel runs")
                effect_btn = gr.Button("Compare", elem_id="effect-btn")
            with gr.Row():
                effect_img = gr.Image(label="difference / spread", format="png", interactive=False,
                                      elem_id="effect-img")
                effect_info = gr.Markdown(elem_id="effect-info")

        with gr.Tab("Weights", id="weights"):
            tab_status = gr.Markdown(handlers.weights_status(), elem_id="weights-status")
            gr.Markdown(texts.WEIGHTS_HELP)
            with gr.Row():
                fetch_btns = {p: gr.Button(f"Fetch {handlers.official_name(p)}", size="sm",
                                           elem_id=f"fetch-{p}") for p in APP_PRESETS}
            fetch_msg = gr.Markdown(elem_id="fetch-msg")
            with gr.Row():
                ckpt_file = gr.File(label="Your checkpoint (.pth, .pt, .safetensors)", type="filepath",
                                    file_types=[".pth", ".pt", ".safetensors"], elem_id="ckpt-upload")
                with gr.Column():
                    added_label = gr.Textbox(label="Offered as task", interactive=False,
                                             elem_id="added-label")
                    added_msg = gr.Markdown(elem_id="added-msg")
            weights_md = gr.Markdown(handlers.weights_table(), elem_id="weights-table")

            gr.Markdown(texts.ONNX_HELP)
            with gr.Row():
                onnx_family = gr.Radio(list(cache.FAMILIES), value=cache.FAMILIES[0], elem_id="onnx-family",
                                       label="Network (for the task chosen in the Restore tab)")
                onnx_btn = gr.Button("Download as ONNX", elem_id="onnx-btn")
            onnx_file = gr.File(label="ONNX file", interactive=False, elem_id="onnx-file")
            onnx_md = gr.Markdown(elem_id="onnx-info")

            gr.Markdown(texts.TIMELINE_HELP)
            with gr.Row():
                tl_files = gr.File(label="Checkpoints of one run (several files)", file_count="multiple",
                                   type="filepath", file_types=[".pth", ".pt", ".safetensors"],
                                   elem_id="timeline-files")
                with gr.Column():
                    tl_folder = gr.Textbox(label="…or a folder on this machine",
                                           placeholder="experiments/<run>/models", elem_id="timeline-folder")
                    tl_layer = gr.Textbox(value="0.0", label="Layer for the label maps (stage.block)",
                                          elem_id="timeline-layer")
                    tl_btn = gr.Button("Show routing across checkpoints", elem_id="timeline-btn")
            tl_info = gr.Markdown(elem_id="timeline-info")
            tl_curves = gr.Plot(label="routing per layer across checkpoints", elem_id="timeline-curves")
            tl_maps = gr.Plot(label="SGN label maps per checkpoint", elem_id="timeline-maps")

        settings = [routing, seed, prompt_order]
        heavy: dict[str, Any] = dict(concurrency_id=HEAVY, concurrency_limit=HEAVY_LIMIT)

        onnx_btn.click(handlers.onnx_download, inputs=[task, onnx_family], outputs=[onnx_file, onnx_md],
                       api_name="onnx_download", **heavy)
        run_btn.click(handlers.restore, inputs=[inp, task, mode, *settings, tile, region, large, runtime],
                      outputs=[out_v2, out_v1, slider, details, scores, result_state],
                      api_name="restore", **heavy)
        # The preview: what the networks will see and the estimated time (app.timing: the first preview
        # of a task measures its models; later ones are arithmetic).
        preview_inputs = [inp, task, mode, region, large, tile]
        inp.change(urlstate.photo_changed(handlers.new_photo),
                   inputs=[inp, task, mode, large, pending_region, tile],
                   outputs=[region, region_info, region_img, pending_region], api_visibility="private",
                   queue=False)
        for comp in (region, large, mode, task, tile):
            comp.change(handlers.region_preview, inputs=preview_inputs, outputs=[region_info, region_img],
                        api_visibility="private", queue=False)
        int_inputs = [inp, task, mode, layer, q_row, q_col, *settings, region, large]
        int_outputs = [int_summary, sgn_overlay, sgn_fig, seq_ribbon, seq_fig, scan_fig, hist_fig, usage_fig,
                       proj_fig, sim_fig, ase_fig, attn_v2, attn_v1, lesson_view]
        # The step-through and the captions come from the state `internals` leaves (no network runs).
        extras: dict[str, Any] = dict(fn=handlers.lesson_extras, inputs=[lesson_view],
                                      outputs=[step_html, *(caps[k] for k in handlers.LESSON_STEPS)],
                                      api_visibility="private", queue=False)
        int_btn.click(handlers.internals, inputs=int_inputs, outputs=int_outputs, api_name="internals",
                      **heavy).then(**extras)
        # Follow a pixel: the select handler only reads the click; the pictures are the plain
        # `internals` function, chained after it (and callable by its api_name).
        sgn_overlay.select(handlers.select_pixel, inputs=[lesson_view], outputs=[q_row, q_col],
                           api_visibility="private", queue=False
                           ).then(handlers.internals, inputs=int_inputs, outputs=int_outputs,
                                  api_visibility="private", **heavy).then(**extras)
        effect_btn.click(handlers.settings_effect,
                         inputs=[inp, task, mode, effect, effect_runs, tile, region, large],
                         outputs=[effect_img, effect_info], api_name="settings_effect", **heavy)
        lam_inputs = [inp, task, mode, lam_x, lam_y, lam_method, lam_steps, *settings, region, large]
        lam_outputs = [lam_v2, lam_v1, lam_info]
        lam_btn.click(handlers.lam, inputs=lam_inputs, outputs=lam_outputs, api_name="lam", **heavy)
        for out in (out_v2, out_v1):
            # The select handler only records the click and draws the box; LAM itself is the
            # plain `lam` function, chained after it (and callable by its api_name).
            out.select(handlers.explain_errors(handlers.select_window), inputs=[result_state],
                       outputs=[lam_x, lam_y, out_v2, out_v1], api_visibility="private", queue=False
                       ).then(handlers.lam, inputs=lam_inputs, outputs=lam_outputs,
                              api_visibility="private", **heavy)
        for preset, btn in fetch_btns.items():
            btn.click(handlers.fetcher(preset), outputs=[fetch_msg, task, weights_md, tab_status],
                      api_visibility="private").then(handlers.weights_status, outputs=[top_status],
                                                     api_visibility="private", queue=False)
        ckpt_file.upload(handlers.add_checkpoint, inputs=[ckpt_file],
                         outputs=[added_label, task, weights_md, added_msg], api_name="add_checkpoint",
                         **heavy)
        ev_in = [inp, task, mode]
        red_btn.click(handlers.scan_redundancy, inputs=ev_in, outputs=[red_fig, red_md],
                      api_name="scan_redundancy", **heavy)
        decay_btn.click(handlers.decay, inputs=[*ev_in, ev_layer], outputs=[decay_v2, decay_v1, decay_md],
                        api_name="decay", **heavy)
        ase_inputs = [*ev_in, ev_layer, ev_row, ev_col]
        ase_outputs = [ase_q_fig, ase_md, ase_pick]
        ase_btn.click(handlers.ase_query, inputs=ase_inputs, outputs=ase_outputs, api_name="ase_query",
                      **heavy)
        # A click on the enlarged crop picks the query pixel; the map itself is the plain `ase_query`.
        ase_pick.select(handlers.explain_errors(handlers.select_query), outputs=[ev_row, ev_col],
                        api_visibility="private", queue=False
                        ).then(handlers.ase_query, inputs=ase_inputs, outputs=ase_outputs,
                               api_visibility="private", **heavy)
        abl_btn.click(handlers.ablation, inputs=[*ev_in, tile], outputs=[abl_out, abl_diff, abl_md],
                      api_name="ablation", **heavy)
        pq_btn.click(handlers.prompt_quality, inputs=ev_in, outputs=[pq_fig, pq_md],
                     api_name="prompt_quality", **heavy)
        pqs_btn.click(handlers.prompt_quality_series, inputs=[pqs_files, pqs_folder, inp],
                      outputs=[pqs_fig, pqs_md], api_name="prompt_quality_series", **heavy)
        cost_btn.click(handlers.cost, inputs=[task, cost_sizes], outputs=[cost_fig, cost_md], api_name="cost",
                       **heavy)
        tl_btn.click(handlers.timeline, inputs=[tl_files, tl_folder, inp, tl_layer],
                     outputs=[tl_curves, tl_maps, tl_info], api_name="timeline", **heavy)
        demo.load(handlers.weights_status, outputs=[top_status], api_visibility="private", queue=False)
        task.change(handlers.layer_dropdown, inputs=[task], outputs=[ev_layer], api_visibility="private",
                    queue=False)
        task.change(urlstate.task_changed(handlers.lesson_layer_dropdown), inputs=[task, pending_layer],
                    outputs=[layer, pending_layer], api_visibility="private", queue=False)

        # The link: read at page load, then the address follows the page (app.urlstate); a link that
        # names an example photo opens its tab's view computed (Restore, or the Internals lesson).
        loaded = demo.load(urlstate.reader(examples, handlers.lesson_layer_choices),
                           outputs=[task, mode, large, region, layer, q_row, q_col, url_state,
                                    pending_region, pending_layer], api_visibility="private", queue=False)
        loaded.then(None, js=urlstate.url_js())
        restore_outputs = [out_v2, out_v1, slider, details, scores, result_state]
        loaded.then(urlstate.opener("restore", urlstate.open_restore(handlers.restore), len(restore_outputs)),
                    inputs=[url_state, task, mode, *settings, tile, large], outputs=restore_outputs,
                    api_visibility="private", **heavy)
        loaded.then(urlstate.opener("internals", urlstate.open_internals(handlers.internals),
                                    len(int_outputs)),
                    inputs=[url_state, task, mode, *settings, large], outputs=int_outputs,
                    api_visibility="private", **heavy).then(**extras)
        # The tour (app.tour, in the browser; it picks the example photo when the input is empty).
        demo.load(None, js=tour.tour_js())
        tour_btn.click(None, js=tour.START_JS)
    demo.queue(max_size=QUEUE_SIZE)
    return demo
