"""Selective-scan backends, chosen in one place.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
delta_softplus=False)`` has mamba-ssm's signature (see ``ref.py`` for the
shapes). The backend comes from ``set_backend(name)`` if called, else from the
environment variable ``MAMBAIR_SCAN`` (``auto`` by default; ``ref`` forces the
plain PyTorch reference). ``last_backend()`` reports which one ran, for the UI.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from torch import Tensor

from .ref import selective_scan_ref

log = logging.getLogger(__name__)

ScanFn = Callable[..., Tensor]

# name -> loader returning the scan function, or raising ImportError when the
# optional dependency is missing. Faster backends register here.
_LOADERS: dict[str, Callable[[], ScanFn]] = {"ref": lambda: selective_scan_ref}
# Order in which ``auto`` tries backends, per device type.
_AUTO_ORDER: dict[str, tuple[str, ...]] = {"cpu": ("ref",), "cuda": ("ref",)}

_forced: str | None = None
_cache: dict[str, ScanFn | None] = {}
_last: str | None = None


def available_backends() -> list[str]:
    """Names of registered backends (whether or not their dependency imports)."""
    return list(_LOADERS)


def set_backend(name: str | None) -> None:
    """Force a backend by name (``None`` goes back to ``MAMBAIR_SCAN``/auto)."""
    global _forced
    if name is not None and name != "auto" and name not in _LOADERS:
        raise ValueError(f"unknown scan backend {name!r}; choose from auto, {', '.join(_LOADERS)}")
    _forced = None if name == "auto" else name


def requested_backend() -> str:
    """The backend asked for: the setter's, else ``MAMBAIR_SCAN``, else ``auto``."""
    if _forced is not None:
        return _forced
    name = os.environ.get("MAMBAIR_SCAN", "auto").strip() or "auto"
    if name != "auto" and name not in _LOADERS:
        log.warning("MAMBAIR_SCAN=%r is not a known backend; using auto", name)
        return "auto"
    return name


def _load(name: str) -> ScanFn | None:
    if name not in _cache:
        try:
            _cache[name] = _LOADERS[name]()
        except Exception as exc:  # optional dependency missing or broken: warn once
            log.warning("scan backend %r unavailable (%s); falling back", name, exc)
            _cache[name] = None
    return _cache[name]


def resolve_backend(device_type: str = "cpu") -> tuple[str, ScanFn]:
    """The backend that would run for tensors on ``device_type``, and its function."""
    name = requested_backend()
    candidates = _AUTO_ORDER.get(device_type, ("ref",)) if name == "auto" else (name, "ref")
    for cand in candidates:
        fn = _load(cand)
        if fn is not None:
            return cand, fn
    return "ref", selective_scan_ref


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                   z: Tensor | None = None, delta_bias: Tensor | None = None,
                   delta_softplus: bool = False) -> Tensor:
    """Dispatch to the chosen backend (mamba-ssm signature, see ``ref.py``)."""
    global _last
    name, fn = resolve_backend(u.device.type)
    _last = name
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def last_backend() -> str | None:
    """Name of the backend used by the most recent scan call (None before any)."""
    return _last


__all__ = ["selective_scan", "selective_scan_ref", "set_backend", "requested_backend",
           "resolve_backend", "last_backend", "available_backends"]
