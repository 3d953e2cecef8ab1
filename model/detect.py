"""Detect the architecture and every hyper-parameter of a state_dict from key names and shapes.

Pure functions: a state_dict (name -> tensor, or name -> shape) in, a config dataclass from
``model.config`` out. File names are never looked at (users rename checkpoints; issues #90,
#116, #135 of the official repository are architecture mix-ups).

Letters used for sizes below (official names in brackets):
  E  embed_dim             H  hidden width = int(E * mlp_ratio) (ASSM/SS2D d_inner, FFN hidden)
  N  d_state               R  inner_rank          T  num_tokens
  w  window_size           h  heads of one stage  k  convffn_kernel_size
  r  dt_rank = ceil(width / 16) of the selective scan
  F  num_feat = 64 (intermediate channels of the pixelshuffle / nearest+conv reconstruction)

Two hyper-parameters leave no trace in a state_dict: ``img_size`` and ``img_range`` (the
official defaults 64 and 1.0 are returned); MambaIRv2Light's gate conv is always 5x5, so its
``convffn_kernel_size`` is unused and reported as the default 5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from model.config import Config, MambaIRConfig, MambaIRv2Config, MambaIRv2LightConfig

Shape = tuple[int, ...]
NUM_FEAT = 64  # official reconstruction width (pixelshuffle and nearest+conv)
# Persistent buffers that follow from the config alone: a state_dict may lack them, the loader
# then takes them from the freshly built network.
DERIVED_BUFFERS = ("relative_position_index_SA",)


class CheckpointError(ValueError):
    """A checkpoint or state_dict that cannot be turned into one of our networks (message says why)."""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def state_dict_shapes(state_dict: Mapping[str, Any]) -> dict[str, Shape]:
    """Name -> shape tuple for a state_dict of tensors (any device, meta too) or of shapes."""
    shapes: dict[str, Shape] = {}
    for name, value in state_dict.items():
        if hasattr(value, "shape"):
            shapes[str(name)] = tuple(int(s) for s in value.shape)
        elif isinstance(value, (tuple, list)) and all(isinstance(s, int) for s in value):
            shapes[str(name)] = tuple(value)
        else:
            raise CheckpointError(
                f"entry {name!r} is a {type(value).__name__}, not a tensor: this is not a state_dict "
                "of network weights")
    return shapes


def _sample_keys(shapes: Mapping[str, Shape], n: int = 6) -> str:
    keys = list(shapes)
    more = f", ... ({len(keys)} keys)" if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more


def _get(shapes: Mapping[str, Shape], key: str, arch: str, ndim: int | None = None) -> Shape:
    """Shape of ``key``; a CheckpointError that names the arch and the key when it is absent."""
    if key not in shapes:
        group = key_group(key)
        whole = ("; the whole key group " + repr(group) + " is missing"
                 if not any(key_group(k) == group for k in shapes) else "")
        raise CheckpointError(
            f"recognised a {arch} state_dict, but it has no {key!r}{whole}; the checkpoint is incomplete "
            f"or from a modified network (keys look like {_sample_keys(shapes)})")
    shape = shapes[key]
    if ndim is not None and len(shape) != ndim:
        raise CheckpointError(f"{arch}: {key!r} has shape {list(shape)}, expected a {ndim}-d tensor")
    return shape


def _stage_depths(shapes: Mapping[str, Shape], inner: str, arch: str) -> tuple[int, ...]:
    """Number of blocks per stage from keys ``layers.<i>.residual_group.<inner>.<j>.``."""
    pattern = re.compile(rf"^layers\.(\d+)\.residual_group\.{inner}\.(\d+)\.")
    blocks: dict[int, set[int]] = {}
    for key in shapes:
        m = pattern.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks:
        raise CheckpointError(f"recognised a {arch} state_dict, but it has no 'layers.<i>.residual_group."
                              f"{inner}.<j>.' keys (no residual groups)")
    stages = sorted(blocks)
    if stages != list(range(len(stages))):
        raise CheckpointError(f"{arch}: residual groups are numbered {stages}, expected 0..{len(stages) - 1}")
    depths = []
    for i in stages:
        idx = sorted(blocks[i])
        if idx != list(range(len(idx))):
            raise CheckpointError(f"{arch}: blocks of residual group {i} are numbered {idx}, "
                                  f"expected 0..{len(idx) - 1}")
        depths.append(len(idx))
    return tuple(depths)


def _ratio(hidden: int, embed_dim: int, arch: str) -> float:
    """The shortest decimal r with int(embed_dim * r) == hidden (e.g. 1.2, not 1.2000000000000002)."""
    exact = hidden / embed_dim
    for decimals in range(0, 7):
        r = round(exact, decimals)
        if int(embed_dim * r) == hidden:
            return float(r)
    # Truncation can need r slightly above hidden/E; search upwards on a fine grid.
    for step in range(1, 1000):
        r = round(exact + step * 1e-6, 6)
        if int(embed_dim * r) == hidden:
            return r
    raise CheckpointError(f"{arch}: hidden width {hidden} is not int({embed_dim} * mlp_ratio) for any "
                          "mlp_ratio")


def _isqrt_exact(n: int) -> int | None:
    root = math.isqrt(n)
    return root if root * root == n else None


def _reconstruction(shapes: Mapping[str, Shape], arch: str, embed_dim: int, in_chans: int
                    ) -> tuple[str, int]:
    """(upsampler, upscale) from the reconstruction keys."""
    if "conv_up1.weight" in shapes:
        return "nearest+conv", 4
    if "conv_before_upsample.0.weight" in shapes:
        num_feat = _get(shapes, "conv_before_upsample.0.weight", arch, 4)[0]
        convs = sorted(int(m.group(1)) for k in shapes
                       if (m := re.match(r"^upsample\.(\d+)\.weight$", k)))
        if not convs:
            raise CheckpointError(f"{arch}: has 'conv_before_upsample' (classic pixelshuffle SR) but no "
                                  "'upsample.<n>.weight' convolutions")
        outs = {shapes[f"upsample.{i}.weight"][0] for i in convs}
        if outs == {4 * num_feat}:
            return "pixelshuffle", 2 ** len(convs)
        if outs == {9 * num_feat} and len(convs) == 1:
            return "pixelshuffle", 3
        raise CheckpointError(f"{arch}: pixelshuffle convolutions with output channels {sorted(outs)} fit "
                              f"no scale (expected 4*{num_feat} per x2 step or one 9*{num_feat} for x3)")
    if "upsample.0.weight" in shapes:
        out_ch = _get(shapes, "upsample.0.weight", arch, 4)[0]
        scale = _isqrt_exact(out_ch // in_chans) if out_ch % in_chans == 0 else None
        if not scale or scale < 2:
            raise CheckpointError(f"{arch}: 'upsample.0.weight' has {out_ch} output channels, which is not "
                                  f"scale^2 * {in_chans} for any scale >= 2 (pixelshuffledirect)")
        return "pixelshuffledirect", scale
    if "conv_last.weight" in shapes:
        return "", 1
    raise CheckpointError(f"recognised a {arch} state_dict, but it has no reconstruction keys "
                          "('upsample.*', 'conv_before_upsample.*', 'conv_up1.*' or 'conv_last.*')")


def _resi_connection(shapes: Mapping[str, Shape]) -> str:
    return "3conv" if "conv_after_body.0.weight" in shapes else "1conv"


# ---------------------------------------------------------------------------
# Architecture and per-architecture detection
# ---------------------------------------------------------------------------


def detect_arch(state_dict: Mapping[str, Any]) -> str:
    """'MambaIRv2', 'MambaIRv2Light' or 'MambaIR' from key names only."""
    keys = list(state_dict)
    if not keys:
        raise CheckpointError("the state_dict is empty: there are no weights in this checkpoint")
    if any(".convffn1.dwconv." in k for k in keys):
        return "MambaIRv2"
    if any(".convffn1.sg." in k for k in keys):
        return "MambaIRv2Light"
    if any(".self_attention." in k or "residual_group.blocks." in k for k in keys):
        return "MambaIR"
    sample = ", ".join(repr(k) for k in keys[:6]) + (f", ... ({len(keys)} keys)" if len(keys) > 6 else "")
    if any(".assm." in k for k in keys):
        raise CheckpointError(
            "looks like a MambaIRv2-family state_dict ('.assm.' keys) but has no 'convffn1' keys, so "
            "MambaIRv2 ('.convffn1.dwconv.') cannot be told from MambaIRv2Light ('.convffn1.sg.')")
    if "conv_first.weight" not in state_dict:
        raise CheckpointError(
            "no 'conv_first.weight': this is not a MambaIR/MambaIRv2 state_dict; keys look like "
            f"{sample}")
    raise CheckpointError(
        "has 'conv_first.weight' but none of the MambaIRv2 ('.convffn1.dwconv.'), MambaIRv2Light "
        "('.convffn1.sg.') or MambaIR ('.self_attention.', 'residual_group.blocks.') block keys: "
        f"probably another network of the SwinIR family; keys look like {sample}")


def _window_size(shapes: Mapping[str, Shape], arch: str) -> int:
    """w from the buffer 'relative_position_index_SA' (w², w²), else from a bias table ((2w-1)², h)."""
    if "relative_position_index_SA" in shapes:
        rpi = shapes["relative_position_index_SA"]
        w = _isqrt_exact(rpi[0]) if len(rpi) == 2 and rpi[0] == rpi[1] else None
        if w is None:
            raise CheckpointError(f"{arch}: 'relative_position_index_SA' has shape {list(rpi)}, expected "
                                  "(w*w, w*w) for a window size w")
        return w
    table = _get(shapes, "layers.0.residual_group.layers.0.win_mhsa.relative_position_bias_table", arch, 2)
    side = _isqrt_exact(table[0])
    if side is None or side % 2 == 0:
        raise CheckpointError(f"{arch}: 'relative_position_bias_table' has {table[0]} rows, expected "
                              "(2w-1)^2 for a window size w")
    return (side + 1) // 2


def _detect_v2(shapes: Mapping[str, Shape], arch: str) -> Config:
    e_first = _get(shapes, "conv_first.weight", arch, 4)
    embed_dim, in_chans = e_first[0], e_first[1]
    depths = _stage_depths(shapes, "layers", arch)
    blk0 = "layers.0.residual_group.layers.0."
    num_heads = tuple(
        _get(shapes, f"layers.{i}.residual_group.layers.0.win_mhsa.relative_position_bias_table", arch, 2)[1]
        for i in range(len(depths)))
    window_size = _window_size(shapes, arch)
    inner_rank, d_state = _get(shapes, blk0 + "embeddingA.weight", arch, 2)
    num_tokens = _get(shapes, blk0 + "assm.embeddingB.weight", arch, 2)[0]
    hidden = _get(shapes, blk0 + "assm.in_proj.0.weight", arch, 4)[0]
    mlp_ratio = _ratio(hidden, embed_dim, arch)
    upsampler, upscale = _reconstruction(shapes, arch, embed_dim, in_chans)
    common = dict(upscale=upscale, in_chans=in_chans, embed_dim=embed_dim, d_state=d_state, depths=depths,
                  num_heads=num_heads, window_size=window_size, inner_rank=inner_rank,
                  num_tokens=num_tokens, mlp_ratio=mlp_ratio, upsampler=upsampler,
                  resi_connection=_resi_connection(shapes))
    try:
        if arch == "MambaIRv2":
            kernel = _get(shapes, blk0 + "convffn1.dwconv.depthwise_conv.0.weight", arch, 4)[-1]
            return MambaIRv2Config(convffn_kernel_size=kernel, **common)
        return MambaIRv2LightConfig(convffn_kernel_size=5, **common)
    except ValueError as err:  # e.g. pixelshuffle with an unsupported scale
        raise CheckpointError(f"{arch}: the shapes give an invalid configuration: {err}") from err


def _detect_v1(shapes: Mapping[str, Shape]) -> Config:
    arch = "MambaIR"
    e_first = _get(shapes, "conv_first.weight", arch, 4)
    embed_dim, in_chans = e_first[0], e_first[1]
    depths = _stage_depths(shapes, "blocks", arch)
    a_logs = _get(shapes, "layers.0.residual_group.blocks.0.self_attention.A_logs", arch, 2)
    if a_logs[0] % 4:
        raise CheckpointError(f"{arch}: 'self_attention.A_logs' has {a_logs[0]} rows, expected 4 * d_inner")
    hidden, d_state = a_logs[0] // 4, a_logs[1]
    upsampler, upscale = _reconstruction(shapes, arch, embed_dim, in_chans)
    try:
        return MambaIRConfig(upscale=upscale, in_chans=in_chans, d_state=d_state, depths=depths,
                             embed_dim=embed_dim, mlp_ratio=_ratio(hidden, embed_dim, arch),
                             upsampler=upsampler, resi_connection=_resi_connection(shapes))
    except ValueError as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{arch}: the shapes give an invalid configuration: {err}") from err


def detect_config(state_dict: Mapping[str, Any], *, check: bool = True) -> Config:
    """Config of a clean state_dict (tensors or shapes); with ``check`` every key and shape is verified."""
    shapes = state_dict_shapes(state_dict)
    arch = detect_arch(shapes)
    cfg = _detect_v1(shapes) if arch == "MambaIR" else _detect_v2(shapes, arch)
    if check:
        check_shapes(cfg, shapes)
    return cfg


# ---------------------------------------------------------------------------
# Expected skeleton of a config, and comparison with a state_dict
# ---------------------------------------------------------------------------


def _conv(prefix: str, c_out: int, c_in: int, k: int) -> dict[str, Shape]:
    return {prefix + "weight": (c_out, c_in, k, k), prefix + "bias": (c_out,)}


def _linear(prefix: str, c_out: int, c_in: int, bias: bool = True) -> dict[str, Shape]:
    out: dict[str, Shape] = {prefix + "weight": (c_out, c_in)}
    if bias:
        out[prefix + "bias"] = (c_out,)
    return out


def _norm(prefix: str, c: int) -> dict[str, Shape]:
    return {prefix + "weight": (c,), prefix + "bias": (c,)}


def _resi(prefix: str, e: int, kind: str) -> dict[str, Shape]:
    if kind == "1conv":
        return _conv(prefix, e, e, 3)
    # 3conv: conv3x3 E->E/4, LeakyReLU, conv1x1 E/4->E/4, LeakyReLU, conv3x3 E/4->E (indices 0, 2, 4).
    q = e // 4
    return {**_conv(prefix + "0.", q, e, 3), **_conv(prefix + "2.", q, q, 1), **_conv(prefix + "4.", e, q, 3)}


def _v2_block(p: str, cfg: MambaIRv2Config, heads: int, light: bool) -> dict[str, Shape]:
    e, n, w = cfg.embed_dim, cfg.d_state, cfg.window_size
    hid = int(e * cfg.mlp_ratio)
    r = math.ceil(hid / 16)  # the ASSM's scan runs on the hidden width
    s: dict[str, Shape] = {p + "scale1": (e,), p + "scale2": (e,)}
    for i in (1, 2, 3, 4):
        s.update(_norm(f"{p}norm{i}.", e))
    s.update(_linear(p + "wqkv.", 3 * e, e))
    s[p + "win_mhsa.relative_position_bias_table"] = ((2 * w - 1) ** 2, heads)
    s.update(_linear(p + "win_mhsa.proj.", e, e))
    a = p + "assm."
    s[a + "selectiveScan.x_proj_weight"] = (1, r + 2 * n, hid)
    s[a + "selectiveScan.dt_projs_weight"] = (1, hid, r)
    s[a + "selectiveScan.dt_projs_bias"] = (1, hid)
    s[a + "selectiveScan.A_logs"] = (hid, n)
    s[a + "selectiveScan.Ds"] = (hid,)
    s.update(_norm(a + "out_norm.", hid))
    s.update(_linear(a + "out_proj.", e, hid))
    s.update(_conv(a + "in_proj.0.", hid, e, 1))
    s[a + "CPE.0.weight"] = (hid, 1, 3, 3)
    s[a + "CPE.0.bias"] = (hid,)
    s[a + "embeddingB.weight"] = (cfg.num_tokens, cfg.inner_rank)
    s.update(_linear(a + "route.0.", e // 3, e))
    s.update(_linear(a + "route.2.", cfg.num_tokens, e // 3))
    for f in ("convffn1.", "convffn2."):
        s.update(_linear(p + f + "fc1.", hid, e))
        if light:
            half = hid // 2
            s.update(_norm(p + f + "sg.norm.", half))
            s[p + f + "sg.conv.weight"] = (half, 1, 5, 5)
            s[p + f + "sg.conv.bias"] = (half,)
            s.update(_linear(p + f + "fc2.", e, half))
        else:
            k = cfg.convffn_kernel_size
            s[p + f + "dwconv.depthwise_conv.0.weight"] = (hid, 1, k, k)
            s[p + f + "dwconv.depthwise_conv.0.bias"] = (hid,)
            s.update(_linear(p + f + "fc2.", e, hid))
    s[p + "embeddingA.weight"] = (cfg.inner_rank, n)
    return s


def _v1_block(p: str, cfg: MambaIRConfig) -> dict[str, Shape]:
    e, n = cfg.embed_dim, cfg.d_state
    hid = int(e * cfg.mlp_ratio)
    r = math.ceil(e / 16)  # SS2D's dt_rank follows the model width, not d_inner
    s: dict[str, Shape] = {p + "skip_scale": (e,), p + "skip_scale2": (e,)}
    s.update(_norm(p + "ln_1.", e))
    sa = p + "self_attention."
    s[sa + "x_proj_weight"] = (4, r + 2 * n, hid)
    s[sa + "dt_projs_weight"] = (4, hid, r)
    s[sa + "dt_projs_bias"] = (4, hid)
    s[sa + "A_logs"] = (4 * hid, n)
    s[sa + "Ds"] = (4 * hid,)
    s.update(_linear(sa + "in_proj.", 2 * hid, e, bias=False))
    s[sa + "conv2d.weight"] = (hid, 1, 3, 3)
    s[sa + "conv2d.bias"] = (hid,)
    s.update(_norm(sa + "out_norm.", hid))
    s.update(_linear(sa + "out_proj.", e, hid, bias=False))
    cab = p + "conv_blk.cab."
    sq = e // 30  # ChannelAttention squeeze_factor 30
    if cfg.upsampler == "pixelshuffledirect":  # is_light_sr: 1x1, dw3x3, GELU, 1x1, dilated dw3x3, CA
        c = e // 2
        s.update(_conv(cab + "0.", c, e, 1))
        s[cab + "1.weight"] = (c, 1, 3, 3)
        s[cab + "1.bias"] = (c,)
        s.update(_conv(cab + "3.", e, c, 1))
        s[cab + "4.weight"] = (e, 1, 3, 3)
        s[cab + "4.bias"] = (e,)
        ca = cab + "5.attention."
    else:  # conv3x3 E->E/3, GELU, conv3x3 E/3->E, CA
        c = e // 3
        s.update(_conv(cab + "0.", c, e, 3))
        s.update(_conv(cab + "2.", e, c, 3))
        ca = cab + "3.attention."
    s.update(_conv(ca + "1.", sq, e, 1))
    s.update(_conv(ca + "3.", e, sq, 1))
    s.update(_norm(p + "ln_2.", e))
    return s


def expected_shapes(cfg: Config) -> dict[str, Shape]:
    """Every state_dict key and shape of the official network for ``cfg``."""
    e, c = cfg.embed_dim, cfg.in_chans
    s: dict[str, Shape] = {}
    v1 = isinstance(cfg, MambaIRConfig)
    if not v1:
        s["relative_position_index_SA"] = (cfg.window_size ** 2, cfg.window_size ** 2)
    s.update(_conv("conv_first.", e, c, 3))
    s.update(_norm("patch_embed.norm.", e))
    for i, depth in enumerate(cfg.depths):
        for j in range(depth):
            if v1:
                s.update(_v1_block(f"layers.{i}.residual_group.blocks.{j}.", cfg))
            else:
                s.update(_v2_block(f"layers.{i}.residual_group.layers.{j}.", cfg, cfg.num_heads[i],
                                   isinstance(cfg, MambaIRv2LightConfig)))
        s.update(_resi(f"layers.{i}.conv.", e, cfg.resi_connection))
    s.update(_norm("norm.", e))
    s.update(_resi("conv_after_body.", e, cfg.resi_connection))
    if cfg.upsampler == "pixelshuffle":
        s.update(_conv("conv_before_upsample.0.", NUM_FEAT, e, 3))
        if cfg.upscale == 3:
            s.update(_conv("upsample.0.", 9 * NUM_FEAT, NUM_FEAT, 3))
        else:  # one conv + PixelShuffle(2) per factor 2: conv indices 0, 2, 4
            for k in range(int(math.log2(cfg.upscale))):
                s.update(_conv(f"upsample.{2 * k}.", 4 * NUM_FEAT, NUM_FEAT, 3))
        s.update(_conv("conv_last.", c, NUM_FEAT, 3))
    elif cfg.upsampler == "pixelshuffledirect":
        s.update(_conv("upsample.0.", cfg.upscale ** 2 * c, e, 3))
    elif cfg.upsampler == "nearest+conv":
        s.update(_conv("conv_before_upsample.0.", NUM_FEAT, e, 3))
        for name in ("conv_up1.", "conv_up2.", "conv_hr."):
            s.update(_conv(name, NUM_FEAT, NUM_FEAT, 3))
        s.update(_conv("conv_last.", c, NUM_FEAT, 3))
    else:
        s.update(_conv("conv_last.", c, e, 3))
    return s


def key_group(key: str) -> str:
    """Key with stage/block indices as '*' and no .weight/.bias ('layers.*.residual_group.layers.*.wqkv')."""
    key = re.sub(r"^layers\.\d+\.", "layers.*.", key)
    key = re.sub(r"\.residual_group\.(layers|blocks)\.\d+\.", r".residual_group.\1.*.", key)
    return re.sub(r"\.(weight|bias)$", "", key)  # one group per module, not per tensor


def _summarise(keys: list[str], limit: int = 8) -> str:
    groups: dict[str, int] = {}
    for k in keys:
        g = key_group(k)
        groups[g] = groups.get(g, 0) + 1
    items = [f"{g!r} ({n} keys)" if n > 1 else repr(g) for g, n in groups.items()]
    more = f", ... and {len(items) - limit} more groups" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_shapes(cfg: Config, state_dict: Mapping[str, Any]) -> None:
    """Raise CheckpointError listing missing/unexpected key groups and wrong shapes for ``cfg``."""
    shapes = state_dict_shapes(state_dict)
    expected = expected_shapes(cfg)
    # Buffers computed from the config may be absent (forks that made them non-persistent).
    missing = [k for k in expected if k not in shapes and k not in DERIVED_BUFFERS]
    unexpected = [k for k in shapes if k not in expected]
    wrong = [k for k in expected if k in shapes and shapes[k] != expected[k]]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"missing key groups: {_summarise(missing)}")
    if unexpected:
        parts.append(f"unexpected key groups: {_summarise(unexpected)}")
    if wrong:
        shown = "; ".join(f"{k!r} is {list(shapes[k])}, expected {list(expected[k])}" for k in wrong[:5])
        more = f"; ... ({len(wrong)} in all)" if len(wrong) > 5 else ""
        parts.append(f"shapes that fit no configuration: {shown}{more}")
    raise CheckpointError(
        f"recognised a {cfg.arch} state_dict (detected {_short(cfg)}), but it does not match that "
        f"network: " + "; ".join(parts))


def _short(cfg: Config) -> str:
    d = cfg.to_dict()
    d.pop("arch")
    d.pop("img_size")
    d.pop("img_range")
    return ", ".join(f"{k}={v}" for k, v in d.items())
