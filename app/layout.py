"""The Gradio Blocks: components and event wiring only (the work is in ``handlers``)."""

from __future__ import annotations

import os
import tempfile
import types
from typing import Any

import gradio as gr

from model.download import APP_PRESETS

from . import cache, handlers, texts
from .io import MAX_SIDE

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
HEAVY = "model"          # concurrency_id shared by every event that runs a network
HEAVY_LIMIT = 1          # one network job at a time: the CPU has few cores
QUEUE_SIZE = 16
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


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


def build_demo() -> gr.Blocks:
    """Build the Blocks (no model is loaded here: models load on the first request)."""
    task_names = cache.task_names()
    default_task = task_names[0] if task_names else None

    with gr.Blocks(title="MambaIRv2 Explorer") as demo:
        gr.Markdown(texts.INTRO)
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
                    # Custom values are allowed because checkpoints added while the app runs (Weights tab,
                    # add_checkpoint) bring new labels; the handlers check every label against the cache.
                    task = gr.Dropdown(task_names, value=default_task, label="Task", allow_custom_value=True,
                                       info="Only tasks with weights are listed.", elem_id="task")
                    mode = gr.Radio(handlers.MODES, value=handlers.MODE_AS_IS, label="Mode", elem_id="mode")
                    run_btn = gr.Button("Restore", variant="primary", elem_id="restore-btn")
                    gr.Markdown(texts.fill(texts.RESTORE_HELP, max_side=MAX_SIDE))
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
                gr.Markdown(texts.fill(texts.LAM_HELP, context=handlers.LAM_CONTEXT), latex_delimiters=LATEX)
                with gr.Row():
                    lam_method = gr.Radio(handlers.LAM_METHODS, value="LAM", label="Method")
                    lam_steps = gr.Slider(1, 100, value=handlers.LAM_DEFAULT_STEPS, step=1,
                                          label="Steps (LAM_Demo: 50; each is a forward + backward pass)",
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

        with gr.Tab("Internals", id="internals"):
            gr.Markdown(texts.fill(texts.INTERNALS_HELP, size=handlers.INTERNALS_MAX))
            with gr.Row():
                layer = gr.Dropdown(handlers.layer_choices(default_task) if default_task else ["0.0"],
                                    value="0.0", label="Layer (stage.block)", elem_id="layer")
                q_row = gr.Number(value=-1, precision=0, label="query row (-1 = centre)")
                q_col = gr.Number(value=-1, precision=0, label="query column (-1 = centre)")
                int_btn = gr.Button("Show internals", variant="primary", elem_id="internals-btn")
            int_summary = gr.Markdown(elem_id="internals-summary")
            gr.Markdown(texts.SGN, latex_delimiters=LATEX)
            with gr.Row():
                sgn_overlay = gr.Image(label="labels over the input", format="png", interactive=False)
                sgn_fig = gr.Plot(label="label map")
            gr.Markdown(texts.SEQUENCE, latex_delimiters=LATEX)
            with gr.Row():
                seq_ribbon = gr.Image(label="MambaIRv2: pixels in scan order", format="png",
                                      interactive=False)
                seq_fig = gr.Plot(label="MambaIRv2: where each sequence entry comes from")
            scan_fig = gr.Plot(label="MambaIR: the four raster scans")
            gr.Markdown(texts.ROUTING, latex_delimiters=LATEX)
            with gr.Row():
                hist_fig = gr.Plot(label="pixels per prompt")
                usage_fig = gr.Plot(label="prompt usage per layer")
            gr.Markdown(texts.PROMPTS, latex_delimiters=LATEX)
            with gr.Row():
                proj_fig = gr.Plot(label="prompt projection")
                sim_fig = gr.Plot(label="prompt similarity")
            gr.Markdown(texts.ASE, latex_delimiters=LATEX)
            ase_fig = gr.Plot(label="ASE")
            gr.Markdown(texts.ATTENTION, latex_delimiters=LATEX)
            with gr.Row():
                attn_v2 = gr.Plot(label="MambaIRv2 implicit attention")
                attn_v1 = gr.Plot(label="MambaIR implicit attention")

        with gr.Tab("Evidence", id="evidence"):
            gr.Markdown(texts.fill(texts.EVIDENCE_HELP, size=handlers.INTERNALS_MAX))
            with gr.Row():
                ev_layer = gr.Dropdown(handlers.layer_choices(default_task) if default_task else ["0.0"],
                                       value="0.0", label="Layer (stage.block)", elem_id="ev-layer")
                ev_row = gr.Number(value=-1, precision=0, label="query row (-1 = centre)", elem_id="ev-row")
                ev_col = gr.Number(value=-1, precision=0, label="query column (-1 = centre)",
                                   elem_id="ev-col")
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

        run_btn.click(handlers.restore, inputs=[inp, task, mode, *settings, tile],
                      outputs=[out_v2, out_v1, slider, details, scores, result_state],
                      api_name="restore", **heavy)
        int_btn.click(handlers.internals, inputs=[inp, task, mode, layer, q_row, q_col, *settings],
                      outputs=[int_summary, sgn_overlay, sgn_fig, seq_ribbon, seq_fig, scan_fig, hist_fig,
                               usage_fig, proj_fig, sim_fig, ase_fig, attn_v2, attn_v1],
                      api_name="internals", **heavy)
        effect_btn.click(handlers.settings_effect, inputs=[inp, task, mode, effect, effect_runs, tile],
                         outputs=[effect_img, effect_info], api_name="settings_effect", **heavy)
        lam_inputs = [inp, task, mode, lam_x, lam_y, lam_method, lam_steps, *settings]
        lam_outputs = [lam_v2, lam_v1, lam_info]
        lam_btn.click(handlers.lam, inputs=lam_inputs, outputs=lam_outputs, api_name="lam", **heavy)
        for out in (out_v2, out_v1):
            # The select handler only records the click and draws the box; LAM itself is the
            # plain `lam` function, chained after it (and callable by its api_name).
            out.select(handlers.select_window, inputs=[result_state],
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
        ase_pick.select(handlers.select_query, outputs=[ev_row, ev_col], api_visibility="private",
                        queue=False).then(handlers.ase_query, inputs=ase_inputs, outputs=ase_outputs,
                               api_visibility="private", **heavy)
        abl_btn.click(handlers.ablation, inputs=[*ev_in, tile], outputs=[abl_out, abl_diff, abl_md],
                      api_name="ablation", **heavy)
        pq_btn.click(handlers.prompt_quality, inputs=ev_in, outputs=[pq_fig, pq_md],
                     api_name="prompt_quality", **heavy)
        cost_btn.click(handlers.cost, inputs=[task, cost_sizes], outputs=[cost_fig, cost_md], api_name="cost",
                       **heavy)
        tl_btn.click(handlers.timeline, inputs=[tl_files, tl_folder, inp, tl_layer],
                     outputs=[tl_curves, tl_maps, tl_info], api_name="timeline", **heavy)
        demo.load(handlers.weights_status, outputs=[top_status], api_visibility="private", queue=False)
        for dropdown in (layer, ev_layer):
            task.change(lambda t: gr.Dropdown(choices=handlers.layer_choices(t), value="0.0"),
                        inputs=[task], outputs=[dropdown], api_visibility="private", queue=False)
    demo.queue(max_size=QUEUE_SIZE)
    return demo
