"""Which models the app offers, per task, and a module-level cache of the loaded networks.

Models are loaded on first use and kept here (never in ``gr.State``, which is deep-copied per
session). Sources, in order: checkpoints listed by ``model.hub.weights.scan_weights`` (weights/, with
fetched official files in weights/official/ and uploads in weights/user/); otherwise clearly
labelled random-weight demo models of the light presets. The environment variable
``MAMBAIR_APP_DEMO=tiny`` swaps in tiny random models (used by the tests).

Task labels: each task ("SR x4") is served by the best checkpoint per network (official, then
trained here, then other files found in the weights folder); any other checkpoint gets its own label
with its file name ("SR x4 · net_g_5000.pth"), paired with the best checkpoint of the other network
for the same task, so that it can still be compared side by side. Uploads always get such a label.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

FAMILIES = ("MambaIRv2", "MambaIR")
RANDOM = "random weights"
RANDOM_NOTE = "random weights: pictures are noise"


@dataclass(frozen=True)
class ModelSpec:
    """One network the app can run: where its weights come from and what it was trained for."""

    family: str                 # "MambaIRv2" (v2 and v2-light) or "MambaIR"
    task: str                   # label shown in the UI, e.g. "SR x4", "Denoise σ15", "JPEG q10"
    kind: str                   # "sr" | "dn" | "car"
    scale: int                  # upscaling factor (1 for denoise/JPEG)
    level: int = 0              # noise sigma (0-255) or JPEG quality; 0 for SR
    source: str = RANDOM        # "official" | "trained here" | "user file" | RANDOM
    path: str | None = None     # checkpoint file, None for random models
    preset: str | None = None   # config preset name (random models: the one built; files: detected)
    config: Any = None          # the config for random models
    metrics: tuple = field(default=())  # ((name, value), ...) from the manifest
    base_task: str = ""         # task label without the file name ("SR x4"); "" = same as task
    own_label: bool = False     # always offered under its file-named label (uploads)

    @property
    def key(self) -> str:
        """Unique key of this model in the cache."""
        return f"{self.family}|{self.path or self.preset}"

    @property
    def is_random(self) -> bool:
        """True for demo models without trained weights."""
        return self.source == RANDOM


def task_label(kind: str, scale: int, level: int) -> str:
    """UI label of a task: 'SR x4', 'Denoise σ25', 'JPEG q10'."""
    if kind == "sr":
        return f"SR x{scale}"
    if kind == "dn":
        return f"Denoise σ{level}"
    return f"JPEG q{level}"


def _family_of(arch: str) -> str | None:
    arch = str(arch)
    if arch.startswith("MambaIRv2"):
        return "MambaIRv2"
    if arch == "MambaIR":
        return "MambaIR"
    return None


_KINDS = {"sr": "sr", "denoise": "dn", "dn": "dn", "jpeg": "car", "car": "car"}
_DEFAULT_LEVEL = {"dn": 25, "car": 40}


def _level_of(entry: Any, kind: str) -> tuple[int, bool]:
    """Noise sigma / JPEG quality of a checkpoint, and whether it was known.

    The tensors cannot tell (the official σ15/25/50 and q10/30/40 models share one shape), so it
    comes from the manifest (``level``) or else the file name (``..._25.pth``, ``level25``, ``q30``).
    """
    if kind == "sr":
        return 0, True
    for key in ("level", "sigma", "quality"):
        if _get(entry, key):
            return int(_get(entry, key)), True
    name = os.path.basename(str(_get(entry, "file", "") or ""))
    pattern = r"q(\d{1,3})" if kind == "car" else r"(?:level|sigma|_)(\d{1,3})(?=\D*$)"
    m = re.search(pattern, name, flags=re.IGNORECASE)
    if m:
        return int(m.group(1)), True
    return _DEFAULT_LEVEL[kind], False


def _get(entry: Any, name: str, default: Any = None) -> Any:
    if isinstance(entry, dict):
        return entry.get(name, default)
    return getattr(entry, name, default)


_skipped: list[dict[str, str]] = []


def skipped_files() -> list[dict[str, str]]:
    """Files in weights/ the app could not use, with the reason (from ``scan_weights``)."""
    tasks()
    return list(_skipped)


def _specs_from_weights() -> list[ModelSpec]:
    """ModelSpecs for the checkpoints in weights/ (empty when the module or files are missing)."""
    from model.config import config_from_dict
    from model.hub.weights import scan_weights

    try:
        entries, skipped = scan_weights(weights_dir())
    except Exception as exc:  # a broken manifest must not stop the app from starting
        log.warning("scanning weights/ failed: %s", exc)
        return []
    _skipped[:] = list(skipped)
    specs = []
    for e in entries:
        family = _family_of(_get(e, "arch", ""))
        kind = _KINDS.get(str(_get(e, "task", "")).lower())
        if family is None or kind is None:
            why = f"task {_get(e, 'task')!r} / arch {_get(e, 'arch')!r} not handled by the app"
            _skipped.append({"file": str(_get(e, "file", "?")), "reason": why})
            continue
        scale = int(_get(e, "scale", 1) or 1)
        level, known = _level_of(e, kind)
        try:
            cfg = config_from_dict(e["config"]) if _get(e, "config") else None
        except (KeyError, TypeError, ValueError):
            cfg = None
        label = task_label(kind, scale, level) + ("" if known else " (level assumed)")
        specs.append(ModelSpec(
            family=family, task=label, base_task=label, kind=kind, scale=scale, level=level,
            source=str(_get(e, "source", "user file")), path=str(_get(e, "path")), config=cfg,
            own_label=_is_upload(str(_get(e, "path"))), preset=_get(e, "preset"),
            metrics=tuple(sorted((str(k), v) for k, v in dict(_get(e, "metrics", {}) or {}).items()))))
    return specs


def weights_dir() -> str:
    """The weights folder: ``MAMBAIR_WEIGHTS_DIR`` if set, else weights/ next to app/."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
    return os.environ.get("MAMBAIR_WEIGHTS_DIR") or default


