"""Fetch official checkpoints from Hugging Face, verify them, and record them in the manifest.

    python -m model.download mambairv2_lightSR_x4 [--dest weights/]
    python -m model.download --list

Files come from the Hugging Face repository ``cguoh/MambaIR`` (folders ``MambaIRv2_ckpt/`` and
``MambaIRv1_ckpt/``) through ``huggingface_hub.hf_hub_download`` (which keeps its own cache).
Each file is copied to ``--dest`` under its official name, loaded to check that the tensors
detect as the preset's network, hashed (sha256), and added to ``<dest>/manifest.json`` with
source "official". Without network access the command says where to get the file by hand.

File names: the v2 names are those of the official test option files
(``options/test/mambairv2/*.yml``); ``MambaIRv2_ckpt/mambairv2_lightSR_x{2,4}.pth``,
``MambaIRv2_ckpt/mambairv2_classicSR_Base_x4.pth`` and ``MambaIRv1_ckpt/MambaIR_classicSRx4.pth``
were seen in URLs used by other projects. The other v1 names are guesses tried in order
(the v1 option files point at training folders, not file names); a miss tries the next name.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download

__all__ = ["HF_REPO", "HF_URL", "GITHUB_RELEASE", "candidates", "download", "DownloadError", "main"]

HF_REPO = "cguoh/MambaIR"
HF_URL = f"https://huggingface.co/{HF_REPO}"
GITHUB_RELEASE = "https://github.com/csguoh/MambaIR/releases/tag/v1.0"
V1_DRIVE = "https://github.com/csguoh/MambaIR#model-zoo (Google Drive links, MambaIR v1)"


class DownloadError(RuntimeError):
    """The file could not be fetched or is not the expected network; the message says what to do."""


def candidates(preset: str) -> list[str]:
    """Paths inside the HF repo to try for a preset, most likely first."""
    v2, v1 = "MambaIRv2_ckpt/", "MambaIRv1_ckpt/"
    p = preset
    for s in (2, 3, 4):
        table = {
            f"mambairv2_lightSR_x{s}": [f"{v2}mambairv2_lightSR_x{s}.pth"],
            f"mambairv2_classicSR_x{s}": [f"{v2}mambairv2_classicSR_Base_x{s}.pth"],
            f"mambairv2_SRSmall_x{s}": [f"{v2}mambairv2_classicSR_Small_x{s}.pth"],
            f"mambairv2_SRLarge_x{s}": [f"{v2}mambairv2_classicSR_Large_x{s}.pth"],
            f"MambaIR_SR_x{s}": [f"{v1}MambaIR_classicSRx{s}.pth", f"{v1}MambaIR_SR_x{s}.pth"],
            f"MambaIR_lightSR_x{s}": [f"{v1}MambaIR_lightSRx{s}.pth", f"{v1}MambaIR_lightSR_x{s}.pth",
                                      f"{v1}MambaIR_light{s}.pth"],
        }
        if p in table:
            return table[p]
    if p == "mambairv2_ColorDN_15":
        return [f"{v2}mambairv2_ColorDN_15.pth"]
    if p.startswith("mambairv2_JPEG_q"):
        return [f"{v2}mambairv2_jpeg_q{p.rsplit('q', 1)[1]}.pth"]
    if p.startswith("MambaIR_ColorDN_level"):
        return [f"{v1}ColorDN_MambaIR_level{p.rsplit('level', 1)[1]}.pth"]
    if p.startswith("MambaIR_CAR_q"):
        q = p.rsplit("q", 1)[1]
        return [f"{v1}MambaIR_CAR_q{q}.pth", f"{v1}CAR_MambaIR_q{q}.pth", f"{v1}MambaIR_JPEG{q}.pth"]
    if p == "MambaIR_realSR_x4":
        return [f"{v1}MambaIR-real.pth", f"{v1}MambaIR_realSR.pth"]
    return []


def _manual_help(preset: str, names: list[str], dest: Path) -> str:
    urls = "\n".join(f"  {HF_URL}/resolve/main/{n}" for n in names)
    return (f"Get the file by hand from one of:\n{urls}\n  {HF_URL}/tree/main (browse)\n"
            f"  {GITHUB_RELEASE} (GitHub release v1.0: MambaIRv2 weights)\n  {V1_DRIVE}\n"
            f"and put it in {dest}/ (any name: the network is detected from the tensors), then run "
            f"`python -m model.download {preset} --dest {dest} --local FILE` to verify and register it.")


def _is_missing_remote(err: Exception) -> bool:
    """True when the Hub answered that this file does not exist (try the next name)."""
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError
    except ImportError:  # older huggingface_hub
        from huggingface_hub.utils import EntryNotFoundError as RemoteEntryNotFoundError
        from huggingface_hub.utils import LocalEntryNotFoundError
    return isinstance(err, RemoteEntryNotFoundError) and not isinstance(err, LocalEntryNotFoundError)


def verify(path: Path, preset: str) -> tuple[Any, list[str]]:
    """(detected config, notes); raises DownloadError when the file is not the preset's kind of network."""
    from model import PRESETS, inspect_checkpoint

    cfg, desc = inspect_checkpoint(path)
    if cfg is None:
        raise DownloadError(f"{path.name} is not a usable checkpoint: {desc}")
    want = PRESETS[preset]
    if (cfg.arch, cfg.upscale, cfg.in_chans) != (want.arch, want.upscale, want.in_chans):
        raise DownloadError(f"{path.name} holds a {desc}, not the {preset} network "
                            f"({want.arch} x{want.upscale}, {want.in_chans} channels)")
    notes = [] if cfg == want else [f"config differs from preset {preset}: {desc}"]
    return cfg, notes


