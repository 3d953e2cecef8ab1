"""Official checkpoints from the Hugging Face Hub: find them by listing the repository, fetch, verify.

    python -m model.hub.download mambairv2_lightSR_x4 MambaIR_lightSR_x2   # into weights/official/
    python -m model.hub.download --list                                     # what the repository holds
    python -m model.hub.download mambairv2_lightSR_x4 --local FILE          # a file you fetched by hand

Nothing here guesses file names. The repository (``cguoh/MambaIR``; ``MAMBAIR_HF_REPO`` overrides) is
listed through ``huggingface_hub``; a preset's candidates are the checkpoint files whose path names
its network, task and scale (``candidates_for``); each candidate is downloaded (into the hub cache),
checked against the hash the listing gives (``same_content``: the sha256 of an LFS file, the git blob
id of a plain git file; the Hub gives no sha256 for files stored without LFS), and accepted only when
its tensors detect as the preset's network. Accepted files are copied to ``<weights>/official/`` and
recorded in the ``manifest.json`` there with source "official". Only this code path marks a file
official: a file registered by hand (``--local``) is official only when its content equals an official
file's (by the same hashes).

Everything goes through ``huggingface_hub``, so ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE``, the hub
cache and ``HF_HUB_OFFLINE`` behave as its users expect (offline, the cache is listed instead). One
short request (``MAMBAIR_HUB_TIMEOUT`` seconds, default 5) finds out first whether the hub answers, so
that an offline machine gives up at once instead of waiting on retries.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.hub.weights import CHECKPOINT_SUFFIXES

__all__ = ["HF_REPO", "OFFICIAL_DIR", "APP_PRESETS", "OfficialFile", "DownloadError", "FetchReport",
           "repo_id", "endpoint", "offline", "list_official", "candidates_for", "git_blob_id", "same_content",
           "fetch", "fetch_many", "register_local", "main"]

HF_REPO = "cguoh/MambaIR"
HF_URL = f"https://huggingface.co/{HF_REPO}"
GITHUB_RELEASE = "https://github.com/csguoh/MambaIR/releases/tag/v1.0"
OFFICIAL_DIR = "official"  # sub-folder of the weights folder that holds fetched official files
# What the app fetches: the light SR models of both networks (x3 only where the repository has it).
APP_PRESETS = tuple(f"{net}_lightSR_x{s}" for s in (2, 3, 4) for net in ("mambairv2", "MambaIR"))

Log = Callable[[str], None]


class DownloadError(RuntimeError):
    """The file could not be fetched or is not the expected network; the message says what to do."""


@dataclass(frozen=True)
class OfficialFile:
    """One file of the official repository: its path there, size and content hash (None when not given).

    The Hub lists an LFS file's sha256 (``sha256``); a plain git file has none, only its git blob id
    (``git_oid``, the sha1 of ``b"blob <size>\\0" + bytes``). An LFS file's git oid names its pointer
    file, not its bytes, so it is never kept.
    """

    path: str
    size: int | None = None
    sha256: str | None = None
    git_oid: str | None = None

    @property
    def name(self) -> str:
        """The file name without folders."""
        return self.path.rsplit("/", 1)[-1]


# ----------------------------------------------------------------------------- the hub, as configured


def repo_id() -> str:
    """The official repository (``MAMBAIR_HF_REPO`` overrides ``cguoh/MambaIR``)."""
    return os.environ.get("MAMBAIR_HF_REPO") or HF_REPO


def endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` as set now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, so a value set after import counts too)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in ("1", "on", "yes", "true")
    return bool(constants.HF_HUB_OFFLINE)


def _cache_dir(cache_dir: str | Path | None) -> str | Path | None:
    """The hub cache: as given, else ``HF_HUB_CACHE`` or ``HF_HOME``/hub as set now, else the default."""
    if cache_dir is not None:
        return cache_dir
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("MAMBAIR_HUB_TIMEOUT", "5")))
    except ValueError:
        return 5.0


def file_url(path: str) -> str:
    """Where a repository file is downloaded from (at the configured endpoint)."""
    return f"{endpoint()}/{repo_id()}/resolve/main/{path}"


def manual_help(dest: Path) -> str:
    """How to get official files by hand when the hub cannot be reached."""
    return (f"Get the files by hand from {HF_URL}/tree/main or the GitHub release {GITHUB_RELEASE}, put "
            f"them in {dest}/ (any name: the network is detected from the tensors) and register each with "
            f"`python -m model.hub.download PRESET --local FILE`.")


def _probe() -> None:
    """One short request: raise DownloadError at once when the hub does not answer."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import hf_raise_for_status

    url = f"{endpoint()}/api/models/{repo_id()}"
    try:
        hf_raise_for_status(get_session().get(url, timeout=_timeout()))
    except Exception as err:  # connection refused, DNS, timeout, 4xx/5xx: all mean "not now"
        raise DownloadError(f"the hub at {endpoint()} did not answer for {repo_id()} "
                            f"({type(err).__name__}: {str(err).splitlines()[0][:160]})") from err


