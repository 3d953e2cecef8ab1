"""Public API of the model package: configs, detection, checkpoint loading, networks, capture, scan.

    from model import load_checkpoint, PRESETS, build, capture, CheckpointError
    net = load_checkpoint("weights/mambairv2_lightSR_x4.pth")      # arch detected from the keys
    with capture(net) as rec:
        y = net(x)

Importing the package defines classes only; nothing is built or loaded at import time.
"""

from __future__ import annotations

# OpenMP reads its wait policy once, when torch (or numba) loads, so it is set here, before any torch
# import of the package (`python -m model.X` imports this file first): a short spin, see model/threads.py.
# glibc's malloc is told to keep freed blocks (large tensors then reuse memory instead of page-faulting
# anew), and torch's allocator to use huge pages, also before torch allocates anything: see model/malloc.py.
from model.malloc import keep_freed_memory, use_huge_pages
from model.threads import set_runtime_defaults

set_runtime_defaults()
keep_freed_memory()
use_huge_pages()

from model.archs import build, set_options  # noqa: E402

# ``capture`` is bound after its submodule is imported, so the package attribute ``model.capture``
# is the function the API promises (note: ``import model.capture as m`` therefore gives the function;
# use ``from model.capture import ...`` for the module's other names).
from model.capture import capture  # noqa: E402
from model.config import (  # noqa: E402
    CONFIG_CLASSES,
    PRESETS,
    Config,
    MambaIRConfig,
    MambaIRv2Config,
    MambaIRv2LightConfig,
    config_from_dict,
)
from model.detect import CheckpointError, detect_arch, detect_config, expected_shapes  # noqa: E402
from model.loading import describe_config, inspect_checkpoint, load_checkpoint, read_state_dict  # noqa: E402
from model.scan import last_backend, set_backend  # noqa: E402

__all__ = [
    "CONFIG_CLASSES", "PRESETS", "CheckpointError", "Config", "MambaIRConfig", "MambaIRv2Config",
    "MambaIRv2LightConfig", "build", "capture", "config_from_dict", "describe_config", "detect_arch",
    "detect_config", "expected_shapes", "inspect_checkpoint", "last_backend", "load_checkpoint",
    "read_state_dict", "set_backend", "set_options",
]
