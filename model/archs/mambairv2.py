"""MambaIRv2 and MambaIRv2Light (arXiv 2411.15269), our code with the official names and shapes.

The two differ only in the feed-forward block (ConvFFN vs GatedMLP). Forward semantics follow the
official ``basicsr/archs/mambairv2_arch.py`` with two documented policy choices (see
shared NOTES §2): routing is ``argmax`` (official Gumbel noise set to zero, straight-through
gradient) unless ``gumbel`` is chosen, and the label sort is always stable.

Dimension letters:
  b  batch            l  tokens = h*w of the padded grid     c  embed_dim
  d  scan channels (hidden = int(c * mlp_ratio))              n  d_state
  t  num_tokens (prompts)                                     r  inner_rank (prompt rank)
  k  number of scans (1 here)                                 q  dt_rank
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..layers import Linear
from ..scan import selective_scan_directed
from ..scan.ref import lowrank_delta
from .common import (
    CaptureMixin,
    PatchEmbed,
    PatchUnEmbed,
    Reconstruction,
    WindowAttention,
    conv_after_body,
    detach_cpu,
    flip_pad,
    init_scan_params,
    init_weights,
    mean_tensor,
    permute_tokens,
    relative_position_index,
    shifted_window_mask_sparse,
    window_order,
)

log = logging.getLogger(__name__)

ROUTINGS = ("argmax", "gumbel")
PROMPT_ORDERS = ("official", "aligned")
SWITCHES = ("on", "off")  # knock-out options ``sgn`` and ``prompt`` (inference experiments)


# ---------------------------------------------------------------------------
# Permutation helpers (no Python loop over the batch)
# ---------------------------------------------------------------------------

@functools.cache
def _numba_permute() -> Callable[[Tensor, Tensor], Tensor] | None:
    """``permute_last_numba``, or None where numba does not load (the scan falls back then too)."""
    try:
        from ..scan.cpu import permute_last_numba
    except Exception as exc:  # optional compiled path missing or broken: index_select does the same
        log.warning("numba gather unavailable (%s: %s); using index_select", type(exc).__name__, exc)
        return None
    return permute_last_numba


def gather_tokens(x: Tensor, index: Tensor, dim: int = 1) -> Tensor:
    """Tokens reordered along ``dim``: out[b, .., i, ..] = x[b, .., index[b, i], ..], index (b, l)."""
    if x.shape[0] == 1:
        # The sort of the scan's (1, d, l) input: a numba task per channel row (the row stays in
        # cache while its reads jump around it), same values as index_select.
        fast = (dim == x.dim() - 1 and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
                and not torch.compiler.is_compiling())
        permute = _numba_permute() if fast else None
        if permute is not None:
            return permute(x, index[0])
        # One image (the app; LAM from 64x64 up): index_select moves whole rows (or reads one index
        # per row of a (d, l) layout) where gather reads an index per element; about 10x faster on
        # a (1, 4096, 48) input, the same values.
        return x.index_select(dim, index[0])
    shape = [1] * x.dim()
    shape[0], shape[dim] = index.shape
    return torch.gather(x, dim, index.view(shape).expand_as(x))  # index (b, .., l, ..) like x


def inverse_permutation(perm: Tensor) -> Tensor:
    """inv[b, perm[b, i]] = i for perm (b, l)."""
    ar = torch.arange(perm.shape[1], device=perm.device).expand_as(perm)  # (b, l)
    return torch.empty_like(perm).scatter_(1, perm, ar)


def _route_soft(logp: Tensor, routing: str, generator: torch.Generator | None) -> Tensor:
    """The soft policy (b, l, t) of ``F.gumbel_softmax``: softmax of logp, plus Gumbel noise if asked."""
    if routing == "gumbel":
        if generator is not None and generator.device != logp.device:
            # e.g. a CPU generator for a GPU model: draw where the generator lives.
            e = torch.empty(logp.shape, dtype=logp.dtype, device=generator.device)
            e = e.exponential_(generator=generator).to(logp.device)
        else:
            e = torch.empty_like(logp).exponential_(generator=generator)
        gumbels = -e.log()  # (b, l, t) standard Gumbel noise, as F.gumbel_softmax draws it
        return (logp + gumbels).softmax(dim=-1)
    if routing == "argmax":
        return logp.softmax(dim=-1)
    raise ValueError(f"unknown routing {routing!r}; expected one of {ROUTINGS}")


def route_policy(logp: Tensor, routing: str = "argmax", generator: torch.Generator | None = None) -> Tensor:
    """One-hot choice (b, l, t) with a straight-through gradient, as ``F.gumbel_softmax(hard=True)``.

    ``argmax``: the official formula with zero noise; ``gumbel``: Gumbel noise drawn from
    ``generator`` (the global RNG when None), the same draws as the official call.
    """
    y_soft = _route_soft(logp, routing, generator)
    index = y_soft.max(dim=-1, keepdim=True)[1]  # (b, l, 1)
    y_hard = torch.zeros_like(logp).scatter_(-1, index, 1.0)
    return y_hard - y_soft.detach() + y_soft


def route_prompts(logp: Tensor, pool: Tensor, routing: str = "argmax",
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Each pixel's prompt (b, l, n) and label (b, l): ``route_policy(logp) @ pool`` and its argmax.

    Where no gradient is wanted, the same bits without the (b, l, t) one-hot: the policy's entries
    are (0 - s) + s = 0 but at the chosen prompt, where they are v = (1 - s) + s (s its soft value;
    v rounds to exactly 1 for s in [0, 1], formed anyway as the official sum), so the product is v
    times that row of the pool (the matmul's other terms are exact zeros).
    """
    if torch.is_grad_enabled() and (logp.requires_grad or pool.requires_grad):
        policy = route_policy(logp, routing, generator)  # (b, l, t)
        return policy @ pool, policy.detach().argmax(dim=-1)  # (b, l, t) @ (t, n) -> (b, l, n)
    s, labels = _route_soft(logp, routing, generator).max(dim=-1)  # (b, l) each
    v = (1.0 - s) + s  # the straight-through sum at the chosen prompt, as route_policy forms it
    return v[..., None] * pool[labels], labels  # (b, l, 1) * (b, l, n)


