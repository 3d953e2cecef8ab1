"""Tiny random MambaIRv2-light and MambaIR networks shared by the capture, evidence and profile tests.

Two stages each, so that per-layer code sees more than one layer; window 8, so that a 12x20 input
exercises the flip padding. ``randomize`` moves every weight away from its initialisation (prompts
and routers too), so that every branch of the maths matters in a comparison.
"""

from __future__ import annotations

import torch

from model.config import MambaIRConfig, MambaIRv2LightConfig

V2_CFG = MambaIRv2LightConfig(upscale=2, img_size=16, embed_dim=12, d_state=4, depths=(2, 1),
                              num_heads=(2, 2), window_size=8, inner_rank=4, num_tokens=6, mlp_ratio=1.0)
V1_CFG = MambaIRConfig(upscale=2, img_size=16, embed_dim=30, d_state=4, depths=(2, 1), mlp_ratio=1.2,
                       upsampler="pixelshuffledirect")


def randomize(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (layer scales, prompts, routing too) so every branch matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("A_logs"):
                p.copy_(torch.rand(p.shape, generator=g) * 1.5)
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return net