def _tiny_configs() -> list[tuple[str, str, int, Any]]:
    """(family, kind, scale, config) of tiny random models for tests: seconds, not minutes."""
    from model.config import MambaIRConfig, MambaIRv2Config, MambaIRv2LightConfig

    v2 = dict(embed_dim=16, d_state=4, depths=(1, 1), num_heads=(2, 2), window_size=8,
              inner_rank=8, num_tokens=8, convffn_kernel_size=3)
    v1 = dict(embed_dim=30, d_state=4, depths=(1,), mlp_ratio=1.2)  # CAB squeezes by 30
    out: list[tuple[str, str, int, Any]] = []
    for s in (2, 4):
        out.append(("MambaIRv2", "sr", s, MambaIRv2LightConfig(upscale=s, **v2)))
        out.append(("MambaIR", "sr", s, MambaIRConfig(upscale=s, upsampler="pixelshuffledirect", **v1)))
    out.append(("MambaIRv2", "dn", 1, MambaIRv2Config(upscale=1, upsampler="", mlp_ratio=1.0, **v2)))
    out.append(("MambaIR", "dn", 1, MambaIRConfig(upscale=1, upsampler="", **v1)))
    return out


def _demo_specs() -> list[ModelSpec]:
    """Random-weight models (light SR presets, or tiny ones when MAMBAIR_APP_DEMO=tiny)."""
    if os.environ.get("MAMBAIR_APP_DEMO", "").strip().lower() == "tiny":
        return [ModelSpec(family=f, task=task_label(k, s, 15 if k == "dn" else 0), kind=k, scale=s,
                          level=15 if k == "dn" else 0, preset=f"tiny_{f}_{k}{s}", config=cfg)
                for f, k, s, cfg in _tiny_configs()]
    from model.config import PRESETS

    specs = []
    for s in (2, 3, 4):
        for fam, name in (("MambaIRv2", f"mambairv2_lightSR_x{s}"), ("MambaIR", f"MambaIR_lightSR_x{s}")):
            specs.append(ModelSpec(family=fam, task=task_label("sr", s, 0), kind="sr", scale=s,
                                   preset=name, config=PRESETS[name]))
    return specs


_lock = threading.RLock()
_tasks: dict[str, dict[str, ModelSpec]] | None = None
_models: dict[str, nn.Module] = {}


SOURCE_RANK = {"official": 0, "trained here": 1, "user file": 2, RANDOM: 3}
_uploaded: dict[str, ModelSpec] = {}  # path -> spec of files added while the app runs


def file_label(spec: ModelSpec) -> str:
    """'SR x4 · net_g_5000.pth': the task of a checkpoint with its file name."""
    return f"{spec.base_task or spec.task} · {os.path.basename(spec.path or spec.preset or '?')}"


def _task_order(item: tuple[str, dict[str, ModelSpec]]) -> tuple:
    sp = next(iter(item[1].values()))
    base = sp.base_task or sp.task
    return {"sr": 0, "dn": 1, "car": 2}.get(sp.kind, 3), sp.scale, sp.level, base != item[0], item[0]


