"""Pieces shared by MambaIRv2 and MambaIR: windows, window attention, patch (un)embedding,
upsamplers, mean shift, stochastic depth, and the per-module capture hook.

Parameter names and shapes follow the official code (github.com/csguoh/MambaIR) so that
official checkpoints load strictly; the code itself is ours.

Dimension letters:
  b  batch           c  channels (embed_dim)     h, w  height, width of the (padded) grid
  s  window side     n  tokens in a window (s*s)  nh  attention heads
  nw windows per image
"""

from __future__ import annotations

import functools
import logging
import math
from types import ModuleType
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..layers import Linear

log = logging.getLogger(__name__)

RGB_MEAN = (0.4488, 0.4371, 0.4040)
ADD_CACHE_BYTES = 16 * 2**20  # WindowAttention keeps a masked windows' bias + mask sum up to this size


# ---------------------------------------------------------------------------
# Capture hook: ``model.capture`` sets ``module._capture = (recorder, stage, block)`` on the
# ASSM/SS2D modules of one network while capturing, and clears it afterwards.
# ---------------------------------------------------------------------------

class CaptureMixin:
    """Gives a module a ``_capture`` slot (None when not recording) and a ``_record`` helper."""

    _capture: tuple[Any, int, int] | None = None

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        """Hand one detached record to the active recorder, with this layer's stage/block."""
        rec, stage, block = self._capture  # type: ignore[misc]
        rec.add(kind, {"stage": stage, "block": block, **data})


def detach_cpu(t: Tensor) -> Tensor:
    """Detached CPU copy; floating tensors as float32, integer tensors as int64."""
    t = t.detach()
    t = t.float() if t.is_floating_point() else t.long()
    return t.cpu().clone()


# ---------------------------------------------------------------------------
# Image helpers
# ---------------------------------------------------------------------------

