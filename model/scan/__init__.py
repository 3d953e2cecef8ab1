"""Selective-scan backends, chosen in one place.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
delta_softplus=False)`` has mamba-ssm's signature (see ``ref.py`` for the
shapes). The backend comes from ``set_backend(name)`` if called, else from the
environment variable ``MAMBAIR_SCAN`` (``auto`` by default). ``last_backend()``
reports which one ran, ``backend_report(device_type)`` says it in words.

Backends:
  ref        the plain PyTorch reference (Python loop over the sequence), any device;
  numba      compiled CPU scan with its own backward (``cpu.py``), CPU only;
  torch      odd-even parallel scan in torch ops (``gpu.py``), any device;
  mamba_ssm  mamba-ssm's fused CUDA kernel, CUDA only, if it imports.
``auto`` tries numba then ref on CPU, mamba_ssm then torch on CUDA, torch then
ref elsewhere. A forced backend that cannot run on the tensors' device, or whose
dependency fails to import, falls back to ``auto`` with one logged warning.
Importing this package is cheap: numba and mamba_ssm are imported on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from torch import Tensor

from .ref import (
    directed_by_flips,
    selective_scan_directed_ref,
    selective_scan_ref,
    selective_scan_tokens_ref,
    tokens_to_rows,
)

log = logging.getLogger(__name__)

ScanFn = Callable[..., Tensor]


def _load_numba() -> ScanFn:
    from .cpu import selective_scan_numba  # imports numba (about half a second)

    return selective_scan_numba


def _load_torch() -> ScanFn:
    from .gpu import selective_scan_torch

    return selective_scan_torch


def _load_mamba_ssm() -> ScanFn:
    from .gpu import load_mamba_ssm

    return load_mamba_ssm()


# name -> loader returning the scan function, or raising (any exception) when the
# optional dependency is missing or broken.
_LOADERS: dict[str, Callable[[], ScanFn]] = {
    "ref": lambda: selective_scan_ref,
    "numba": _load_numba,
    "torch": _load_torch,
    "mamba_ssm": _load_mamba_ssm,
}
# name -> device types it can run on (None: any device).
_DEVICES: dict[str, frozenset[str] | None] = {
    "ref": None, "numba": frozenset({"cpu"}), "torch": None, "mamba_ssm": frozenset({"cuda"}),
}
# Order in which ``auto`` tries backends, per device type ("*": any other device).
_AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cpu": ("numba", "ref"), "cuda": ("mamba_ssm", "torch"), "*": ("torch", "ref"),
}
_DESCRIPTIONS: dict[str, str] = {
    "ref": "Python-loop reference",
    "numba": "compiled",
    "torch": "parallel scan in PyTorch",
    "mamba_ssm": "fused CUDA kernel",
}

_forced: str | None = None
_cache: dict[str, ScanFn | None] = {}
_errors: dict[str, str] = {}
_warned_device: set[tuple[str, str]] = set()
_last: str | None = None


def register_backend(name: str, loader: Callable[[], ScanFn], devices: set[str] | None = None,
                     description: str = "") -> None:
    """Add (or replace) a backend: ``loader()`` returns the scan function or raises if unavailable."""
    _LOADERS[name] = loader
    _DEVICES[name] = frozenset(devices) if devices is not None else None
    _DESCRIPTIONS[name] = description or name
    _cache.pop(name, None)
    _errors.pop(name, None)


def available_backends() -> list[str]:
    """Names of registered backends (whether or not their dependency imports)."""
    return list(_LOADERS)


def set_backend(name: str | None) -> None:
    """Force a backend by name (``None`` or ``"auto"`` goes back to ``MAMBAIR_SCAN``/auto)."""
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
            log.warning("scan backend %r unavailable (%s: %s); falling back", name, type(exc).__name__, exc)
            _cache[name] = None
            _errors[name] = f"{type(exc).__name__}: {exc}"
    return _cache[name]


def _runs_on(name: str, device_type: str) -> bool:
    devices = _DEVICES.get(name)
    return devices is None or device_type in devices


def resolve_backend(device_type: str = "cpu") -> tuple[str, ScanFn]:
    """The backend that would run for tensors on ``device_type``, and its function."""
    name = requested_backend()
    auto = _AUTO_ORDER.get(device_type, _AUTO_ORDER["*"])
    if name == "auto":
        candidates = auto
    elif not _runs_on(name, device_type):
        if (name, device_type) not in _warned_device:
            _warned_device.add((name, device_type))
            log.warning("scan backend %r cannot run on %s tensors; falling back", name, device_type)
        candidates = auto
    else:
        candidates = (name, *auto)
    for cand in candidates:
        if _runs_on(cand, device_type):
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


def selective_scan_directed(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                            delta_bias: Tensor | None, delta_softplus: bool, reverse: tuple[bool, ...],
                            dt_weight: Tensor | None = None, out_index: Tensor | None = None) -> Tensor:
    """Grouped scans sharing u, some run backwards, in one layout, delta optionally low-rank, outputs
    optionally summed into given rows (spec: ``selective_scan_directed_ref``).

    The numba backend reads the shared and reversed rows in place, forms a low-rank delta and adds
    into the output rows inside the kernel; every other backend gets delta formed, u copied per
    group, the reversed groups flipped and the outputs scattered around its ``selective_scan``.
    """
    global _last
    name, fn = resolve_backend(delta.device.type)
    _last = name
    if name == "numba":
        from .cpu import selective_scan_directed_numba

        return selective_scan_directed_numba(u, delta, A, B, C, D, delta_bias, delta_softplus, reverse,
                                             dt_weight, out_index)
    return directed_by_flips(fn, u, delta, A, B, C, D, delta_bias, delta_softplus, reverse, dt_weight,
                             out_index)


def selective_scan_tokens(u: Tensor, proj: Tensor, A: Tensor, D: Tensor | None, delta_bias: Tensor | None,
                          dt_weight: Tensor, reverse: tuple[bool, ...], index: Tensor,
                          delta_softplus: bool = True) -> Tensor:
    """Grouped scans over channel-last tokens, each group in its own token order, summed back into
    the tokens' rows (spec: ``selective_scan_tokens_ref``).

    The numba backend reads and writes the token rows in place (``cpu_tokens.py``); every other
    backend gets each group's rows gathered, then ``selective_scan_directed``'s copies and flips.
    """
    global _last
    name, fn = resolve_backend(u.device.type)
    _last = name
    if name == "numba":
        from .cpu_tokens import selective_scan_tokens_numba

        return selective_scan_tokens_numba(u, proj, A, D, delta_bias, dt_weight, reverse, index,
                                           delta_softplus)
    g = len(reverse)
    rows = tokens_to_rows(u, proj, g, A.shape[0] // g, dt_weight.shape[-1], index)
    return directed_by_flips(fn, *rows[:2], A, *rows[2:], D, delta_bias, delta_softplus, reverse, dt_weight,
                             index).to(u.dtype)


def last_backend() -> str | None:
    """Name of the backend used by the most recent scan call (None before any)."""
    return _last


def backend_report(device_type: str = "cpu") -> str:
    """One line for the UI, e.g. ``"numba (CPU, compiled)"``; notes a fallback and why."""
    name, _ = resolve_backend(device_type)
    line = f"{name} ({device_type.upper()}, {_DESCRIPTIONS.get(name, name)})"
    wanted = requested_backend()
    preferred = _AUTO_ORDER.get(device_type, _AUTO_ORDER["*"])[0] if wanted == "auto" else wanted
    if preferred != name:
        why = _errors.get(preferred) or f"cannot run on {device_type.upper()}"
        line += f"; {preferred} {'requested' if wanted != 'auto' else 'preferred'} but {why}"
    return line


__all__ = ["selective_scan", "selective_scan_ref", "selective_scan_directed", "selective_scan_directed_ref",
           "selective_scan_tokens", "selective_scan_tokens_ref",
           "set_backend", "requested_backend", "resolve_backend", "last_backend", "available_backends",
           "backend_report", "register_backend"]
