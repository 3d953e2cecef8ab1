"""ONNX export of MambaIRv2 / MambaIRv2-light / MambaIR, verified with onnxruntime on the spot.

How the parts the ONNX exporter cannot take as they are get an exact ONNX form, without
touching the networks:
- the selective scan runs through ``model.scan.chunked`` during the export (the same op as
  ``ref``, computed with two ``torch._higher_order_ops.scan`` loops that become ONNX ``Scan``
  nodes: k + l/k iterations, never one node per sequence step);
- SGN's stable label sort (``torch.sort(stable=True)``, which the exporter has no rule for)
  becomes ``TopK`` of the unique keys label * l + position, so ties keep raster order by
  construction (``_sort_stable``);
- the reflect padding to a multiple of the window is done once, unconditionally, in
  ``_Exportable`` (the network's own loop only pads when needed, a branch on the size that
  a size-agnostic file cannot hold).
Options without a faithful ONNX form are refused by ``check_exportable`` with the part named.

Letters: b batch (1), C image channels, H x W input size, s scale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from onnxscript import opset18 as op
from torch import Tensor, nn

from .. import scan
from ..archs import ARCHS, get_options
from ..archs.common import CaptureMixin
from ..scan.chunked import selective_scan_chunked

TOLERANCE = 1e-4  # largest |onnxruntime - PyTorch| accepted, in image units ([0, 1])
INPUT_NAME = "image"
OUTPUT_NAME = "restored"
REAL_IMAGE = Path(__file__).resolve().parents[2] / "assets" / "coffee.png"
SCAN_BACKEND = "chunked"


class ExportError(ValueError):
    """A model or option that has no faithful ONNX form, or a file that failed verification."""


@dataclass
class ExportReport:
    """What ``export_onnx`` did: file, sizes it accepts, time, and the verification it ran."""

    path: Path
    size: tuple[int, int]
    dynamic: bool
    seconds: float
    bytes: int
    checks: list[tuple[str, tuple[int, int], float]] = field(default_factory=list)  # (image, (h, w), diff)

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        sizes = "any H x W (dynamic)" if self.dynamic else f"{self.size[0]} x {self.size[1]} only"
        out = [f"wrote {self.path} ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s; accepts {sizes}"]
        for name, (h, w), diff in self.checks:
            out.append(f"onnxruntime vs PyTorch, {name} {h}x{w}: max abs diff {diff:.2e} "
                       f"(limit {TOLERANCE:g})")
        return out


# ---------------------------------------------------------------------------
# What can be exported
# ---------------------------------------------------------------------------

def min_size(net: nn.Module) -> int:
    """Smallest input side a dynamic file accepts (one reflect pad must reach the window multiple)."""
    win = getattr(net, "window_size", None)
    return max(2, (win + 1) // 2) if win else 2


def check_exportable(net: nn.Module) -> None:
    """Raise ``ExportError`` naming the part when ``net`` has no faithful ONNX form."""
    name = type(net).__name__
    if name not in ARCHS or not isinstance(net, ARCHS[name]):
        raise ExportError(f"{name} is not one of the networks this exporter knows ({', '.join(ARCHS)})")
    opts = get_options(net)
    if opts.get("routing", "argmax") != "argmax":
        raise ExportError(
            f"ASSM routing={opts['routing']!r} draws fresh Gumbel noise on every run, which has no "
            "faithful ONNX form (a file would give other pictures than PyTorch); export with "
            "routing='argmax' (model.archs.set_options), the deterministic default")
    for m in net.modules():
        if isinstance(m, CaptureMixin) and m._capture is not None:
            raise ExportError(f"{type(m).__name__} is recording internals (model.capture is active); "
                              "export outside the `with capture(...)` block")


# ---------------------------------------------------------------------------
# Export-friendly forms
# ---------------------------------------------------------------------------

def _sort_stable(self, stable=None, dim=-1, descending=False):  # noqa: ANN001, ANN202 (onnxscript values)
    """aten::sort.stable of labels (b, l) along the last axis, ascending: TopK of unique keys."""
    l = op.Shape(self, start=-1)  # (1,) sequence length
    pos = op.Range(op.Constant(value_int=0), op.Squeeze(l), op.Constant(value_int=1))  # (l,)
    key = op.Add(op.Mul(self, l), pos)  # (b, l) label * l + position: all distinct
    _, idx = op.TopK(key, l, axis=-1, largest=0, sorted=1)  # (b, l) ascending keys
    return op.GatherElements(self, idx, axis=-1), idx


class _Exportable(nn.Module):
    """The network with its reflect padding done up front, so the graph has no branch on the size."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.window = getattr(net, "window_size", None)

    def forward(self, x: Tensor) -> Tensor:
        """(1, C, H, W) -> (1, C, H s, W s), exactly ``net(x)``."""
        if self.window is None:  # MambaIR: no padding
            return self.net(x)
        h, w = x.shape[-2:]
        s = self.net.upscale
        hp = (h + self.window - 1) // self.window * self.window
        wp = (w + self.window - 1) // self.window * self.window
        # The official pad appends the flipped image and crops; with H, W >= window / 2 one copy
        # reaches the multiple, and when H is already a multiple the crop drops it again.
        x = torch.cat([x, x.flip(2)], 2)[:, :, :hp]  # (1, C, Hp, W)
        x = torch.cat([x, x.flip(3)], 3)[:, :, :, :wp]  # (1, C, Hp, Wp)
        return self.net(x)[..., : h * s, : w * s]


