"""MambaIR (v1 baseline, arXiv 2402.15648): our code with the official names and shapes.

Residual groups of VSSBlocks: SS2D (four selective scans of the raster image, summed) and a
channel-attention conv block (CAB; the light variant when upsampler == 'pixelshuffledirect').
No padding (the official forward does none). ``nearest+conv`` is SwinIR's real-SR head (x4).

Dimension letters:
  b  batch        h, w  feature map     l  tokens = h*w     c  embed_dim
  d  d_inner = int(c * mlp_ratio)       n  d_state          k  scans (4)     q  dt_rank
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..layers import Linear, linear
from ..scan import selective_scan_directed, selective_scan_tokens
from ..scan.ref import lowrank_delta, tokens_to_rows
from .common import (
    CaptureMixin,
    DropPath,
    PatchEmbed,
    PatchUnEmbed,
    Reconstruction,
    conv_after_body,
    detach_cpu,
    init_scan_params,
    init_weights,
    mean_tensor,
)


def ss2d_orders(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """(4, l) int64: raster index visited at each scan position for the four SS2D scans.

    Row-major, column-major, reversed row-major, reversed column-major.
    """
    row = torch.arange(h * w, device=device)  # (l,)
    col = row.view(h, w).t().reshape(-1)  # (l,): position p = j*h + i visits raster i*w + j
    return torch.stack([row, col, row.flip(0), col.flip(0)])  # (4, l)


# SS2D's scans k = 0..3 read the row-major layout, the column-major one, and each again from its end
# (the official code's flipped copies). The kernel runs them in group order 2 j + r = layout j read
# forwards (r = 0) or backwards (r = 1): scans 0, 2, 1, 3, and adds their outputs in that order, the
# official sum's ((y0 + y2) + y1) + y3.
_GROUPS = [0, 2, 1, 3]  # scan k of each group; its own inverse (group g holds scan _GROUPS[g])
_REVERSED = (False, True, False, True)  # per group


def _by_scan(x: Tensor) -> Tensor:
    """(4*d, ...) per-channel parameters in group order -> scan order."""
    return x.view(4, -1, *x.shape[1:])[_GROUPS].reshape(x.shape)


def _scan_order(x: Tensor) -> Tensor:
    """(b, 4*p, l) or (b, 4, n, l) in group and layout order -> scan order (scans 2, 3 flipped)."""
    parts = x.view(x.shape[0], 4, -1, x.shape[-1])  # (b, 4, p, l)
    scans = [parts[:, g].flip(-1) if _REVERSED[g] else parts[:, g] for g in _GROUPS]  # 4 x (b, p, l)
    return torch.stack(scans, 1).view(x.shape)


class ChannelAttention(nn.Module):
    """RCAN channel attention: global pool -> squeeze -> excite -> sigmoid scale."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        m = num_feat // squeeze_factor
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, m, 1, padding=0), nn.ReLU(inplace=True),
            nn.Conv2d(m, num_feat, 1, padding=0), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        """(b, c, h, w) scaled per channel."""
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel-attention block; light-SR variant uses 1x1/depth-wise/dilated convs."""

    def __init__(self, num_feat: int, is_light_sr: bool = False, compress_ratio: int = 3,
                 squeeze_factor: int = 30) -> None:
        super().__init__()
        if is_light_sr:
            m = num_feat // 2
            self.cab = nn.Sequential(
                nn.Conv2d(num_feat, m, 1, 1, 0), nn.Conv2d(m, m, 3, 1, 1, groups=m), nn.GELU(),
                nn.Conv2d(m, num_feat, 1, 1, 0),
                nn.Conv2d(num_feat, num_feat, 3, 1, padding=2, groups=num_feat, dilation=2),
                ChannelAttention(num_feat, squeeze_factor))
        else:
            m = num_feat // compress_ratio
            self.cab = nn.Sequential(
                nn.Conv2d(num_feat, m, 3, 1, 1), nn.GELU(), nn.Conv2d(m, num_feat, 3, 1, 1),
                ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: Tensor) -> Tensor:
        """(b, c, h, w) -> (b, c, h, w)."""
        return self.cab(x)


class SS2D(CaptureMixin, nn.Module):
    """2-D selective scan: in_proj -> depth-wise conv -> four scans (one grouped call) -> sum."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: float = 2.0,
                 conv_bias: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16)
        d = self.d_inner
        self.in_proj = Linear(d_model, 2 * d, bias=bias)
        self.conv2d = nn.Conv2d(d, d, d_conv, padding=(d_conv - 1) // 2, groups=d, bias=conv_bias)
        self.act = nn.SiLU()
        init_scan_params(self, d, self.dt_rank, d_state, k=4)
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = Linear(d, d_model, bias=bias)

    def forward_core(self, x: Tensor) -> Tensor:
        """x (b, d, h, w) -> sum of the four scans, (b, h, w, d) channel-last in raster order.

        The scans read the image's tokens channel-last (the depth-wise conv leaves them so), each in
        its own order: ``selective_scan_tokens`` takes every group's projection of every token from
        one matmul, forms the step sizes from the dt projection, and adds the four outputs back into
        the tokens' rows in the official order (row-major, its reverse, column-major, its reverse).
        """
        b, d, h, w = x.shape
        l, k, n = h * w, 4, self.d_state
        u = x.permute(0, 2, 3, 1).reshape(b, l, d).float()  # (b, l, d): a view of a channels-last map
        # Every group's x_proj of every token, groups in _GROUPS order: (b, l, k (q + 2n)).
        proj = linear(u, self.x_proj_weight[_GROUPS].reshape(-1, d).float())
        dt_weight = self.dt_projs_weight[_GROUPS].float()  # (k, d, q), applied inside the scan
        A = -torch.exp(self.A_logs.float().view(k, d, n)[_GROUPS].reshape(k * d, n))  # (k*d, n)
        D = self.Ds.float().view(k, d)[_GROUPS].reshape(-1)  # (k*d,)
        bias = self.dt_projs_bias.float()[_GROUPS].reshape(-1)  # (k*d,)
        # The token at each index of a group's order: row-major, then column-major.
        raster = ss2d_orders(h, w, x.device)[[0, 0, 1, 1]][None]  # (1, k, l)
        if self._capture is None:
            y = selective_scan_tokens(u, proj, A, D, bias, dt_weight, _REVERSED, raster)  # (b, l, d)
            return y.view(b, h, w, d)
        # The record keeps each scan's rows, in scan order: the same scans on gathered rows.
        u_rows, dts, Bs, Cs = tokens_to_rows(u, proj, k, d, self.dt_rank, raster)  # (b, k*d, l), (b, k, ., l)
        out = selective_scan_directed(u_rows, dts, A, Bs, Cs, D, bias, True, _REVERSED,
                                      dt_weight)  # (b, k*d, l)
        rows = {"u": u_rows, "delta": lowrank_delta(dts, dt_weight), "B": Bs, "C": Cs}  # per step
        params = {"A": A, "D": D, "delta_bias": bias}  # per channel
        self._record("ss2d", {
            "grid": (h, w), "orders": ss2d_orders(h, w),
            "scan": {**{key: detach_cpu(_scan_order(t)) for key, t in rows.items()},
                     **{key: detach_cpu(_by_scan(t)) for key, t in params.items()}, "delta_softplus": True},
            "scan_out": detach_cpu(_scan_order(out))})
        y = out.new_zeros(b, l, d)  # the groups added into raster rows in turn, as the kernel does
        for gi, yg in enumerate(out.view(b, k, d, l).unbind(1)):  # (b, d, l) each
            y = y.index_add(1, raster[0, gi], yg.transpose(1, 2))
        return y.view(b, h, w, d)

    def forward(self, x: Tensor) -> Tensor:
        """x (b, h, w, c) -> (b, h, w, c)."""
        b, h, w, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)  # (b, h, w, d) each
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))  # (b, d, h, w)
        y = self.forward_core(x)  # (b, h, w, d)
        y = self.out_norm(y) * F.silu(z)
        return self.out_proj(y)