def mean_tensor(in_chans: int, like: Tensor) -> Tensor:
    """The official mean (1, C, 1, 1): the RGB mean for 3 channels, else zeros (not a buffer)."""
    if in_chans == 3:
        return torch.tensor(RGB_MEAN, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return torch.zeros(1, 1, 1, 1, dtype=like.dtype, device=like.device)


def flip_pad(x: Tensor, multiple: int) -> Tensor:
    """Pad (b, c, h, w) at the bottom/right with its mirror image to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    hp = -(-h // multiple) * multiple
    wp = -(-w // multiple) * multiple
    # Official padding: append the flipped image, then crop (so the padding repeats the edge row).
    # The official code does this once; repeating it only matters for images smaller than half a
    # window, where the official code fails.
    while x.shape[2] < hp:
        x = torch.cat([x, torch.flip(x, [2])], 2)
    while x.shape[3] < wp:
        x = torch.cat([x, torch.flip(x, [3])], 3)
    return x[:, :, :hp, :wp]


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth per sample (identity at inference)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (b, 1, ...)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth as a module (no parameters)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        """Drop whole samples' residual branch with probability p (training only)."""
        return drop_path(x, self.p, self.training)


# ---------------------------------------------------------------------------
# Windows and window attention (MambaIRv2)
# ---------------------------------------------------------------------------

def window_partition(x: Tensor, s: int) -> Tensor:
    """(b, h, w, c) -> (b*nw, s, s, c), windows in raster order."""
    b, h, w, c = x.shape
    x = x.view(b, h // s, s, w // s, s, c)  # (b, h/s, s, w/s, s, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, s, s, c)  # (b*nw, s, s, c)


def window_order(h: int, w: int, s: int, shift: int, device: torch.device | None = None
                 ) -> tuple[Tensor, Tensor]:
    """(l,) raster token at each position of the windows (in ``window_partition``'s order) of the
    map cyclically shifted by -shift, and its inverse (l,): window position of each raster token.

    One row gather then stands for ``torch.roll`` + ``window_partition`` (and the inverse gather for
    the windows put back and rolled back): the roll and the partition's permuted copy took 10.6 ms
    on a (1, 256, 256, 144) qkv, the gather 1.2 ms (2 threads), the same values.
    """
    raster = torch.arange(h * w, device=device).view(1, h, w, 1)  # (1, h, w, 1)
    shifted = torch.roll(raster, shifts=(-shift, -shift), dims=(1, 2)) if shift else raster
    order = window_partition(shifted, s).reshape(-1)  # (l,)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(h * w, device=device)  # (l,)
    return order, inverse


class _PermuteTokens(torch.autograd.Function):
    """x (b, l, c) -> x[:, order]; the gradient is the gather by the inverse permutation (index_select's
    own backward scatters with index_add, slower)."""

    @staticmethod
    def forward(ctx, x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(1, order)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def permute_tokens(x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
    """x (b, l, c) with its tokens in ``order`` (a permutation of l; ``inverse`` its inverse)."""
    if torch.compiler.is_compiling():  # traced for export: a plain gather, no autograd Function
        return x.index_select(1, order)
    return _PermuteTokens.apply(x, order, inverse)


def relative_position_index(s: int) -> Tensor:
    """(n, n) int64 index into the (2s-1)^2 relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij"))  # (2, s, s)
    flat = coords.flatten(1)  # (2, n)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)  # (n, n, 2)
    return (rel[..., 0] + s - 1) * (2 * s - 1) + (rel[..., 1] + s - 1)  # (n, n)


def _window_regions(h: int, w: int, s: int, device: torch.device | None = None) -> Tensor:
    """(nw, n) region id (0..8) of every pixel of every window after the cyclic shift by s // 2."""
    shift = s // 2

    def region(size: int) -> Tensor:
        """Region id 0/1/2 of each row (or column) after the cyclic shift."""
        # Three bands after the cyclic shift: [0, size-s), [size-s, size-shift), [size-shift, size).
        idx = torch.arange(size, device=device)
        return (idx >= size - s).long() + (idx >= size - shift).long()  # (size,)

    ids = (region(h)[:, None] * 3 + region(w)[None, :]).float()  # (h, w)
    return window_partition(ids.view(1, h, w, 1), s).reshape(-1, s * s)  # (nw, n)


def _region_mask(win: Tensor) -> Tensor:
    """(m, n) region ids -> (m, n, n) additive mask: -100 between pixels of different regions."""
    diff = win[:, None, :] - win[:, :, None]  # (m, n, n)
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


def shifted_window_mask(h: int, w: int, s: int, device: torch.device | None = None) -> Tensor:
    """(nw, n, n) additive mask for shifted windows: -100 between pixels of different regions."""
    return _region_mask(_window_regions(h, w, s, device))


def shifted_window_mask_sparse(h: int, w: int, s: int, batch: int = 1, device: torch.device | None = None
                               ) -> tuple[Tensor, Tensor]:
    """The windows the shifted-window mask touches, and their mask: (batch*m,) indices into the
    batch*nw windows (images in turn) and the (batch*m, n, n) mask of those windows.

    Only the last row and column of windows mix regions (m = h/s + w/s - 1 of nw): the other
    windows' mask is zero, and building, adding and reading it for every window cost more than
    the attention of the masked ones (nw*nh*n*n floats per shifted layer).
    """
    win = _window_regions(h, w, s, device)  # (nw, n)
    idx = (win != win[:, :1]).any(dim=1).nonzero().squeeze(1)  # (m,) windows with several regions
    mask = _region_mask(win[idx])  # (m, n, n)
    nw = win.shape[0]
    idx = (torch.arange(batch, device=device)[:, None] * nw + idx[None]).reshape(-1)  # (batch*m,)
    return idx, mask.repeat(batch, 1, 1)  # (batch*m,), (batch*m, n, n)


class WindowAttention(nn.Module):
    """Window multi-head self-attention on precomputed qkv, with a relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))  # ((2s-1)^2, nh)
        self.proj = Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._kept: dict[str, tuple[tuple, Tensor]] = {}  # see _cached
        # "auto": the compiled CPU kernels (model/attention/cpu.py) where they apply (CPU, 12-wide
        # heads, no gradient to the bias table: a restore or LAM's input gradient), else SDPA;
        # "sdpa": SDPA always. A plain attribute, not in the state_dict; ``last_kernel`` says
        # which ran last.
        self.kernel = "auto"
        self.last_kernel: str | None = None

    def forward(self, qkv: Tensor, rpi: Tensor, mask: Tensor | None = None,
                windows: Tensor | None = None) -> Tensor:
        """qkv (b*nw, n, 3c) -> (b*nw, n, c).

        ``mask``: None; (nw, n, n) for every window (the same for every image); or, with
        ``windows`` (m,) indices into the b*nw windows, (m, n, n) for those windows only (the
        others unmasked), as ``shifted_window_mask_sparse`` gives them.
        """
        bw, n, c3 = qkv.shape
        rows = _rows_kernel() if self.kernel == "auto" else None
        table = self.relative_position_bias_table
        if rows is not None and rows.supported(qkv, self.num_heads) and not (
                torch.is_grad_enabled() and table.requires_grad):
            self.last_kernel = "numba"
            return self.proj(self._attend_rows(rows, qkv, rpi, mask, windows))
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; expected one of {KERNELS}")
        self.last_kernel = "sdpa"
        bias = self._cached("bias", (rpi, qkv.dtype), lambda: self._bias(rpi, n, qkv.dtype))  # (1, nh, n, n)
        if mask is None:
            x = self._attend(qkv, bias)
        elif windows is not None:
            # Whole windows' rows picked before the head split: contiguous copies.
            free = _complement(windows, bw)  # (bw - m,) windows without mask
            x_free = self._attend(qkv.index_select(0, free), bias)  # (bw - m, n, c)
            add = self._cached("add", (mask, bias), lambda: mask[:, None].to(qkv.dtype) + bias,
                               max_bytes=ADD_CACHE_BYTES)  # (m, nh, n, n)
            x_mask = self._attend(qkv.index_select(0, windows), add)  # (m, n, c)
            x = x_free.new_empty((bw,) + x_free.shape[1:]).index_copy(0, free, x_free)
            x = x.index_copy(0, windows, x_mask)  # (b*nw, n, c)
        else:
            nw = mask.shape[0]
            add = mask[:, None].to(qkv.dtype) + bias  # (nw, nh, n, n), contiguous
            # batch > 1: every image's windows share the mask: (b, nw*n, 3c) with the windows
            # as extra heads, the mask broadcast over images.
            x = self._attend(qkv.reshape(bw // nw, nw * n, c3), add.view(1, nw * self.num_heads, n, n), nw)
            x = x.reshape(bw, n, c3 // 3)  # (b*nw, n, c)
        return self.proj(x)

    def _attend_rows(self, rows: ModuleType, qkv: Tensor, rpi: Tensor, mask: Tensor | None,
                     windows: Tensor | None) -> Tensor:
        """qkv (b*nw, n, 3c) -> (b*nw, n, c) by the compiled kernel: the bias and mask transposed
        (kept while unchanged, as ``_cached`` says), each window's mask named by its slot."""
        bw, n, _ = qkv.shape
        bias_t = self._cached("bias_t", (rpi, qkv.dtype),  # (nh, n, n) [h, j, i]
                              lambda: self._bias(rpi, n, qkv.dtype)[0].transpose(1, 2).contiguous())
        if mask is None:
            mask_t, slot = qkv.new_zeros((0, n, n)), torch.full((bw,), -1, dtype=torch.int64)
        else:
            mask_t = self._cached("mask_t", (mask,), lambda: mask.transpose(1, 2).contiguous(),
                                  max_bytes=ADD_CACHE_BYTES)  # (m, n, n) [.., j, i]
            if windows is not None:  # mask k belongs to window windows[k]; the others have none
                slot = torch.full((bw,), -1, dtype=torch.int64)
                slot[windows] = torch.arange(windows.shape[0])
            else:  # one mask per window of an image, every image the same
                slot = torch.arange(bw) % mask.shape[0]
        return rows.window_attention_rows_numba(qkv, bias_t, mask_t, slot, self.num_heads, self.scale)

    def _bias(self, rpi: Tensor, n: int, dtype: torch.dtype) -> Tensor:
        """The relative position bias as a contiguous (1, nh, n, n) tensor of ``dtype``."""
        bias = self.relative_position_bias_table[rpi.reshape(-1)].view(n, n, self.num_heads)  # (n, n, nh)
        # Contiguous (1, nh, n, n): a permuted view made the mask sum inherit its strides,
        # and SDPA then copied the whole (nw, nh, n, n) sum (both passes strided).
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0).to(dtype)  # (1, nh, n, n)

    def _cached(self, name: str, inputs: tuple, make, max_bytes: int | None = None) -> Tensor:
        """``make()``, kept for the next forward while the bias table is frozen and unchanged.

        The bias (gathered from the table) and the masked windows' bias + mask sum are the same in
        every forward of a fixed network on one input shape: ~10% of a MambaIRv2-light forward at
        64x64, recomputed each time (LAM runs dozens). Kept only when no gradient can reach the
        table (inference, or LAM's frozen parameters), outside torch.compile/export, and for ``add``
        only while small (it is (m, nh, n, n): 7 MB at 64x64, 32 MB per layer at 256x256). The key
        holds the input tensors themselves (identity, not address) and the table's version (bumped by
        optimisers and ``load_state_dict``; a write through ``.data`` bypasses it and is not seen).
        """
        table = self.relative_position_bias_table
        if (torch.is_grad_enabled() and table.requires_grad) or torch.compiler.is_compiling():
            return make()
        key = (table._version, torch.is_inference_mode_enabled(), *inputs)  # no inference tensor in autograd
        hit = self._kept.get(name)
        if hit is not None and len(hit[0]) == len(key) and all(map(_same, hit[0], key)):
            return hit[1]
        out = make()
        if max_bytes is None or out.numel() * out.element_size() <= max_bytes:
            self._kept[name] = (key, out)
        else:
            self._kept.pop(name, None)
        return out

    def _attend(self, qkv: Tensor, add: Tensor, groups: int = 1) -> Tensor:
        """qkv (w, g*n, 3c) -> (w, g*n, c): softmax(q k^T * scale + add) v per head and group of
        n tokens (a window), fused (SDPA): same maths as ``window_attention_ref``, ~3-4x faster on
        CPU, less memory. ``add`` broadcastable to (w, g*nh, n, n)."""
        w_, gn, c3 = qkv.shape
        n, c, nh = gn // groups, c3 // 3, self.num_heads
        qkv = qkv.reshape(w_, groups, n, 3, nh, c // nh)  # (w, g, n, 3, nh, c/nh)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5).reshape(3, w_, groups * nh, n, c // nh)  # (3, w, g*nh, n, c/nh)
        # unbind, not qkv[0], qkv[1], qkv[2]: the backward of three selects zero-fills the whole
        # (3, ...) gradient three times and adds them; unbind's stacks the three once
        q, k, v = qkv.unbind(0)  # (w, g*nh, n, c/nh) each
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=add, scale=self.scale)
        x = x.reshape(w_, groups, nh, n, c // nh).permute(0, 1, 3, 2, 4)  # (w, g, n, nh, c/nh)
        return x.reshape(w_, gn, c)  # (w, g*n, c)


KERNELS = ("auto", "sdpa")  # WindowAttention.kernel's values


@functools.cache
def _rows_kernel() -> ModuleType | None:
    """model.attention.cpu, or None where numba does not load (SDPA does the same then)."""
    try:
        from ..attention import cpu
    except Exception as exc:  # optional compiled path missing or broken
        log.warning("numba window attention unavailable (%s: %s); using SDPA", type(exc).__name__, exc)
        return None
    return cpu


def _same(a: object, b: object) -> bool:
    """Cache-key equality: tensors by identity (never by address or value), anything else by ==."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return a is b
    return a == b


def _complement(index: Tensor, size: int) -> Tensor:
    """The sorted indices in range(size) that are not in ``index``."""
    keep = torch.ones(size, dtype=torch.bool, device=index.device)
    keep[index] = False
    return keep.nonzero().squeeze(1)


def window_attention_ref(q: Tensor, k: Tensor, v: Tensor, add: Tensor, scale: float) -> Tensor:
    """The plain formula the fused window attention must equal: softmax(q k^T * scale + add) v.

    q, k, v (b*nw, nh, n, c/nh); add broadcastable to (b*nw, nh, n, n).
    """
    attn = (q * scale) @ k.transpose(-2, -1) + add  # (b*nw, nh, n, n)
    return attn.softmax(dim=-1) @ v  # (b*nw, nh, n, c/nh)


# ---------------------------------------------------------------------------
# Tokens <-> feature maps
# ---------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    """(b, c, h, w) -> (b, h*w, c), with a LayerNorm named ``norm`` when ``norm`` is True."""

    def __init__(self, embed_dim: int, norm: bool = False) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        """(b, c, h, w) -> (b, l, c), normalised when ``norm`` is set."""
        x = x.flatten(2).transpose(1, 2)  # (b, h*w, c)
        return self.norm(x) if self.norm is not None else x


class PatchUnEmbed(nn.Module):
    """(b, h*w, c) -> (b, c, h, w)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, c) -> (b, c, h, w) for ``x_size`` = (h, w)."""
        return x.transpose(1, 2).reshape(x.shape[0], self.embed_dim, x_size[0], x_size[1])  # (b, c, h, w)


# ---------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------

class Upsample(nn.Sequential):
    """Classic-SR upsampler: (conv 3x3 to 4c, pixel shuffle 2) per factor 2, or one to 9c for x3."""

    def __init__(self, scale: int, num_feat: int) -> None:
        m: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                m += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            m += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported; use 2^n or 3")
        super().__init__(*m)


class UpsampleOneStep(nn.Sequential):
    """Light-SR upsampler: one conv 3x3 to scale^2 * out channels, then pixel shuffle."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, scale * scale * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


def conv_after_body(embed_dim: int, resi_connection: str) -> nn.Module:
    """The conv closing the deep body (or each group): '1conv' or the cheaper '3conv'."""
    if resi_connection == "1conv":
        return nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
    if resi_connection == "3conv":
        q = embed_dim // 4
        return nn.Sequential(
            nn.Conv2d(embed_dim, q, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(q, q, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(q, embed_dim, 3, 1, 1))
    raise ValueError(f"unknown resi_connection {resi_connection!r}")


class Reconstruction(nn.Module):
    """Shared shallow/deep/reconstruction skeleton of both networks.

    Subclasses set the attributes named in the official code (``conv_first``, ``conv_after_body``,
    ``conv_before_upsample``, ``upsample``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``,
    ``lrelu``) with ``_make_head`` and implement ``forward_features``.
    """

    num_feat = 64

    def _make_head(self, embed_dim: int, num_out_ch: int, upscale: int, upsampler: str) -> None:
        """Create the reconstruction modules for ``upsampler`` (official names)."""
        nf = self.num_feat
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, nf, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, nf)
            self.conv_last = nn.Conv2d(nf, num_out_ch, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(upscale, embed_dim, num_out_ch)
        elif upsampler == "nearest+conv":
            if upscale != 4:
                raise ValueError("the nearest+conv upsampler only supports upscale=4")
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, nf, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
            self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
            self.conv_last = nn.Conv2d(nf, num_out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            # Denoising / JPEG artefact removal: the network predicts a residual.
            self.conv_last = nn.Conv2d(embed_dim, num_out_ch, 3, 1, 1)

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _body_and_head(self, x: Tensor) -> Tensor:
        """Deep features (b, c, h, w) -> (b, c, h, w); implemented by each network."""
        """Mean-shifted input (b, C, h, w) -> output before the mean is added back."""
        up = self.upsampler
        x_first = self.conv_first(x)
        res = self.conv_after_body(self.forward_features(x_first)) + x_first
        if up == "pixelshuffle":
            return self.conv_last(self.upsample(self.conv_before_upsample(res)))
        if up == "pixelshuffledirect":
            return self.upsample(res)
        if up == "nearest+conv":
            y = self.conv_before_upsample(res)
            y = self.lrelu(self.conv_up1(nn.functional.interpolate(y, scale_factor=2, mode="nearest")))
            y = self.lrelu(self.conv_up2(nn.functional.interpolate(y, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(y)))
        return x + self.conv_last(res)


def init_weights(m: nn.Module) -> None:
    """Official init: trunc-normal(0.02) Linear weights, zero biases; LayerNorm to identity."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)


# ---------------------------------------------------------------------------
# Selective-scan parameters (official names: x_proj_weight, dt_projs_weight, dt_projs_bias,
# A_logs, Ds), for k stacked scans of d_inner channels each.
# ---------------------------------------------------------------------------

def init_scan_params(module: nn.Module, d_inner: int, dt_rank: int, d_state: int, k: int,
                     dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4) -> None:
    """Register the official scan parameters on ``module`` with the official initialisation.

    x_proj_weight (k, r+2n, d); dt_projs_weight (k, d, r); dt_projs_bias (k, d);
    A_logs (k*d, n) [S4D-real: log(1..n)]; Ds (k*d,) ones.
    """
    bound = 1.0 / math.sqrt(d_inner)  # nn.Linear's default init, as the official stacked Linears
    x_proj = torch.empty(k, dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound)
    module.x_proj_weight = nn.Parameter(x_proj)
    std = dt_rank ** -0.5
    module.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, dt_rank).uniform_(-std, std))
    # dt bias = softplus^-1 of dt ~ log-uniform in [dt_min, dt_max].
    dt = torch.exp(torch.rand(k, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    module.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
    a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * d_inner, 1)  # (k*d, n)
    module.A_logs = nn.Parameter(torch.log(a))
    module.Ds = nn.Parameter(torch.ones(k * d_inner))