def _dense_window_mask(h: int, w: int, s: int, batch: int = 1, device: torch.device | None = None
                       ) -> tuple[None, Tensor]:
    """The shifted-window mask for every window, the dense form ``WindowAttention`` also takes."""
    from ..archs.common import shifted_window_mask

    return None, shifted_window_mask(h, w, s, device)  # (nw, n, n)


@contextlib.contextmanager
def dense_window_masks() -> Iterator[None]:
    """MambaIRv2 picks the masked windows with ``nonzero`` (a data-dependent size torch.export
    cannot carry); while exporting, every window gets its mask instead (same attention)."""
    from ..archs import mambairv2

    sparse = getattr(mambairv2, "shifted_window_mask_sparse", None)
    if sparse is None:  # a network version without the sparse mask
        yield
        return
    mambairv2.shifted_window_mask_sparse = _dense_window_mask
    try:
        yield
    finally:
        mambairv2.shifted_window_mask_sparse = sparse


@contextlib.contextmanager
def export_scan() -> Iterator[None]:
    """Route every selective scan through the chunked form while the block runs."""
    if SCAN_BACKEND not in scan.available_backends():
        scan.register_backend(SCAN_BACKEND, lambda: selective_scan_chunked, None,
                              "chunked scan (ONNX export form)")
    before = scan.requested_backend()
    env = os.environ.get("MAMBAIR_SCAN", "auto").strip() or "auto"
    scan.set_backend(SCAN_BACKEND)
    try:
        yield
    finally:
        scan.set_backend(None if before == env else before)


# ---------------------------------------------------------------------------
# Export and verification
# ---------------------------------------------------------------------------

def real_image(h: int, w: int, channels: int = 3) -> Tensor:
    """A real photo (assets/coffee.png) resized to (1, C, h, w) in [0, 1]."""
    from PIL import Image

    img = Image.open(REAL_IMAGE).convert("RGB" if channels == 3 else "L").resize((w, h), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, h, w)
    return torch.from_numpy(arr.copy())[None]  # (1, C, h, w)


def session(path: str | os.PathLike, threads: int | None = None):  # noqa: ANN201 (onnxruntime type)
    """An onnxruntime CPU session for ``path``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only (its constant folder warns about every CastLike node)
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_session(sess, x: Tensor) -> Tensor:  # noqa: ANN001
    """(1, C, H, W) float -> the file's output as a tensor."""
    y = sess.run([OUTPUT_NAME], {INPUT_NAME: x.detach().cpu().float().numpy()})[0]
    return torch.from_numpy(y)


