"""Networks: MambaIRv2, MambaIRv2Light, MambaIR (official parameter names), ``build`` and options."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from .mambair import SS2D, MambaIR
from .mambairv2 import ASSM, PROMPT_ORDERS, ROUTINGS, SWITCHES, MambaIRv2, MambaIRv2Light

ARCHS: dict[str, type[nn.Module]] = {
    "MambaIRv2": MambaIRv2, "MambaIRv2Light": MambaIRv2Light, "MambaIR": MambaIR}

_KEEP: Any = object()


def build(config: Any) -> nn.Module:
    """Build the network for a config dataclass (``config.arch`` picks the class), in eval mode, its
    convolution weights channels-last (see ``channels_last_convs``)."""
    arch = getattr(config, "arch", None)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {list(ARCHS)}")
    net = ARCHS[arch](**config.kwargs())
    net.config = config
    return channels_last_convs(net).eval()


def channels_last_convs(net: nn.Module) -> nn.Module:
    """Store ``net``'s 4-D weights channels-last (same shapes and values; ``load_state_dict`` and
    ``.to`` keep the layout): on CPU, oneDNN then runs every convolution in NHWC. With NCHW weights
    it converted the networks' channels-last inputs to NCHW and back (the tokens' maps are
    channels-last views) and ran the slower NCHW kernels: one (1, 48, 256, 256) map through a 1x1
    conv 5.81 -> 0.90 ms, a depth-wise 3x3 5.64 -> 0.53 ms, MambaIRv2-light's 5x5 gate 3.58 -> 0.45
    ms (one-off script, 2-core Xeon). Outputs move by rounding only (the sums' order), ~1e-6."""
    return net.to(memory_format=torch.channels_last)


def set_options(model: nn.Module, routing: str | None = None, generator: Any = _KEEP,
                prompt_order: str | None = None, sgn: str | None = None,
                prompt: str | None = None) -> nn.Module:
    """Set ASSM options on every ASSM of ``model``; arguments left out keep their current value.

    routing: "argmax" (default, deterministic) or "gumbel" (official noisy routing);
    generator: torch.Generator for the Gumbel noise (None = global RNG);
    prompt_order: "official" (prompt in raster order added to sorted C) or "aligned";
    sgn: "on" (default, label-sorted scan) or "off" (raster-order scan, same prompts);
    prompt: "on" (default, prompt added to C) or "off" (C alone). Both "off" are knock-outs
    for inference experiments; the trained weights expect "on".
    """
    if routing is not None and routing not in ROUTINGS:
        raise ValueError(f"unknown routing {routing!r}; expected one of {ROUTINGS}")
    if prompt_order is not None and prompt_order not in PROMPT_ORDERS:
        raise ValueError(f"unknown prompt_order {prompt_order!r}; expected one of {PROMPT_ORDERS}")
    for name, v in (("sgn", sgn), ("prompt", prompt)):
        if v is not None and v not in SWITCHES:
            raise ValueError(f"unknown {name} {v!r}; expected one of {SWITCHES}")
    if generator is not _KEEP and generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator or None")
    for m in model.modules():
        if isinstance(m, ASSM):
            if routing is not None:
                m.routing = routing
            if generator is not _KEEP:
                m.generator = generator
            if prompt_order is not None:
                m.prompt_order = prompt_order
            if sgn is not None:
                m.sgn = sgn
            if prompt is not None:
                m.prompt = prompt
    return model


def get_options(model: nn.Module) -> dict[str, Any]:
    """The ASSM options of the first ASSM (empty dict for MambaIR, which has none)."""
    for m in model.modules():
        if isinstance(m, ASSM):
            return {"routing": m.routing, "generator": m.generator, "prompt_order": m.prompt_order,
                    "sgn": m.sgn, "prompt": m.prompt}
    return {}


__all__ = ["build", "set_options", "get_options", "ARCHS", "MambaIRv2", "MambaIRv2Light", "MambaIR",
           "ASSM", "SS2D"]