def tasks(refresh: bool = False) -> dict[str, dict[str, ModelSpec]]:
    """Task label -> {family: ModelSpec}; checkpoints from weights/ (else the random demo models)."""
    global _tasks
    with _lock:
        if _tasks is None or refresh:
            demo_mode = os.environ.get("MAMBAIR_APP_DEMO", "").strip().lower()
            specs = [] if demo_mode in ("tiny", "random") else _specs_from_weights()
            known = {sp.path for sp in specs}
            specs += [sp for path, sp in _uploaded.items() if path not in known]
            if not [sp for sp in specs if not sp.own_label]:
                specs += _demo_specs()
            found: dict[str, dict[str, ModelSpec]] = {}
            others: list[ModelSpec] = []
            for sp in sorted(specs, key=lambda s: (SOURCE_RANK.get(s.source, 4), s.path or "")):
                slot = found.setdefault(sp.base_task or sp.task, {})
                if sp.own_label or sp.family in slot:
                    others.append(sp)  # its own label, below
                else:
                    slot[sp.family] = sp
            found = {k: v for k, v in found.items() if v}
            for sp in others:
                label = file_label(sp)
                own = replace(sp, task=label, base_task=sp.base_task or sp.task)
                pair = {f: s for f, s in found.get(own.base_task, {}).items() if f != sp.family}
                found[label] = {own.family: own, **pair}
            _tasks = dict(sorted(found.items(), key=_task_order))
        return _tasks


def task_names() -> list[str]:
    """Task labels in display order."""
    return list(tasks())