# ---------------------------------------------------------------------------
# Feed-forward blocks
# ---------------------------------------------------------------------------

class DWConv(nn.Module):
    """Depth-wise conv + GELU on tokens (official ``dwconv``; keys ``depthwise_conv.0``)."""

    def __init__(self, hidden: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.hidden = hidden
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size, 1, (kernel_size - 1) // 2, groups=hidden), nn.GELU())

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, hid) -> (b, l, hid) through the depth-wise conv on the h x w grid."""
        b = x.shape[0]
        x = x.transpose(1, 2).reshape(b, self.hidden, x_size[0], x_size[1])  # (b, hid, h, w)
        return self.depthwise_conv(x).flatten(2).transpose(1, 2)  # (b, l, hid)


class ConvFFN(nn.Module):
    """fc1 -> GELU -> (+ depth-wise conv) -> fc2 (MambaIRv2)."""

    def __init__(self, in_features: int, hidden_features: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.fc1 = Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.dwconv = DWConv(hidden_features, kernel_size)
        self.fc2 = Linear(hidden_features, in_features)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, c) -> (b, l, c)."""
        x = self.act(self.fc1(x))
        return self.fc2(x + self.dwconv(x, x_size))


class Gate(nn.Module):
    """Spatial gate: first half times depth-wise conv of the normalised second half."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """(b, l, hid) -> (b, l, hid/2): x1 * conv(norm(x2))."""
        x1, x2 = x.chunk(2, dim=-1)  # (b, l, hid/2) each
        b, _, half = x2.shape
        x2 = self.norm(x2).transpose(1, 2).reshape(b, half, h, w)  # (b, hid/2, h, w)
        x2 = self.conv(x2).flatten(2).transpose(1, 2)  # (b, l, hid/2)
        return x1 * x2


class GatedMLP(nn.Module):
    """fc1 -> GELU -> Gate -> fc2 (MambaIRv2Light)."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.sg = Gate(hidden_features // 2)
        self.fc2 = Linear(hidden_features // 2, in_features)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, c) -> (b, l, c)."""
        return self.fc2(self.sg(self.act(self.fc1(x)), x_size[0], x_size[1]))


# ---------------------------------------------------------------------------
# Attentive state-space module
# ---------------------------------------------------------------------------

class SelectiveScan(nn.Module):
    """One selective scan over the sorted sequence with the prompt added to C (official
    ``Selective_Scan`` with expand=1)."""

    def __init__(self, d_model: int, d_state: int = 16) -> None:
        super().__init__()
        self.d_inner = d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        init_scan_params(self, self.d_inner, self.dt_rank, d_state, k=1)

    def forward(self, x: Tensor, prompt: Tensor, rec: dict[str, Any] | None = None,
                out_index: Tensor | None = None) -> Tensor:
        """x (b, l, d) in scan order, prompt (b, l, n) -> y (b, l, d); fills ``rec`` if given.

        With ``out_index`` (b, l) the output's row for each scan position (the SGN permutation),
        y comes back in those rows (raster order) from the scan kernel itself.
        """
        b, l, d = x.shape
        n = self.d_state
        xs = x.transpose(1, 2).reshape(b, 1, d, l)  # (b, k, d, l)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)  # (b, k, q+2n, l)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, n, n], dim=2)
        # The step sizes' dt projection (einsum "bkrl,kdr->bkdl") runs inside the scan (dt_weight).
        dt_weight = self.dt_projs_weight.float()  # (1, d, q)
        u = xs.float().reshape(b, d, l)
        Bs = Bs.float()  # (b, 1, n, l)
        C_raw = Cs.float()  # (b, 1, n, l)
        Cs = C_raw + prompt.transpose(1, 2).reshape(b, 1, n, l)  # (b, 1, n, l): the ASE
        A = -torch.exp(self.A_logs.float())  # (d, n)
        D = self.Ds.float()
        bias = self.dt_projs_bias.float().reshape(-1)  # (d,)
        if out_index is not None:
            return selective_scan_directed(u, dts.float(), A, Bs, Cs, D, bias, True, (False,), dt_weight,
                                           out_index[:, None])  # (b, l, d) in out_index's rows
        y = selective_scan_directed(u, dts.float(), A, Bs, Cs, D, bias, True, (False,),
                                    dt_weight)  # (b, d, l)
        if rec is not None:
            delta = lowrank_delta(dts.float(), dt_weight)  # (b, d, l)
            rec["C"] = detach_cpu(C_raw[:, 0].transpose(1, 2))  # (b, l, n) scan order
            rec["scan"] = {"u": detach_cpu(u), "delta": detach_cpu(delta), "A": detach_cpu(A),
                           "B": detach_cpu(Bs), "C": detach_cpu(Cs), "D": detach_cpu(D),
                           "delta_bias": detach_cpu(bias), "delta_softplus": True}
            rec["scan_out"] = detach_cpu(y)
        return y.transpose(1, 2)  # (b, l, d)


class ASSM(CaptureMixin, nn.Module):
    """Attentive state-space module: route pixels to prompts, sort by label, scan, unsort."""

    def __init__(self, dim: int, d_state: int, num_tokens: int = 64, inner_rank: int = 128,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.dim = dim
        self.num_tokens = num_tokens
        self.inner_rank = inner_rank
        self.d_state = d_state
        hidden = int(dim * mlp_ratio)
        self.selectiveScan = SelectiveScan(hidden, d_state)
        self.out_norm = nn.LayerNorm(hidden)
        self.act = nn.SiLU()  # unused in forward, kept as in the official module
        self.out_proj = Linear(hidden, dim, bias=True)
        self.in_proj = nn.Sequential(nn.Conv2d(dim, hidden, 1, 1, 0))
        self.CPE = nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden))
        self.embeddingB = nn.Embedding(num_tokens, inner_rank)
        self.embeddingB.weight.data.uniform_(-1 / num_tokens, 1 / num_tokens)
        self.route = nn.Sequential(Linear(dim, dim // 3), nn.GELU(), Linear(dim // 3, num_tokens),
                                   nn.LogSoftmax(dim=-1))
        # Options (set with model.archs.set_options); plain attributes, not in the state_dict.
        self.routing = "argmax"
        self.generator: torch.Generator | None = None
        self.prompt_order = "official"
        # Knock-outs for experiments, default "on" = the official forward: sgn="off" scans in raster
        # order (identity permutation, same prompts); prompt="off" adds nothing to C.
        self.sgn = "on"
        self.prompt = "on"

    def forward(self, x: Tensor, x_size: tuple[int, int], token: nn.Embedding) -> Tensor:
        """x (b, l, c) raster order -> (b, l, c); ``token`` is the layer's embeddingA (r, n)."""
        b, l, c = x.shape
        h, w = x_size
        pool = self.embeddingB.weight @ token.weight  # (t, r) @ (r, n) -> (t, n)
        logp = self.route(x)  # (b, l, t)
        prompt, labels = route_prompts(logp, pool, self.routing, self.generator)  # (b, l, n), (b, l)
        if self.sgn == "on":
            perm = torch.sort(labels, dim=-1, stable=True)[1]  # (b, l): sorted position -> raster pixel
        elif self.sgn == "off":
            perm = torch.arange(l, device=x.device).expand(b, l)  # (b, l) identity: raster order
        else:
            raise ValueError(f"unknown sgn {self.sgn!r}; expected one of {SWITCHES}")
        inv_perm = inverse_permutation(perm)  # (b, l): raster pixel -> sorted position

        f = self.in_proj(x.transpose(1, 2).reshape(b, c, h, w))  # (b, d, h, w)
        f = f * torch.sigmoid(self.CPE(f))
        # SGN-unfold, sorted along l in the (b, d, l) layout the scan reads: (b, l, d) as a view.
        seq = gather_tokens(f.flatten(2), perm, dim=2).transpose(1, 2)  # (b, d, l) -> (b, l, d)
        if self.prompt_order == "aligned":
            scan_prompt = gather_tokens(prompt, perm)  # (b, l, n): each pixel keeps its own prompt
        elif self.prompt_order == "official":
            scan_prompt = prompt  # raster order added to sorted C, as the official code does
        else:
            raise ValueError(f"unknown prompt_order {self.prompt_order!r}; expected {PROMPT_ORDERS}")
        if self.prompt == "off":
            scan_prompt = torch.zeros_like(scan_prompt)  # C without the ASE term
        elif self.prompt != "on":
            raise ValueError(f"unknown prompt {self.prompt!r}; expected one of {SWITCHES}")

        rec: dict[str, Any] | None = {} if self._capture is not None else None
        if rec is None:  # the scan writes its output back in raster order (SGN-fold in the kernel)
            out = self.out_proj(self.out_norm(self.selectiveScan(seq, scan_prompt, out_index=perm)))
        else:  # the record keeps the scan in sorted order; norm and projection act per token
            y = self.selectiveScan(seq, scan_prompt, rec)  # (b, l, d)
            out = gather_tokens(self.out_proj(self.out_norm(y)), inv_perm)  # (b, l, c) SGN-fold
        if rec is not None:
            self._record("assm", {
                "grid": (h, w), "route_logp": detach_cpu(logp), "labels": detach_cpu(labels),
                "perm": detach_cpu(perm), "inv_perm": detach_cpu(inv_perm), "prompt": detach_cpu(prompt),
                "C": rec["C"], "prompt_pool": detach_cpu(pool), "prompt_order": self.prompt_order,
                "sgn": self.sgn, "prompt_switch": self.prompt, "routing": self.routing,
                "scan": rec["scan"], "scan_out": rec["scan_out"]})
        return out


class AttentiveLayer(nn.Module):
    """(Shifted) window MHSA + FFN, then ASSM + FFN, each with a learnable-scale residual."""

    def __init__(self, dim: int, d_state: int, num_heads: int, window_size: int, shift_size: int,
                 inner_rank: int, num_tokens: int, convffn_kernel_size: int, mlp_ratio: float,
                 qkv_bias: bool = True, light: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.scale1 = nn.Parameter(1e-4 * torch.ones(dim))
        self.scale2 = nn.Parameter(1e-4 * torch.ones(dim))
        self.wqkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.win_mhsa = WindowAttention(dim, window_size, num_heads)
        self.assm = ASSM(dim, d_state, num_tokens=num_tokens, inner_rank=inner_rank, mlp_ratio=mlp_ratio)
        hidden = int(dim * mlp_ratio)
        if light:
            self.convffn1: nn.Module = GatedMLP(dim, hidden)
            self.convffn2: nn.Module = GatedMLP(dim, hidden)
        else:
            self.convffn1 = ConvFFN(dim, hidden, convffn_kernel_size)
            self.convffn2 = ConvFFN(dim, hidden, convffn_kernel_size)
        self.embeddingA = nn.Embedding(inner_rank, d_state)
        self.embeddingA.weight.data.uniform_(-1 / inner_rank, 1 / inner_rank)

    def forward(self, x: Tensor, x_size: tuple[int, int], params: dict[str, Tensor]) -> Tensor:
        """(b, l, c) -> (b, l, c); ``params`` holds the shift mask and the bias index."""
        h, w = x_size
        b, l, c = x.shape
        s = self.window_size

        # Part 1: (shifted) window attention.
        shortcut = x
        mask = masked = None
        if self.shift_size > 0:
            mask, masked = params["attn_mask"], params["attn_windows"]
        # The (cyclically shifted) windows' tokens in one gather each way (see window_order); the
        # norm and qkv projection act per token, so the gather comes first, on c channels, not 3c.
        order, inverse = params["shifted_order" if self.shift_size > 0 else "window_order"]
        x_windows = permute_tokens(x, order, inverse)  # (b, l, c) in window order
        windows = self.wqkv(self.norm1(x_windows)).view(-1, s * s, 3 * c)  # (b*nw, s*s, 3c)
        attn = self.win_mhsa(windows, rpi=params["rpi_sa"], mask=mask, windows=masked)  # (b*nw, s*s, c)
        attn_x = permute_tokens(attn.view(b, l, c), inverse, order)  # (b, l, c) raster order
        x_win = attn_x + shortcut
        x_win = self.convffn1(self.norm2(x_win), x_size) + x_win
        x = shortcut * self.scale1 + x_win

        # Part 2: attentive state space.
        shortcut = x
        x_aca = self.assm(self.norm3(x), x_size, self.embeddingA) + x
        x = x_aca + self.convffn2(self.norm4(x_aca), x_size)
        return shortcut * self.scale2 + x


class BasicBlock(nn.Module):
    """``depth`` AttentiveLayers; odd ones use shifted windows."""

    def __init__(self, dim: int, d_state: int, depth: int, num_heads: int, window_size: int,
                 inner_rank: int, num_tokens: int, convffn_kernel_size: int, mlp_ratio: float,
                 qkv_bias: bool = True, light: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            AttentiveLayer(dim, d_state, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                           inner_rank, num_tokens, convffn_kernel_size, mlp_ratio, qkv_bias, light)
            for i in range(depth)])

    def forward(self, x: Tensor, x_size: tuple[int, int], params: dict[str, Tensor]) -> Tensor:
        """(b, l, c) -> (b, l, c) through every AttentiveLayer."""
        for layer in self.layers:
            x = layer(x, x_size, params)
        return x


class ASSB(nn.Module):
    """Attentive state-space block: BasicBlock, then a conv on the feature map, plus residual."""

    def __init__(self, dim: int, d_state: int, depth: int, num_heads: int, window_size: int,
                 inner_rank: int, num_tokens: int, convffn_kernel_size: int, mlp_ratio: float,
                 qkv_bias: bool = True, resi_connection: str = "1conv", light: bool = False) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dim, norm=False)
        self.patch_unembed = PatchUnEmbed(dim)
        self.residual_group = BasicBlock(dim, d_state, depth, num_heads, window_size, inner_rank,
                                         num_tokens, convffn_kernel_size, mlp_ratio, qkv_bias, light)
        self.conv = conv_after_body(dim, resi_connection)

    def forward(self, x: Tensor, x_size: tuple[int, int], params: dict[str, Tensor]) -> Tensor:
        """(b, l, c) -> (b, l, c)."""
        y = self.residual_group(x, x_size, params)
        return self.patch_embed(self.conv(self.patch_unembed(y, x_size))) + x


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

