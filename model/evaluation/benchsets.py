"""Image folders as people have them (plain photos, or the SR benchmarks' HR + LR layouts), and the
paper's published numbers per checkpoint and dataset.

Layouts found by ``find_pairs(folder, scale)``, first match wins:
  1. HR and LR sub-folders: HR in ``HR``, ``GTmod12``, ``GTmod{s}``, ``GT`` or ``original``; LR in
     ``LR_bicubic/X{s}`` (DIV2K), ``LRbicx{s}`` (BasicSR's benchmark copies), ``LR/X{s}``, ``LR_x{s}``
     or ``LR``. HR without any LR folder counts as plain HR images.
  2. One folder with ``*_HR.*`` and ``*_LR.*`` files (the ``image_SRF_{s}`` layout of Huang et al.).
  3. Plain images directly in the folder (the LR is made by the caller, MATLAB-style bicubic).
LR files are matched to HR files by name after dropping a scale or HR/LR suffix (``babyx4``,
``baby_x4``, ``baby_LR``, ``img_001_SRF_4_LR`` all pair with ``baby`` / ``img_001``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pair", "find_pairs", "dataset_name", "paper_result", "PAPER", "PAPER_SOURCE", "IMAGE_EXTS"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_HR_DIRS = ("HR", "GTmod12", "GTmod{s}", "GT", "original")
_LR_DIRS = ("LR_bicubic/X{s}", "LR_bicubic/x{s}", "LRbicx{s}", "LR/X{s}", "LR/x{s}", "LR_x{s}", "LR")
_SUFFIX = re.compile(r"([_-]?srf[_-]?\d+)?([_-]?(x\d+|lr|hr|lrbi|bicx?\d*))$", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    """One test image: its name, the HR file and the LR file (None: make the LR by bicubic)."""

    name: str
    hr: Path
    lr: Path | None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _key(stem: str) -> str:
    """The name shared by an HR file and its LR file: the stem without a scale/HR/LR suffix."""
    prev = None
    while prev != stem:
        prev, stem = stem, _SUFFIX.sub("", stem)
    return stem.lower()


def _subdir(folder: Path, names: tuple[str, ...], scale: int) -> Path | None:
    for n in names:
        p = folder / n.format(s=scale)
        if p.is_dir() and _images(p):
            return p
    return None


def _pair_by_name(hr_files: list[Path], lr_files: list[Path], where: str) -> list[Pair]:
    lr_by_key = {}
    for p in lr_files:
        lr_by_key.setdefault(_key(p.stem), p)
    pairs = []
    for h in hr_files:
        k = _key(h.stem)
        if k not in lr_by_key:
            raise FileNotFoundError(f"no LR image for {h.name} in {where}")
        pairs.append(Pair(h.stem, h, lr_by_key[k]))
    return pairs


def find_pairs(folder: str | os.PathLike, scale: int = 1) -> tuple[list[Pair], str]:
    """The test images of ``folder`` and a one-line description of the layout found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    hr_dir = _subdir(folder, _HR_DIRS, scale)
    if hr_dir is not None:
        lr_dir = _subdir(folder, _LR_DIRS, scale) if scale > 1 else None
        if lr_dir is None:
            plain = [Pair(p.stem, p, None) for p in _images(hr_dir)]
            return plain, f"HR images in {hr_dir.name}/, LR made by bicubic"
        pairs = _pair_by_name(_images(hr_dir), _images(lr_dir), str(lr_dir))
        return pairs, f"paired: HR {hr_dir.relative_to(folder)}/, LR {lr_dir.relative_to(folder)}/"
    files = _images(folder)
    hr = [p for p in files if p.stem.lower().endswith("_hr")]
    lr = [p for p in files if p.stem.lower().endswith("_lr")]
    if hr and lr and scale > 1:
        return _pair_by_name(hr, lr, str(folder)), "paired: *_HR / *_LR files"
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) in {folder} and no HR/ sub-folder")
    return [Pair(p.stem, p, None) for p in files], "plain images, LR made by bicubic"