class VSSBlock(nn.Module):
    """LayerNorm -> SS2D with scaled skip, then LayerNorm -> CAB with scaled skip."""

    def __init__(self, hidden_dim: int, drop_path: float = 0.0, d_state: int = 16, expand: float = 2.0,
                 is_light_sr: bool = False) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim)
        self.self_attention = SS2D(d_model=hidden_dim, d_state=d_state, expand=expand)
        self.drop_path = DropPath(drop_path)
        self.skip_scale = nn.Parameter(torch.ones(hidden_dim))
        self.conv_blk = CAB(hidden_dim, is_light_sr)
        self.ln_2 = nn.LayerNorm(hidden_dim)
        self.skip_scale2 = nn.Parameter(torch.ones(hidden_dim))

    def forward(self, inp: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, c) -> (b, l, c) for ``x_size`` = (h, w)."""
        b, l, c = inp.shape
        inp = inp.reshape(b, x_size[0], x_size[1], c)  # (b, h, w, c)
        x = inp * self.skip_scale + self.drop_path(self.self_attention(self.ln_1(inp)))
        cab = self.conv_blk(self.ln_2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (b, h, w, c)
        x = x * self.skip_scale2 + cab
        return x.reshape(b, l, c)


class BasicLayer(nn.Module):
    """``depth`` VSSBlocks (official attribute ``blocks``)."""

    def __init__(self, dim: int, depth: int, drop_path: list[float], d_state: int = 16,
                 mlp_ratio: float = 2.0, is_light_sr: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            VSSBlock(dim, drop_path[i], d_state, mlp_ratio, is_light_sr) for i in range(depth)])

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, c) -> (b, l, c) through every VSSBlock."""
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class ResidualGroup(nn.Module):
    """Residual state-space group: BasicLayer, conv on the feature map, plus residual."""

    def __init__(self, dim: int, depth: int, d_state: int, mlp_ratio: float, drop_path: list[float],
                 resi_connection: str = "1conv", is_light_sr: bool = False) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, drop_path, d_state, mlp_ratio, is_light_sr)
        self.conv = conv_after_body(dim, resi_connection)
        self.patch_embed = PatchEmbed(dim, norm=False)
        self.patch_unembed = PatchUnEmbed(dim)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """(b, l, c) -> (b, l, c)."""
        y = self.residual_group(x, x_size)
        return self.patch_embed(self.conv(self.patch_unembed(y, x_size))) + x