class MambaIRv2(Reconstruction):
    """MambaIRv2 (ConvFFN blocks); accepts the official constructor keyword arguments."""

    light = False

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3, embed_dim: int = 48,
                 d_state: int = 8, depths: tuple[int, ...] = (6, 6, 6, 6),
                 num_heads: tuple[int, ...] = (4, 4, 4, 4), window_size: int = 16, inner_rank: int = 32,
                 num_tokens: int = 64, convffn_kernel_size: int = 5, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, ape: bool = False, patch_norm: bool = True, upscale: int = 2,
                 img_range: float = 1.0, upsampler: str = "", resi_connection: str = "1conv",
                 **kwargs: Any) -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError("only patch_size=1 is supported (as in every official model)")
        self.in_chans = in_chans
        self.img_range = img_range
        self.upscale = upscale
        self.upsampler = upsampler
        self.window_size = window_size
        self.embed_dim = embed_dim
        self.ape = ape

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm)
        self.patch_unembed = PatchUnEmbed(embed_dim)
        if ape:
            img = img_size if isinstance(img_size, int) else img_size[0]
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img * img, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size))
        self.layers = nn.ModuleList([
            ASSB(embed_dim, d_state, depths[i], num_heads[i], window_size, inner_rank, num_tokens,
                 convffn_kernel_size, mlp_ratio, qkv_bias, resi_connection, self.light)
            for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv_after_body(embed_dim, resi_connection)
        self._make_head(embed_dim, in_chans, upscale, upsampler)
        self.apply(init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """(b, c, h, w) padded features -> (b, c, h, w) after the ASSBs and the final norm."""
        h, w = x.shape[-2:]
        x_size = (h, w)
        # The shifted-window mask of the windows it touches only (see shifted_window_mask_sparse); the
        # same tensors for every forward of one input shape, so that the layers can keep what they
        # derive from them (WindowAttention's cache).
        key = (h, w, self.window_size, x.shape[0], x.device, x.dtype)
        if torch.compiler.is_compiling():  # traced (ONNX export): built in the graph, never kept
            params = self._layer_params(h, w, x)
        else:
            if getattr(self, "_params_key", None) != key:
                self._params_key, self._params = key, self._layer_params(h, w, x)
            params = self._params
        t = self.patch_embed(x)  # (b, l, c)
        if self.ape:
            t = t + self.absolute_pos_embed
        for layer in self.layers:
            t = layer(t, x_size, params)
        return self.patch_unembed(self.norm(t), x_size)  # (b, c, h, w)

    def _layer_params(self, h: int, w: int, x: Tensor) -> dict[str, Any]:
        """What every layer needs for an (h, w) map: the shifted-window mask, the windows' token orders."""
        s = self.window_size
        windows, mask = shifted_window_mask_sparse(h, w, s, x.shape[0], x.device)
        return {"attn_mask": mask.to(x.dtype), "attn_windows": windows,
                "rpi_sa": self.relative_position_index_SA, "window_order": window_order(h, w, s, 0, x.device),
                "shifted_order": window_order(h, w, s, s // 2, x.device)}

    def forward(self, x: Tensor) -> Tensor:
        """(b, C, H, W) in [0, 1] -> (b, C, H*s, W*s)."""
        h0, w0 = x.shape[-2:]
        x = flip_pad(x, self.window_size)
        mean = mean_tensor(self.in_chans, x)
        y = self._body_and_head((x - mean) * self.img_range)
        y = y / self.img_range + mean
        return y[..., : h0 * self.upscale, : w0 * self.upscale]


class MambaIRv2Light(MambaIRv2):
    """MambaIRv2-light (GatedMLP blocks); accepts the official constructor keyword arguments."""

    light = True

    def __init__(self, mlp_ratio: float = 2.0, upsampler: str = "", **kwargs: Any) -> None:
        super().__init__(mlp_ratio=mlp_ratio, upsampler=upsampler, **kwargs)
