"""One frozen config dataclass per architecture, and the official presets as data.

Field names are the official constructor keyword arguments
(github.com/csguoh/MambaIR, ``basicsr/archs/*_arch.py``), so ``cfg.kwargs()``
could be passed to the official classes unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")


class _ConfigMethods:
    """What every config dataclass offers beside its fields."""

    arch: ClassVar[str]

    def kwargs(self) -> dict[str, Any]:
        """Official constructor keyword arguments."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """Keyword arguments plus ``arch`` (JSON-ready)."""
        return {"arch": self.arch, **self.kwargs()}


@dataclass(frozen=True)
class MambaIRv2Config(_ConfigMethods):
    """Hyper-parameters of the official ``MambaIRv2`` (ConvFFN blocks)."""

    arch: ClassVar[str] = "MambaIRv2"

    upscale: int = 2
    in_chans: int = 3
    img_size: int = 64
    img_range: float = 1.0
    embed_dim: int = 48
    d_state: int = 8
    depths: tuple[int, ...] = (6, 6, 6, 6)
    num_heads: tuple[int, ...] = (4, 4, 4, 4)
    window_size: int = 16
    inner_rank: int = 32
    num_tokens: int = 64
    convffn_kernel_size: int = 5
    mlp_ratio: float = 2.0
    upsampler: str = ""
    resi_connection: str = "1conv"

    def __post_init__(self) -> None:
        # Lists from JSON/YAML become tuples so that configs hash and compare.
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        if len(self.depths) != len(self.num_heads):
            raise ValueError("depths and num_heads must have the same length")
        _check_common(self)


@dataclass(frozen=True)
class MambaIRv2LightConfig(MambaIRv2Config):
    """Hyper-parameters of the official ``MambaIRv2Light`` (GatedMLP blocks)."""

    arch: ClassVar[str] = "MambaIRv2Light"

    mlp_ratio: float = 1.0
    upsampler: str = "pixelshuffledirect"


@dataclass(frozen=True)
class MambaIRConfig(_ConfigMethods):
    """Hyper-parameters of the official ``MambaIR`` (v1: SS2D four-way scan + CAB)."""

    arch: ClassVar[str] = "MambaIR"

    upscale: int = 2
    in_chans: int = 3
    img_size: int = 64
    img_range: float = 1.0
    d_state: int = 16
    depths: tuple[int, ...] = (6, 6, 6, 6)
    embed_dim: int = 96
    mlp_ratio: float = 2.0
    upsampler: str = ""
    resi_connection: str = "1conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        _check_common(self)


Config = MambaIRv2Config | MambaIRv2LightConfig | MambaIRConfig
CONFIG_CLASSES: dict[str, type] = {
    "MambaIRv2": MambaIRv2Config,
    "MambaIRv2Light": MambaIRv2LightConfig,
    "MambaIR": MambaIRConfig,
}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _check_common(cfg: Any) -> None:
    if cfg.upsampler not in UPSAMPLERS:
        raise ValueError(f"unknown upsampler {cfg.upsampler!r}; expected one of {UPSAMPLERS}")
    if cfg.resi_connection not in ("1conv", "3conv"):
        raise ValueError(f"unknown resi_connection {cfg.resi_connection!r}")
    if cfg.upsampler == "" and cfg.upscale != 1:
        raise ValueError("a model without upsampler (denoising/JPEG) must have upscale=1")
    if cfg.upsampler == "nearest+conv" and cfg.upscale != 4:
        raise ValueError("the nearest+conv upsampler only supports upscale=4")
    if cfg.upsampler == "pixelshuffle" and cfg.upscale not in (2, 3, 4, 8):
        raise ValueError("pixelshuffle supports upscale 2^n and 3")


def config_from_dict(d: dict[str, Any]) -> Config:
    """Build a config from ``{'arch': ..., **kwargs}`` (inverse of ``to_dict``)."""
    d = dict(d)
    arch = d.pop("arch")
    if arch not in CONFIG_CLASSES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {list(CONFIG_CLASSES)}")
    return CONFIG_CLASSES[arch](**d)


# ---------------------------------------------------------------------------
# Presets: the official option files (options/test/*/*.yml), as data.
# ---------------------------------------------------------------------------

_V2_LIGHT = dict(embed_dim=48, d_state=8, depths=(5,) * 4, num_heads=(4,) * 4, window_size=16,
                 inner_rank=32, num_tokens=64, convffn_kernel_size=5, mlp_ratio=1.0,
                 upsampler="pixelshuffledirect")
_V2_BASE = dict(embed_dim=174, d_state=16, depths=(6,) * 6, num_heads=(6,) * 6, window_size=16,
                inner_rank=64, num_tokens=128, convffn_kernel_size=5, mlp_ratio=2.0)
_V2_SMALL = dict(_V2_BASE, embed_dim=132, depths=(4,) * 6, num_heads=(4,) * 6)
_V2_LARGE = dict(_V2_BASE, depths=(6,) * 9, num_heads=(6,) * 9)
_V1_SR = dict(embed_dim=180, d_state=16, depths=(6,) * 6, mlp_ratio=2.0)
_V1_LIGHT = dict(embed_dim=60, d_state=10, depths=(6,) * 4, mlp_ratio=1.2,
                 upsampler="pixelshuffledirect")
_V1_RESTORE = dict(embed_dim=180, d_state=16, depths=(6,) * 6, mlp_ratio=1.2, upsampler="", upscale=1)

PRESETS: dict[str, Config] = {}
for _s in (2, 3, 4):
    PRESETS[f"mambairv2_lightSR_x{_s}"] = MambaIRv2LightConfig(upscale=_s, **_V2_LIGHT)
    PRESETS[f"mambairv2_classicSR_x{_s}"] = MambaIRv2Config(
        upscale=_s, upsampler="pixelshuffle", **_V2_BASE)
    PRESETS[f"mambairv2_SRSmall_x{_s}"] = MambaIRv2Config(
        upscale=_s, upsampler="pixelshuffle", **_V2_SMALL)
    PRESETS[f"mambairv2_SRLarge_x{_s}"] = MambaIRv2Config(
        upscale=_s, upsampler="pixelshuffle", **_V2_LARGE)
    PRESETS[f"MambaIR_SR_x{_s}"] = MambaIRConfig(upscale=_s, upsampler="pixelshuffle", **_V1_SR)
    PRESETS[f"MambaIR_lightSR_x{_s}"] = MambaIRConfig(upscale=_s, **_V1_LIGHT)
for _lvl in (15, 25, 50):
    PRESETS[f"mambairv2_ColorDN_{_lvl}"] = MambaIRv2Config(upscale=1, upsampler="", **_V2_BASE)
    PRESETS[f"MambaIR_ColorDN_level{_lvl}"] = MambaIRConfig(**_V1_RESTORE)
for _q in (10, 30, 40):
    PRESETS[f"mambairv2_JPEG_q{_q}"] = MambaIRv2Config(upscale=1, in_chans=1, upsampler="", **_V2_BASE)
    PRESETS[f"MambaIR_CAR_q{_q}"] = MambaIRConfig(in_chans=1, **_V1_RESTORE)
# Real-world SR (MambaIR-real.pth): the v1 SR body with SwinIR's nearest+conv
# reconstruction. Not in the official option files; detection does not rely on it.
PRESETS["MambaIR_realSR_x4"] = MambaIRConfig(upscale=4, upsampler="nearest+conv", **_V1_SR)