# ---------------------------------------------------------------------------
# The paper's numbers
# ---------------------------------------------------------------------------

_DATASETS = {"set5": "Set5", "set14": "Set14", "b100": "B100", "bsd100": "B100", "bsds100": "B100",
             "urban100": "Urban100", "manga109": "Manga109", "classic5": "Classic5", "live1": "LIVE1",
             "cbsd68": "CBSD68", "kodak24": "Kodak24", "mcmaster": "McMaster"}


def dataset_name(folder: str | os.PathLike) -> str | None:
    """The benchmark a folder holds, from its path (``.../Urban100/HR`` -> 'Urban100'), or None."""
    for part in reversed(Path(folder).resolve().parts):
        name = _DATASETS.get(part.lower())
        if name is not None:
            return name
    return None


PAPER_SOURCE = ("official README of github.com/csguoh/MambaIR (commit 33d7b34, 'Model Summary' table); "
                "SR on Y with crop = scale, denoising PSNR on RGB, JPEG on gray")
# (preset, dataset) -> (PSNR, SSIM or None, level that must match: noise sigma / JPEG quality, else None).
PAPER: dict[tuple[str, str], tuple[float, float | None, float | None]] = {
    ("mambairv2_lightSR_x2", "Urban100"): (33.26, 0.9378, None),
    ("mambairv2_lightSR_x3", "Urban100"): (29.01, 0.8689, None),
    ("mambairv2_lightSR_x4", "Urban100"): (26.82, 0.8079, None),
    ("mambairv2_classicSR_x2", "Urban100"): (34.49, 0.9468, None),
    ("mambairv2_classicSR_x3", "Urban100"): (30.28, 0.8905, None),
    ("mambairv2_classicSR_x4", "Urban100"): (27.89, 0.8344, None),
    ("MambaIR_lightSR_x2", "Urban100"): (32.92, 0.9356, None),
    ("MambaIR_lightSR_x3", "Urban100"): (29.00, 0.8689, None),
    ("MambaIR_lightSR_x4", "Urban100"): (26.75, 0.8051, None),
    ("MambaIR_SR_x2", "Urban100"): (34.15, 0.9446, None),
    ("MambaIR_SR_x3", "Urban100"): (29.93, 0.8841, None),
    ("MambaIR_SR_x4", "Urban100"): (27.68, 0.8287, None),
    ("mambairv2_ColorDN_15", "Urban100"): (35.42, None, 15),
    ("MambaIR_ColorDN_level15", "Urban100"): (35.17, None, 15),
    ("MambaIR_ColorDN_level25", "Urban100"): (32.99, None, 25),
    ("MambaIR_ColorDN_level50", "Urban100"): (30.07, None, 50),
    ("mambairv2_JPEG_q10", "Classic5"): (30.37, 0.8269, 10),
    ("mambairv2_JPEG_q30", "Classic5"): (33.81, 0.897, 30),
    ("mambairv2_JPEG_q40", "Classic5"): (34.64, 0.9093, 40),
    ("MambaIR_CAR_q10", "Classic5"): (30.27, 0.8256, 10),
    ("MambaIR_CAR_q30", "Classic5"): (33.74, 0.8965, 30),
    ("MambaIR_CAR_q40", "Classic5"): (34.53, 0.9084, 40),
}


def paper_result(preset: str | None, dataset: str | None, level: float | None = None
                 ) -> tuple[float, float | None] | None:
    """The paper's (PSNR, SSIM) for this preset on this dataset, or None where the project has none.

    Denoising and JPEG presets of one family share one architecture (``preset_of`` names the first),
    so for them the noise level / JPEG quality ``level`` of the run picks the entry.
    """
    if preset is None or dataset is None:
        return None
    hit = PAPER.get((preset, dataset))
    if hit is not None and hit[2] is None:
        return hit[0], hit[1]
    family = preset.rstrip("0123456789")
    for (p, d), (psnr, ssim, lvl) in PAPER.items():
        if d == dataset and lvl is not None and p.rstrip("0123456789") == family and lvl == level:
            return psnr, ssim
    return None