def verify(path: str | os.PathLike, net: nn.Module, sizes: list[tuple[int, int]],
           channels: int = 3, seed: int = 0) -> list[tuple[str, tuple[int, int], float]]:
    """Max |onnxruntime - PyTorch| on a random and a real image at each size."""
    sess = session(path)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for h, w in sizes:
        for name, x in (("random", torch.rand(1, channels, h, w, generator=gen)),
                        ("real", real_image(h, w, channels))):
            with torch.no_grad():
                want = net(x)
            got = run_session(sess, x)
            if got.shape != want.shape:
                raise ExportError(f"ONNX output shape {tuple(got.shape)} != PyTorch {tuple(want.shape)}")
            out.append((name, (h, w), float((got - want).abs().max())))
    return out


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Errors only from ``logger`` while the block runs (the exporter warns about torchvision ops)."""
    lg = logging.getLogger(logger)
    level = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(level)


def _strip_debug_info(graph) -> None:  # noqa: ANN001 (onnx.GraphProto)
    """Drop the exporter's per-node stack traces and names scopes (3/4 of the file otherwise)."""
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
        for attr in node.attribute:
            if attr.HasField("g"):
                _strip_debug_info(attr.g)


def _check_sizes(net: nn.Module, size: tuple[int, int]) -> None:
    lo = min_size(net)
    if min(size) < lo:
        raise ExportError(f"--size {size[0]} {size[1]}: each side must be at least {lo} "
                          f"for {type(net).__name__}")


def export_onnx(net: nn.Module, out: str | os.PathLike, size: tuple[int, int] = (64, 64),
                dynamic: bool = False, verify_sizes: list[tuple[int, int]] | None = None,
                metadata: dict[str, str] | None = None,
                log: Callable[[str], None] | None = None) -> ExportReport:
    """Export ``net`` to ``out`` and verify it with onnxruntime; on any failure no file is left.

    ``size`` (H, W) is the input size traced (the only size a non-dynamic file accepts);
    ``dynamic`` makes H and W free (from ``min_size(net)`` up). The file is checked against
    PyTorch on a random and a real image at ``verify_sizes`` (default: ``size``, plus a second
    size when dynamic) and removed when the largest difference exceeds ``TOLERANCE``.
    """
    import onnx

    check_exportable(net)
    _check_sizes(net, size)
    log = log or (lambda s: None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    channels = int(net.conv_first.in_channels)
    if verify_sizes is None:
        verify_sizes = [size] + ([(size[0] + 8, size[1] + 5)] if dynamic else [])
    was_training = net.training
    net.eval()
    tmp = out.with_name(out.name + ".part")
    t0 = time.perf_counter()
    try:
        x = torch.rand(1, channels, *size)
        dims = ({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC},) if dynamic else None
        log(f"exporting {type(net).__name__} at {size[0]}x{size[1]}{' (dynamic H, W)' if dynamic else ''}...")
        with (export_scan(), dense_window_masks(), torch.no_grad(), contextlib.redirect_stdout(None),
              _quiet("torch.onnx")):
            torch.onnx.export(
                _Exportable(net), (x,), str(tmp), dynamo=True, dynamic_shapes=dims,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=False,
                optimize=False,  # onnxscript's optimiser took 2/3 of the export time; onnxruntime optimises
                custom_translation_table={torch.ops.aten.sort.stable: _sort_stable}, verbose=False)
        model = onnx.load(str(tmp))
        _strip_debug_info(model.graph)
        meta = {"arch": type(net).__name__, "dynamic": str(dynamic), "traced_size": f"{size[0]}x{size[1]}",
                "min_size": str(min_size(net)) if dynamic else f"{size[0]}x{size[1]}",
                "config": json.dumps(net.config.to_dict()) if hasattr(net, "config") else "",
                **(metadata or {})}
        onnx.helper.set_model_props(model, meta)
        onnx.save(model, str(tmp))
        seconds = time.perf_counter() - t0
        log(f"exported in {seconds:.1f} s; verifying with onnxruntime...")
        checks = verify(tmp, net, verify_sizes, channels)
        worst = max(d for _, _, d in checks)
        if not worst <= TOLERANCE:  # also catches NaN
            raise ExportError(f"onnxruntime differs from PyTorch by {worst:.2e} > {TOLERANCE:g}: "
                              "file removed")
        os.replace(tmp, out)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"export of {type(net).__name__} failed: {type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}") from exc
    finally:
        net.train(was_training)
    return ExportReport(out, size, dynamic, seconds, out.stat().st_size, checks)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
