"""Event handlers of the app, one module per tab: thin adapters from UI values to ``model`` and ``viz``.

Every handler is a plain function (testable without a browser, callable through ``gradio_client``
by its ``api_name``); ``common`` holds what the tabs share (input preparation, running a network,
error wrapping). The names the layout wires up are re-exported here.
"""

from .common import (
    DEFAULT_TILE,
    INTERNALS_MAX,
    MODE_AS_IS,
    MODE_GT,
    MODES,
    PROMPT_ORDERS,
    ROUTINGS,
    RUNTIMES,
    Prepared,
    apply_options,
    default_runtime,
    explain_errors,
    prepare,
    run_network,
    to_image,
    to_tensor,
    warm_up,
)
from .evidence import (
    COST_SIZES,
    ablation,
    ase_query,
    cost,
    decay,
    prompt_quality,
    prompt_quality_series,
    scan_redundancy,
    select_query,
)
from .internals import (
    LESSON_STEPS,
    internals,
    layer_choices,
    layer_dropdown,
    lesson_extras,
    lesson_layer_choices,
    lesson_layer_dropdown,
    select_pixel,
)
from .lam import (
    LAM_CONTEXT,
    LAM_DEFAULT_STEPS,
    LAM_METHODS,
    LAM_WINDOW,
    draw_box,
    lam,
    lam_window,
    select_window,
)
from .restore import new_photo, region_preview, restore
from .settings import EFFECTS, settings_effect
from .weights import (
    add_checkpoint,
    fetch_official,
    fetcher,
    format_metric,
    official_name,
    onnx_download,
    timeline,
    weights_status,
    weights_table,
)

__all__ = [
    "DEFAULT_TILE", "EFFECTS", "INTERNALS_MAX", "LAM_CONTEXT", "LAM_DEFAULT_STEPS", "LAM_METHODS",
    "LAM_WINDOW", "MODES", "MODE_AS_IS", "MODE_GT", "PROMPT_ORDERS", "ROUTINGS", "RUNTIMES", "Prepared",
    "apply_options", "default_runtime", "draw_box", "explain_errors", "format_metric", "internals", "lam",
    "lam_window", "layer_choices", "layer_dropdown", "lesson_extras", "LESSON_STEPS", "lesson_layer_choices",
    "lesson_layer_dropdown", "new_photo", "prepare", "region_preview", "restore", "run_network",
    "select_pixel", "select_window", "settings_effect", "to_image", "to_tensor", "weights_table",
    "add_checkpoint", "fetch_official", "fetcher", "weights_status", "official_name", "onnx_download",
    "timeline",
    "COST_SIZES", "ablation", "ase_query", "cost", "decay", "prompt_quality", "prompt_quality_series",
    "scan_redundancy",
    "select_query", "warm_up",
]
