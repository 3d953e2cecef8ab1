"""Read a checkpoint (.pth/.pt/.safetensors or a dict), detect its network, build it and load strictly.

Every failure becomes a ``CheckpointError`` (a ``ValueError``) whose message says what is wrong and
what to do; pickles are read with ``torch.load(weights_only=True)`` so that no code in a file runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.config import Config
from model.detect import DERIVED_BUFFERS, CheckpointError, detect_config, key_group

# Wrappers unwrapped in this order: BasicSR saves {'params': ...} (sometimes also 'params_ema');
# the official test options load 'params', so it wins over 'params_ema' when both are present.
WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model")
# Prefixes added by DataParallel/DistributedDataParallel ('module.') and torch.compile ('_orig_mod.').
STRIP_PREFIXES = ("module.", "_orig_mod.")


def _read_file(path: Path, mmap: bool = False) -> Any:
    """The object stored in a .pth/.pt (weights-only unpickling) or .safetensors file.

    ``mmap`` maps zip-format .pth files instead of reading them (cheap when only shapes are needed).
    """
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {str(path)!r}")
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder, not a checkpoint file (.pth, .pt or .safetensors)")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path.name!r} is empty (0 bytes): the download or copy did not finish")
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: 8-byte little-endian header length, then a JSON header starting with '{'.
    if path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{"):
        return _read_safetensors(path)
    # torch.save writes a zip archive ('PK'); the legacy format and pickles start with PROTO (0x80).
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        raise CheckpointError(
            f"{path.name!r} is not a PyTorch or safetensors checkpoint (it starts with {head[:8]!r}); "
            "expected a .pth/.pt saved by torch.save or a .safetensors file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and head.startswith(b"PK"))
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, even KeyError
        raise CheckpointError(_explain_torch_load(path, err)) from err


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:
        raise CheckpointError(
            f"{path.name!r} is not a readable safetensors file ({type(err).__name__}: {err}); it may be "
            "truncated (download it again) or not a safetensors file at all") from err


def _explain_torch_load(path: Path, err: Exception) -> str:
    text = str(err)
    if "Weights only load failed" in text:
        blocked = re.search(r"unsupported global[:\s]+([^\s]+)", text, flags=re.IGNORECASE)
        what = (f"it names the Python callable {blocked.group(1)}" if blocked
                else "its pickle uses features the safe loader does not accept")
        return (f"{path.name!r} contains pickled Python objects beyond tensors ({what}). Loading it would "
                "need arbitrary code execution, so it was refused (torch.load weights_only=True). If you "
                "trust its source, re-save just the weights: torch.save({'params': net.state_dict()}, ...) "
                "or convert it to .safetensors")
    if "central directory" in text or isinstance(err, EOFError) or "Ran out of input" in text:
        return (f"{path.name!r} is truncated or corrupted ({type(err).__name__}); download or copy it again")
    return (f"{path.name!r} is not a PyTorch or safetensors checkpoint ({type(err).__name__}: "
            f"{text[:200]}); expected a .pth/.pt saved by torch.save or a .safetensors file")


def _unwrap(obj: Any) -> Mapping[str, Any]:
    """The state_dict inside BasicSR/Lightning/other wrappers (a few levels deep)."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            raise CheckpointError(
                f"the checkpoint holds a {type(obj).__name__}, not a dict of tensors; save the weights "
                "with torch.save(net.state_dict(), ...) or as {'params': net.state_dict()}")
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    keys = list(obj)[:8] if isinstance(obj, Mapping) else []
    if not keys:
        raise CheckpointError("the checkpoint is an empty dict: there are no weights in it")
    if "optimizers" in obj or "schedulers" in obj:
        raise CheckpointError(
            f"this is a BasicSR training state (keys {keys}), not network weights; load the matching "
            "file from experiments/<name>/models/ (net_g_*.pth) instead")
    raise CheckpointError(
        f"the checkpoint is a dict of non-tensors (keys {keys}); expected a state_dict or a wrapper "
        f"with one of {list(WRAPPER_KEYS)}")