def _cached_files(cache_dir: str | Path | None) -> list[OfficialFile]:
    """Files of the repository already in the hub cache (what offline mode can use)."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(_cache_dir(cache_dir))
    except Exception:  # no cache yet
        return []
    out: dict[str, OfficialFile] = {}
    for repo in info.repos:
        if repo.repo_id != repo_id() or repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            for f in rev.files:
                rel = Path(f.file_path).relative_to(rev.snapshot_path).as_posix()
                out[rel] = OfficialFile(rel, f.size_on_disk, None)
    return [out[k] for k in sorted(out)]


def list_official(cache_dir: str | Path | None = None) -> list[OfficialFile]:
    """Every file of the official repository (offline: those in the hub cache); DownloadError if neither."""
    if offline():
        files = _cached_files(cache_dir)
        if not files:
            raise DownloadError(f"HF_HUB_OFFLINE is set and the hub cache holds no file of {repo_id()}")
        return files
    _probe()
    from huggingface_hub import HfApi

    try:
        tree = HfApi(endpoint=endpoint()).list_repo_tree(repo_id(), recursive=True)
        files = []
        for item in tree:
            if getattr(item, "size", None) is None or not hasattr(item, "lfs"):
                continue  # a folder
            lfs = getattr(item, "lfs", None)
            if lfs is not None:
                files.append(OfficialFile(item.path, int(item.size), lfs.sha256))
            else:  # stored in git itself: the listing's oid is the git blob id of its bytes
                files.append(OfficialFile(item.path, int(item.size), git_oid=getattr(item, "blob_id", None)))
    except Exception as err:
        raise DownloadError(f"listing {repo_id()} at {endpoint()} failed ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:160]})") from err
    return sorted(files, key=lambda f: f.path)


# ----------------------------------------------------------------------------- which file is which


def _family_hint(path: str) -> str | None:
    """'v2', 'v1' or None (no hint) from a repository path, folders included."""
    p = path.lower()
    if "v2" in p:
        return "v2"
    if "v1" in p or "mambair" in p:
        return "v1"
    return None


def candidates_for(preset: str, files: Iterable[OfficialFile]) -> list[OfficialFile]:
    """Checkpoint files whose path names the preset's network, task and scale; the tensors decide later.

    The rules read the names the way people write them (``mambairv2_lightSR_x4.pth``,
    ``MambaIRv1_ckpt/MambaIR_classicSRx2.pth``, ``ColorDN_MambaIR_level25.pth``, ``jpeg_q30``):
    network from a ``v2``/``v1``/``MambaIR`` mark (no mark: either), light or not, and the task's
    number (scale, noise level or JPEG quality) standing alone.
    """
    from model.config import PRESETS
    from model.hub.weights import task_of

    if preset not in PRESETS:
        raise DownloadError(f"unknown preset {preset!r}; choose from: {', '.join(sorted(PRESETS))}")
    cfg = PRESETS[preset]
    family = "v2" if cfg.arch.startswith("MambaIRv2") else "v1"
    task = task_of(cfg)
    key = preset.lower()
    out = []
    for f in files:
        name = f.name.lower()
        if not name.endswith(CHECKPOINT_SUFFIXES):
            continue
        hint = _family_hint(f.path)
        if hint not in (None, family):
            continue
        is_dn = bool(re.search(r"dn|denois|noise", name))
        is_car = bool(re.search(r"jpeg|car|(?<![a-z])q\d", name))
        if task == "sr":
            if is_dn or is_car or ("light" in name) != ("light" in key):
                continue
            if ("real" in name) != ("real" in key):
                continue
            if not re.search(rf"(?:x|sr|_){cfg.upscale}(?!\d)|(?<!\d){cfg.upscale}x", name):
                continue
            if "real" not in key and "light" not in key:  # classic sizes: Small / Base / Large
                size = "small" if "small" in key else "large" if "large" in key else "base"
                if any(s in name for s in ("small", "large")) and size not in name:
                    continue
                if size != "base" and size not in name:
                    continue
        else:
            level = int(re.search(r"(\d+)$", preset).group(1))
            if not (is_dn if task == "denoise" else is_car):
                continue
            if not re.search(rf"(?<!\d){level}(?!\d)", name):
                continue
        out.append(f)
    # Files in the network's own folder first, then shorter (more canonical) names.
    return sorted(out, key=lambda f: (_family_hint(f.path) != family, len(f.name), f.path))


# ----------------------------------------------------------------------------- fetching


def git_blob_id(path: str | Path, chunk: int = 1 << 20) -> str:
    """The git blob id of a file (sha1 of ``b"blob <size>\\0"`` then its bytes), as the Hub lists it."""
    path = Path(path)
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def same_content(path: str | Path, official: OfficialFile) -> bool | None:
    """Whether ``path`` holds the bytes the listing describes: by sha256 (LFS) or git blob id (plain file);
    None when the listing gives neither (e.g. files listed from the hub cache)."""
    from model.hub.weights import sha256_file

    if official.sha256:
        return sha256_file(path) == official.sha256
    if official.git_oid:
        return git_blob_id(path) == official.git_oid
    return None


def verify(path: str | Path, preset: str) -> tuple[Any, list[str]]:
    """(detected config, notes); raises DownloadError when the file is not the preset's kind of network."""
    from model import PRESETS, inspect_checkpoint

    path = Path(path)
    cfg, desc = inspect_checkpoint(path)
    if cfg is None:
        raise DownloadError(f"{path.name} is not a usable checkpoint: {desc}")
    want = PRESETS[preset]
    if (cfg.arch, cfg.upscale, cfg.in_chans) != (want.arch, want.upscale, want.in_chans):
        raise DownloadError(f"{path.name} holds a {desc}, not the {preset} network "
                            f"({want.arch} x{want.upscale}, {want.in_chans} channels)")
    notes = [] if cfg == want else [f"config differs from preset {preset}: {desc}"]
    return cfg, notes


