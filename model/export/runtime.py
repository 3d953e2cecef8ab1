"""onnxruntime as a restore backend: a cached, verified ONNX file per checkpoint, run like a network.

The file is exported with dynamic H, W on first use and kept under ``cache_dir()`` (git-ignored
``weights/onnx/``, or ``MAMBAIR_ONNX_DIR``), named by the checkpoint's sha256 (the state_dict's
for models without a file) and the export options, so one file serves every image and tile
size. ``OnnxNet`` wraps a session as an ``nn.Module`` so ``model.tiling.tiled_forward`` tiles
it exactly as it tiles the PyTorch network. Only the restored image comes from onnxruntime:
internals, capture and LAM need PyTorch.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..archs import get_options
from .onnx_export import check_exportable, export_onnx, file_sha256, min_size, run_session, session

TRACE_SIDE = 64  # the size traced for the cached dynamic files; verified there and at a second size
_lock = threading.Lock()


def cache_dir() -> Path:
    """Folder of the cached ONNX files (``MAMBAIR_ONNX_DIR``, else weights/onnx/ of the repository)."""
    env = os.environ.get("MAMBAIR_ONNX_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights" / "onnx"


def state_sha256(net: nn.Module) -> str:
    """sha256 over the state_dict (names, shapes, bytes): the key of a model without a file."""
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_name(net: nn.Module, checkpoint: str | os.PathLike | None = None) -> str:
    """File name for ``net``: architecture, first 16 hex of the sha256, options that change the graph."""
    sha = file_sha256(checkpoint) if checkpoint else state_sha256(net)
    order = get_options(net).get("prompt_order")
    tag = f"_{order}" if order else ""
    return f"{type(net).__name__}_{sha[:16]}{tag}_dynamic.onnx"


def cached_onnx(net: nn.Module, checkpoint: str | os.PathLike | None = None,
                log: Callable[[str], None] | None = None) -> Path:
    """Path of the verified dynamic ONNX file of ``net``, exported now if not cached yet."""
    check_exportable(net)
    path = cache_dir() / cache_name(net, checkpoint)
    with _lock:  # two requests for one model export it once
        if not path.exists():
            side = max(TRACE_SIDE, min_size(net))
            meta = {"source_sha256": file_sha256(checkpoint) if checkpoint else state_sha256(net)}
            export_onnx(net, path, (side, side), dynamic=True, metadata=meta, log=log)
    return path


class OnnxNet(nn.Module):
    """An ONNX file in onnxruntime, called like the network it was exported from."""

    def __init__(self, path: str | os.PathLike, config: object = None, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.config = config
        self.session = session(path, threads)

    def forward(self, x: Tensor) -> Tensor:
        """(1, C, H, W) -> (1, C, H s, W s) computed by onnxruntime (float32, CPU)."""
        return run_session(self.session, x).to(x.device)


def onnx_net(net: nn.Module, checkpoint: str | os.PathLike | None = None,
             log: Callable[[str], None] | None = None) -> OnnxNet:
    """``OnnxNet`` for ``net`` (exported and verified on first use, then read from the cache)."""
    return OnnxNet(cached_onnx(net, checkpoint, log), getattr(net, "config", None))


def max_difference(a: nn.Module, b: nn.Module, x: Tensor) -> float:
    """max |a(x) - b(x)|, e.g. onnxruntime against PyTorch."""
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())