def device() -> torch.device:
    """CUDA when available (Spaces GPU), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def get_model(spec: ModelSpec) -> nn.Module:
    """The network of ``spec``, loaded once and cached for the life of the process."""
    with _lock:
        net = _models.get(spec.key)
        if net is None:
            if spec.path:
                from model import load_checkpoint

                net = load_checkpoint(spec.path, device=str(device()))
            else:
                from model.archs import build

                # Same random weights on every start, so that pictures are reproducible.
                gen_state = torch.random.get_rng_state()
                torch.manual_seed(0)
                try:
                    net = build(spec.config)
                finally:
                    torch.random.set_rng_state(gen_state)
                net = net.to(device())
            net.eval()
            _models[spec.key] = net
        return net


@functools.lru_cache(maxsize=64)
def _config_of_file(path: str) -> Any:
    from model import CheckpointError, inspect_checkpoint

    cfg, reason = inspect_checkpoint(path)  # memory-maps the file instead of reading it
    if cfg is None:
        raise CheckpointError(reason)
    return cfg


def config_of(spec: ModelSpec) -> Any:
    """The config of a spec without building the network (checkpoints: detected from the keys)."""
    if spec.config is not None:
        return spec.config
    net = _models.get(spec.key)
    if net is not None and getattr(net, "config", None) is not None:
        return net.config
    return _config_of_file(str(spec.path))


def param_count(net: nn.Module) -> int:
    """Number of parameters of a network."""
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------
# Official weights (fetched through model.hub.download) and the user's own checkpoints
# ---------------------------------------------------------------------------

MAX_CHECKPOINT_MB = 1024    # an upload larger than this is refused before it is read
_status: list[str] = []     # one line: what the app has, and what it could not get


def official_dir() -> str:
    """Where fetched official checkpoints live: <weights>/official."""
    from model.hub.download import OFFICIAL_DIR

    return os.path.join(weights_dir(), OFFICIAL_DIR)


def _is_upload(path: str) -> bool:
    """True for files in ``user_dir()`` (uploads kept from earlier runs)."""
    return os.path.abspath(path).startswith(os.path.abspath(user_dir()) + os.sep)


def user_dir() -> str:
    """Where uploaded checkpoints are kept (so that they are there after a restart): <weights>/user."""
    return os.path.join(weights_dir(), "user")


def weights_mode() -> str:
    """'official' when the app should fetch the official weights at start (``MAMBAIR_WEIGHTS``;
    default 'official' on a Hugging Face Space, where ``SPACE_ID`` is set), else 'local'."""
    mode = os.environ.get("MAMBAIR_WEIGHTS", "").strip().lower()
    if not mode:
        mode = "official" if os.environ.get("SPACE_ID") else "local"
    return mode if mode in ("official", "local") else "local"


def prepare_weights(log_fn: Any = None) -> str:
    """Fetch the official light SR checkpoints when ``weights_mode()`` asks for it; returns the status line.

    Never raises for hub trouble: offline or with files missing, the app starts with what it has.
    """
    from model.hub.download import APP_PRESETS, fetch_many

    say = log_fn or log.info
    if weights_mode() == "official":
        say(f"fetching the official weights into {official_dir()} ...")
        report = fetch_many(APP_PRESETS, official_dir(), log=say)
        line = report.line()
        if report.problem or report.failed:
            line += " The app starts with the weights it has."
        say(line)
    else:
        line = ("Official weights are not fetched at start (MAMBAIR_WEIGHTS=official does, or the Weights "
                "tab on demand).")
    _status[:] = [line]
    tasks(refresh=True)
    return line


def status_line() -> str:
    """One line on the weights: official ones fetched or not, a broken manifest, random models."""
    parts = list(_status)
    broken = [s for s in skipped_files() if s["file"].endswith("manifest.json")]
    parts += [f"`{s['file']}` is broken: provenance of its files unknown (see the Weights tab)."
              for s in broken]
    if any(sp.is_random for fams in tasks().values() for sp in fams.values()):
        parts.append(f"⚠️ **Demo models with {RANDOM_NOTE}**: put checkpoints in `weights/` or fetch the "
                     "official ones (Weights tab) to restore real images.")
    return " ".join(parts)


def official_summary() -> str:
    """'Official weights: 3 of 6 light SR checkpoints present (...).' from the offered models."""
    from model.hub.download import APP_PRESETS

    present = sorted({sp.preset for fams in tasks().values() for sp in fams.values()
                      if sp.source == "official" and sp.preset in APP_PRESETS})
    text = f"Official weights: {len(present)} of {len(APP_PRESETS)} light SR checkpoints present"
    return text + (f" ({', '.join(present)})." if present else ".")


def set_status(line: str) -> None:
    """Replace the status line (after an on-demand fetch)."""
    _status[:] = [line]


def add_user_checkpoint(path: str, name: str | None = None) -> ModelSpec:
    """Check an uploaded checkpoint, keep a copy in ``user_dir()``, and offer it; returns its spec.

    The file is read with ``torch.load(weights_only=True)`` (a pickle that wants to run code is refused
    and runs nothing) and must load strictly into a detected MambaIRv2/MambaIRv2Light/MambaIR.
    Raises ``model.CheckpointError`` (a ValueError) with the reason; the app is then as it was.
    """
    import shutil

    from model import CheckpointError, inspect_checkpoint, load_checkpoint
    from model.hub.weights import CHECKPOINT_SUFFIXES, sha256_file, task_of

    name = os.path.basename(name or path)
    if not name.lower().endswith(CHECKPOINT_SUFFIXES):
        raise CheckpointError(f"{name!r} is not a checkpoint file: use .pth, .pt or .safetensors")
    size_mb = os.path.getsize(path) / 2**20
    limit = float(os.environ.get("MAMBAIR_MAX_CHECKPOINT_MB", MAX_CHECKPOINT_MB))
    if size_mb > limit:
        raise CheckpointError(f"{name!r} is {size_mb:.0f} MB; the limit is {limit:.0f} MB")
    cfg, desc = inspect_checkpoint(path)
    if cfg is None:
        raise CheckpointError(f"{name!r}: {desc}")
    family = _family_of(cfg.arch)
    kind = _KINDS.get(task_of(cfg))
    if family is None or kind is None:
        raise CheckpointError(f"{name!r} holds a {desc}, which the app cannot run")
    net = load_checkpoint(path, device=str(device()))  # strict: every tensor must fit
    net.eval()
    os.makedirs(user_dir(), exist_ok=True)
    stem, suffix = os.path.splitext(name)
    dest, n = os.path.join(user_dir(), name), 1
    digest = sha256_file(path)
    while os.path.exists(dest) and sha256_file(dest) != digest:  # same name, other bytes: keep both
        n += 1
        dest = os.path.join(user_dir(), f"{stem}-{n}{suffix}")
    if not os.path.exists(dest):
        shutil.copyfile(path, dest)
    level, known = _level_of({"file": name}, kind)
    base = task_label(kind, int(cfg.upscale), level) + ("" if known else " (level assumed)")
    spec = ModelSpec(family=family, task=base, base_task=base, kind=kind, scale=int(cfg.upscale), level=level,
                     source="user file", path=dest, config=cfg, own_label=True)
    with _lock:
        _uploaded[dest] = spec
        _models[spec.key] = net
        tasks(refresh=True)
    return spec


def clear() -> None:
    """Forget loaded models and the task list (tests, or after new weights appear)."""
    global _tasks
    with _lock:
        _models.clear()
        _uploaded.clear()
        _tasks = None
