"""Public API of the model package: configs, detection, checkpoint loading, networks, capture, scan.

    from model import load_checkpoint, PRESETS, build, capture, CheckpointError
    net = load_checkpoint("weights/mambairv2_lightSR_x4.pth")      # arch detected from the keys
    with capture(net) as rec:
        y = net(x)

Importing the package defines classes only; nothing is built or loaded at import time.
"""

from __future__ import annotations

import os

# The OpenMP workers of torch and numba spin while idle by default; on a small CPU that made
# every later torch op 3-10x slower here (light x4 128x128 forward 33 s -> 10 s; a training step
# 54-83 s -> 14-24 s). The runtime reads this once, when torch loads, so it is set before any
# torch import of the package; `python -m model.X` imports this file first. A user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