class MambaIR(Reconstruction):
    """MambaIR (v1); accepts the official constructor keyword arguments."""

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3, embed_dim: int = 96,
                 depths: tuple[int, ...] = (6, 6, 6, 6), drop_rate: float = 0.0, d_state: int = 16,
                 mlp_ratio: float = 2.0, drop_path_rate: float = 0.1, patch_norm: bool = True,
                 upscale: int = 2, img_range: float = 1.0, upsampler: str = "",
                 resi_connection: str = "1conv", **kwargs: Any) -> None:
        super().__init__()
        if patch_size != 1:
            raise ValueError("only patch_size=1 is supported (as in every official model)")
        self.in_chans = in_chans
        self.img_range = img_range
        self.upscale = upscale
        self.upsampler = upsampler
        self.embed_dim = embed_dim
        self.is_light_sr = upsampler == "pixelshuffledirect"

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm)
        self.patch_unembed = PatchUnEmbed(embed_dim)
        self.pos_drop = nn.Dropout(p=drop_rate)
        # Stochastic-depth rates rise linearly over all blocks (training only).
        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        start = 0
        for depth in depths:
            self.layers.append(ResidualGroup(embed_dim, depth, d_state, mlp_ratio, dpr[start:start + depth],
                                             resi_connection, self.is_light_sr))
            start += depth
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv_after_body(embed_dim, resi_connection)
        self._make_head(embed_dim, in_chans, upscale, upsampler)
        self.apply(init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """(b, c, h, w) -> (b, c, h, w) after the residual groups and the final norm."""
        x_size = (x.shape[2], x.shape[3])
        t = self.pos_drop(self.patch_embed(x))  # (b, l, c)
        for layer in self.layers:
            t = layer(t, x_size)
        return self.patch_unembed(self.norm(t), x_size)

    def forward(self, x: Tensor) -> Tensor:
        """(b, C, H, W) in [0, 1] -> (b, C, H*s, W*s)."""
        mean = mean_tensor(self.in_chans, x)
        y = self._body_and_head((x - mean) * self.img_range)
        return y / self.img_range + mean
