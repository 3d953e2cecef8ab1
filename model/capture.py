"""Record the internals of MambaIRv2 (ASSM) and MambaIR (SS2D) layers during a forward pass.

    with capture(net) as rec:
        y = net(x)
    rec.assm[i]   # one dict per ASSM layer, forward order
    rec.ss2d[i]   # one dict per SS2D layer, forward order

Nothing is recorded, and nothing costs time, outside ``capture``: each ASSM/SS2D module holds a
``_capture`` slot that is None except inside the context. The recorder is attached to the
modules of ``net`` only, so other networks (and other threads using other networks) are
unaffected. All tensors are detached CPU copies (float32 / int64).

Dimension letters: B batch, L = H*W tokens of the (padded) grid, T num_tokens, N d_state,
D channels of the scan.

ASSM record: "stage", "block", "grid" (H, W), "sgn" and "prompt_switch" (knock-out options),
"route_logp" (B,L,T), "labels" (B,L),
"perm" (B,L) (sorted position i holds raster pixel perm[i]; stable sort of labels), "inv_perm"
(B,L), "prompt" (B,L,N) raster order, "C" (B,L,N) scan's C before the prompt, in scan order,
"prompt_pool" (T,N), "prompt_order", "routing", "scan" (the exact selective-scan arguments:
u, delta (B,D,L) before bias/softplus, A (D,N), B, C (B,1,N,L) with the prompt, D, delta_bias
(D,), delta_softplus True) and "scan_out" (B,D,L) the scan's output.

SS2D record: "stage", "block", "grid", "orders" (4,L) raster index visited at each scan
position for the four scans, "scan" with grouped B/C (B,4,N,L), u/delta (B,4D,L), and
"scan_out" (B,4D,L).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from .archs.common import CaptureMixin
from .archs.mambair import SS2D, ss2d_orders
from .archs.mambairv2 import ASSM

# layers.{stage}.residual_group.layers.{block}.assm  /  layers.{stage}.residual_group.blocks.{block}...
_NAME = re.compile(r"layers\.(\d+)\.residual_group\.(?:layers|blocks)\.(\d+)\.")


@dataclass
class Recording:
    """Records of one or more forward passes (appended in forward order)."""

    assm: list[dict[str, Any]] = field(default_factory=list)
    ss2d: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, data: dict[str, Any]) -> None:
        """Append one layer's record (called by the layers)."""
        getattr(self, kind).append(data)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.assm.clear()
        self.ss2d.clear()


def layer_position(name: str) -> tuple[int, int]:
    """(stage, block) from a module name such as ``layers.2.residual_group.layers.3.assm``."""
    m = _NAME.search(name + ".")
    if m is None:
        return -1, -1
    return int(m.group(1)), int(m.group(2))


@contextmanager
def capture(model: nn.Module,
            select: Callable[[int, int], bool] | None = None) -> Iterator[Recording]:
    """Record every ASSM/SS2D layer of ``model`` during forward passes inside the block.

    ``select(stage, block) -> bool`` limits recording to some layers (all by default), to save
    memory on large images.
    """
    rec = Recording()
    hooked: list[CaptureMixin] = []
    try:
        for name, m in model.named_modules():
            if isinstance(m, (ASSM, SS2D)):
                stage, block = layer_position(name)
                if select is None or select(stage, block):
                    if m._capture is not None:
                        raise RuntimeError("capture() is already active on this model")
                    m._capture = (rec, stage, block)
                    hooked.append(m)
        yield rec
    finally:
        for m in hooked:
            m._capture = None


def is_capturing(model: nn.Module) -> bool:
    """True while ``capture`` is active on any layer of ``model``."""
    return any(getattr(m, "_capture", None) is not None for m in model.modules())


__all__ = ["capture", "Recording", "ss2d_orders", "layer_position", "is_capturing"]