def register(path: Path, preset: str, url: str | None, manifest: Path) -> dict[str, Any]:
    """Verify ``path`` and add/update its manifest entry (source 'official')."""
    from model.weights import manifest_entry, upsert_manifest

    _, notes = verify(path, preset)
    entry = manifest_entry(path, source="official", url=url,
                           notes="; ".join([f"official {preset}"] + notes))
    upsert_manifest(entry, manifest)
    return entry


def download(preset: str, dest: str | Path = "weights", *, manifest: str | Path | None = None,
             force: bool = False) -> Path:
    """Fetch, verify and register the official checkpoint of ``preset``; returns the local path."""
    from model import PRESETS

    if preset not in PRESETS:
        raise DownloadError(f"unknown preset {preset!r}; choose from: {', '.join(sorted(PRESETS))}")
    names = candidates(preset)
    if not names:
        raise DownloadError(f"no official checkpoint is known for {preset}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = Path(manifest) if manifest else dest / "manifest.json"
    for name in names:  # already here under an official name: verify and register only
        local = dest / Path(name).name
        if local.exists() and not force:
            register(local, preset, f"{HF_URL}/resolve/main/{name}", manifest)
            return local
    last: Exception | None = None
    for name in names:
        try:
            cached = hf_hub_download(repo_id=HF_REPO, filename=name)
        except Exception as err:  # the Hub raises many error types: sort them into two kinds
            if _is_missing_remote(err):
                last = err
                continue
            raise DownloadError(f"could not reach Hugging Face ({type(err).__name__}: {str(err)[:200]}).\n"
                                + _manual_help(preset, names, dest)) from err
        local = dest / Path(name).name
        shutil.copyfile(cached, local)
        try:
            register(local, preset, f"{HF_URL}/resolve/main/{name}", manifest)
        except DownloadError:
            local.unlink(missing_ok=True)
            raise
        return local
    raise DownloadError(f"none of {names} exists in {HF_REPO} ({last}).\n"
                        + _manual_help(preset, names, dest))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from model import PRESETS

    ap = argparse.ArgumentParser(prog="python -m model.download", description=__doc__.split("\n")[0])
    ap.add_argument("presets", nargs="*", help="preset names, e.g. mambairv2_lightSR_x4")
    ap.add_argument("--dest", default="weights")
    ap.add_argument("--manifest", default=None, help="default: <dest>/manifest.json")
    ap.add_argument("--local", default=None, help="register a file you downloaded by hand (one preset)")
    ap.add_argument("--force", action="store_true", help="download again even if the file is present")
    ap.add_argument("--list", action="store_true", help="list presets and the file names tried")
    a = ap.parse_args(argv)
    if a.list or not a.presets:
        for p in sorted(PRESETS):
            print(f"{p:<28} {', '.join(candidates(p)) or '(none known)'}")
        return 0
    status = 0
    for preset in a.presets:
        try:
            if a.local:
                manifest = Path(a.manifest) if a.manifest else Path(a.dest) / "manifest.json"
                path = Path(a.dest) / Path(a.local).name
                copied = not path.exists() or not path.samefile(a.local)
                if copied:
                    Path(a.dest).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(a.local, path)  # the registry lists the dest folder only
                try:
                    register(path, preset, None, manifest)
                except DownloadError:
                    if copied:
                        path.unlink(missing_ok=True)
                    raise
            else:
                path = download(preset, a.dest, manifest=a.manifest, force=a.force)
            print(f"{preset}: {path} verified and registered")
        except DownloadError as err:
            print(f"{preset}: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