def _register(path: Path, preset: str, url: str, repo_path: str, notes: list[str], manifest: Path) -> None:
    from model.hub.weights import manifest_entry, upsert_manifest

    entry = manifest_entry(path, source="official", url=url,
                           notes="; ".join([f"official {preset} ({repo_id()}: {repo_path})"] + notes))
    try:
        upsert_manifest(entry, manifest)
    except ValueError as err:  # a broken manifest is the user's to fix; never overwrite it
        raise DownloadError(f"{manifest} is broken ({err}); fix or move it, then fetch again") from err


def fetch(preset: str, dest: str | Path, *, files: list[OfficialFile] | None = None,
          cache_dir: str | Path | None = None, force: bool = False, tqdm_class: Any = None,
          log: Log | None = None) -> Path:
    """Fetch, verify and register the official checkpoint of ``preset`` into ``dest``; returns its path.

    ``files``: the repository listing when the caller has it (``list_official``); ``dest`` gets the
    file under its official name and a ``manifest.json`` entry with source "official".
    """
    from huggingface_hub import hf_hub_download

    from model.hub.weights import sha256_file

    say = log or (lambda _msg: None)
    dest = Path(dest)
    if files is None:
        files = list_official(cache_dir)
    cands = candidates_for(preset, files)
    if not cands:
        raise DownloadError(f"{repo_id()} has no file for {preset} (looked at {len(files)} files by name)")
    dest.mkdir(parents=True, exist_ok=True)
    reasons = []
    for cand in cands:
        local = dest / cand.name
        if local.exists() and not force and same_content(local, cand):
            _, notes = verify(local, preset)
            _register(local, preset, file_url(cand.path), cand.path, notes, dest / "manifest.json")
            say(f"{preset}: {local} already present (same content as {cand.path})")
            return local
        say(f"{preset}: fetching {cand.path}" + (f" ({cand.size / 2**20:.1f} MiB)" if cand.size else ""))
        try:
            cached = Path(hf_hub_download(repo_id(), cand.path, endpoint=endpoint(),
                                          cache_dir=_cache_dir(cache_dir), local_files_only=offline(),
                                          etag_timeout=_timeout(), tqdm_class=tqdm_class))
        except Exception as err:  # the hub raises many error types; each is a reason to try the next
            reasons.append(f"{cand.path}: {type(err).__name__}: {str(err).splitlines()[0][:160]}")
            continue
        if same_content(cached, cand) is False:
            kind = "sha256" if cand.sha256 else "git blob id"
            reasons.append(f"{cand.path}: {kind} differs from the repository's listing (damaged download)")
            continue
        try:
            _, notes = verify(cached, preset)
        except DownloadError as err:
            reasons.append(f"{cand.path}: {err}")
            continue
        if local.exists() and sha256_file(local) != sha256_file(cached) and not force:
            raise DownloadError(f"{local} exists and differs from the official {cand.path}; move it away "
                                "or fetch with force")
        shutil.copyfile(cached, local)
        try:
            _register(local, preset, file_url(cand.path), cand.path, notes, dest / "manifest.json")
        except DownloadError:
            local.unlink(missing_ok=True)
            raise
        say(f"{preset}: {local} verified ({cand.path})")
        return local
    raise DownloadError(f"no file of {repo_id()} is the {preset} network: " + "; ".join(reasons))