def _clean(sd: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip 'module.'/'_orig_mod.' prefixes and check every value is a tensor."""
    out: dict[str, torch.Tensor] = {}
    bad = []
    for key, value in sd.items():
        name = str(key)
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix):], True
        if not isinstance(value, torch.Tensor):
            bad.append(f"{name!r} ({type(value).__name__})")
            continue
        out[name] = value
    if bad:
        raise CheckpointError(
            f"the state_dict has {len(bad)} entries that are not tensors: {', '.join(bad[:5])}; this is "
            "not a plain dict of network weights")
    return out


def read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Clean state_dict from a path or a loaded dict: unwrap 'params' (then 'params_ema', 'state_dict',
    'model'), strip 'module.' prefixes; tensors stay on the CPU."""
    obj = source if isinstance(source, Mapping) else _read_file(Path(source))
    return _clean(_unwrap(obj))


def _strict_load(net: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """load_state_dict(strict=True), with a CheckpointError listing a few mismatches instead of a dump."""
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys, e.g. {sorted({key_group(k) for k in missing})[:5]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys, e.g. "
                         f"{sorted({key_group(k) for k in unexpected})[:5]}")
        if wrong:
            parts.append("wrong shapes: " + "; ".join(
                f"{k!r} {list(sd[k].shape)} vs {list(own[k].shape)}" for k in wrong[:5]))
        cfg = getattr(net, "config", None)
        arch = cfg.arch if cfg is not None else type(net).__name__
        raise CheckpointError(f"the weights do not fit the {arch} network built for them: "
                              + "; ".join(parts))
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"strict loading failed: {str(err)[:600]}") from err


def load_checkpoint(source: str | os.PathLike | Mapping[str, Any], *, device: str | torch.device = "cpu",
                    routing: str = "argmax") -> nn.Module:
    """Network (eval mode, ``.config`` set) for a checkpoint path or dict, architecture detected from keys.

    BasicSR files hold ``{'params': ...}`` and sometimes ``'params_ema'``: 'params' is used first (as
    the official test options do), then 'params_ema'. ``routing`` ('argmax' | 'gumbel') applies to
    MambaIRv2 models.
    """
    from model.archs import build, set_options  # the networks; imported here to keep import light

    sd = read_state_dict(source)
    cfg = detect_config(sd)
    net = build(cfg)
    own = net.state_dict()
    sd = {**{k: own[k] for k in DERIVED_BUFFERS if k in own and k not in sd}, **sd}
    _strict_load(net, sd)
    set_options(net, routing=routing)
    return net.to(device).eval()


def describe_config(cfg: Config) -> str:
    """One line for a weights listing, e.g. 'MambaIRv2Light x4 (pixelshuffledirect), embed 48, depths 5x4'."""
    task = f"x{cfg.upscale}" if cfg.upscale > 1 else ("grayscale restoration" if cfg.in_chans == 1
                                                       else "colour restoration")
    up = f" ({cfg.upsampler})" if cfg.upsampler else ""
    depths = cfg.depths
    d = f"{depths[0]}x{len(depths)}" if len(set(depths)) == 1 else "-".join(map(str, depths))
    return f"{cfg.arch} {task}{up}, embed {cfg.embed_dim}, depths {d}"


def inspect_checkpoint(path: str | os.PathLike) -> tuple[Config | None, str]:
    """(config, one-line description) of a checkpoint file, or (None, why it cannot be used); never raises."""
    try:
        cfg = detect_config(_clean(_unwrap(_read_file(Path(path), mmap=True))))
    except CheckpointError as err:
        return None, str(err)
    except Exception as err:  # a listing must not crash on one odd file
        return None, f"unreadable ({type(err).__name__}: {err})"
    return cfg, describe_config(cfg)