@dataclass
class FetchReport:
    """What ``fetch_many`` got: preset -> path, preset -> why not, and a hub-wide problem if any."""

    fetched: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    problem: str = ""

    def line(self) -> str:
        """One line for the log and the top of the app."""
        n = len(self.fetched) + len(self.failed)
        if self.problem:
            return f"Official weights not fetched: {self.problem}."
        text = f"Official weights: {len(self.fetched)} of {n} present"
        if self.failed:
            text += "; not available: " + ", ".join(sorted(self.failed))
        return text + "."


def fetch_many(presets: Iterable[str], dest: str | Path, *, cache_dir: str | Path | None = None,
               log: Log | None = None, tqdm_class: Any = None) -> FetchReport:
    """Fetch several presets with one listing; never raises for hub trouble (see the report)."""
    report = FetchReport()
    presets = list(presets)
    try:
        files = list_official(cache_dir)
    except DownloadError as err:
        report.problem = str(err)
        report.failed = dict.fromkeys(presets, str(err))
        return report
    for preset in presets:
        try:
            report.fetched[preset] = fetch(preset, dest, files=files, cache_dir=cache_dir, log=log,
                                           tqdm_class=tqdm_class)
        except DownloadError as err:
            report.failed[preset] = str(err)
            if log:
                log(f"{preset}: {err}")
    return report


def register_local(file: str | Path, preset: str, dest: str | Path,
                   cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """Copy a file fetched by hand into ``dest`` and record it; returns (path, source).

    The source is "official" only when the file's content equals that of an official file the listing
    names (sha256 or git blob id, ``same_content``; needs the hub); otherwise "user file", whatever its name.
    """
    from model.hub.weights import manifest_entry, sha256_file, upsert_manifest

    file, dest = Path(file), Path(dest)
    _, notes = verify(file, preset)
    try:
        listed = list_official(cache_dir)
        why = "its content is not that of any of the official repository's files"
    except DownloadError as err:
        listed, why = [], f"the official repository could not be checked ({err})"
    by_hash = {f.sha256: f for f in listed if f.sha256} | {f.git_oid: f for f in listed if f.git_oid}
    match = by_hash.get(sha256_file(file)) or by_hash.get(git_blob_id(file))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / file.name
    if not path.exists() or not path.samefile(file):
        shutil.copyfile(file, path)
    if match is not None:
        kind = "sha256" if match.sha256 else "git blob id"
        source, text = "official", f"official {preset} ({repo_id()}: {match.path}; {kind} checked)"
    else:
        source, text = "user file", f"registered by hand as {preset}; not marked official: {why}"
    entry = manifest_entry(path, source=source, url=file_url(match.path) if match else None,
                           notes="; ".join([text] + notes))
    try:
        upsert_manifest(entry, dest / "manifest.json")
    except ValueError as err:
        raise DownloadError(f"{dest / 'manifest.json'} is broken ({err}); fix or move it") from err
    return path, source


def default_dest() -> Path:
    """``<weights folder>/official``: ``MAMBAIR_WEIGHTS_DIR`` when set, else weights/ of the project."""
    root = os.environ.get("MAMBAIR_WEIGHTS_DIR") or Path(__file__).resolve().parent.parent / "weights"
    return Path(root) / OFFICIAL_DIR


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m model.hub.download", description=__doc__.split("\n")[0])
    ap.add_argument("presets", nargs="*", help="preset names, e.g. mambairv2_lightSR_x4 (default: the app's)")
    ap.add_argument("--dest", default=None, help="default: <weights>/official")
    ap.add_argument("--local", default=None, help="register a file you downloaded by hand (one preset)")
    ap.add_argument("--force", action="store_true", help="download again even if the file is present")
    ap.add_argument("--list", action="store_true", help="list the repository's files and what each preset "
                                                        "would try")
    a = ap.parse_args(argv)
    dest = Path(a.dest) if a.dest else default_dest()
    presets = a.presets or list(APP_PRESETS)
    try:
        if a.list:
            from model.config import PRESETS

            files = list_official()
            print(f"{repo_id()} at {endpoint()}: {len(files)} files")
            for p in sorted(PRESETS):
                print(f"{p:<28} {', '.join(f.path for f in candidates_for(p, files)) or '(none)'}")
            return 0
        if a.local:
            if len(presets) != 1:
                raise DownloadError("--local takes exactly one preset")
            path, source = register_local(a.local, presets[0], dest)
            print(f"{presets[0]}: {path} registered as {source}")
            return 0
    except DownloadError as err:
        print(f"error: {err}\n{manual_help(dest)}", file=sys.stderr)
        return 1
    report = fetch_many(presets, dest, log=print)
    print(report.line())
    if report.problem:
        print(manual_help(dest), file=sys.stderr)
    return 0 if not report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
