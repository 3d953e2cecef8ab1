"""A small set of real photographs for training/evaluating here, with a fixed held-out split.

``python -m model.data prepare --out data/photos`` writes PNG files, ``split.json`` (train/test
file names, and each file's source and licence) and ``SOURCES.md`` (the same as a table).

Sources (only photographs; each one was looked at):
- scikit-image's bundled sample photos (licences from the ``skimage.data`` docstrings);
- the Debian package ``plasma-workspace-wallpapers`` (KDE): the photographic wallpapers only.
  ``ukui-wallpapers`` was also inspected: all of its images are illustrations/renders, none used.

Large images are shrunk (MATLAB bicubic with antialiasing) so the long side is at most 1024 px
and then cut into tiles of at most 512 px, so every stored file has a long side <= 512 px.
The split is by *source photo*: all tiles of one photo sit on the same side, and the test
photos are listed by name in ``TEST_SOURCES`` (never trained on).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .degrade import imresize, to_uint8

__all__ = ["Source", "SOURCES", "TEST_SOURCES", "prepare", "load_split", "list_images", "load_image",
           "write_assets"]

KDE_DIR = Path("/usr/share/wallpapers")
KDE_PKG = "plasma-workspace-wallpapers"
KDE_LICENCE = ("GPL-2+ (Debian copyright file, 'Files: *', 2014 KDE Visual Design Group); "
               "the wallpaper's metadata.json says LGPLv3")


@dataclass(frozen=True)
class Source:
    """One source photograph: where it comes from and under which licence."""

    name: str  # short name; files are <name>.png or <name>_<row><col>.png
    origin: str  # "skimage" or the Debian package name
    path: str  # skimage loader name, or the file path inside the package
    author: str
    licence: str


_SKIMAGE = [
    Source("astronaut", "skimage", "astronaut", "NASA (Eileen Collins portrait)",
           "public domain (NASA), per skimage.data.astronaut"),
    Source("coffee", "skimage", "coffee", "Rachel Michetti / Pikolo Espresso Bar", "CC0"),
    Source("chelsea", "skimage", "chelsea", "Stefan van der Walt", "CC0"),
    Source("rocket", "skimage", "rocket", "SpaceX (DSCOVR launch)", "public domain (SpaceX release)"),
    Source("motorcycle", "skimage", "stereo_motorcycle",
           "Middlebury 2014 stereo benchmark (Scharstein et al.)",
           "no licence stated in skimage; Middlebury datasets are offered for research use"),
]
# The photographic KDE wallpapers; the others in the package are renders/illustrations.
_KDE_PHOTOS = {
    "BytheWater": "Maciej Wiklo", "ColdRipple": "Risto Saukonpää", "ColorfulCups": "Dmitri Popov",
    "DarkestHour": "Risto Saukonpää", "EveningGlow": "Ian Hex", "FallenLeaf": "Martin Klapetek",
    "Grey": "Sigi Sagi", "Kite": "Risto Saukonpää", "OneStandsOut": "Risto Saukonpää",
    "Path": "Risto Saukonpää", "summer_1am": "Risto Saukonpää",
}
SOURCES: list[Source] = _SKIMAGE + [
    Source(name.lower(), KDE_PKG, f"{KDE_DIR}/{name}/contents/images/", author, KDE_LICENCE)
    for name, author in _KDE_PHOTOS.items()
]
# Held-out photos (~20% of the files): never used for training; the app's examples come from here.
TEST_SOURCES = ("chelsea", "coffee", "eveningglow", "path")
ASSET_SOURCES = ("chelsea", "coffee", "eveningglow", "path")

MAX_SIDE = 1024  # shrink to this long side before tiling
TILE = 512  # tiles' long side is at most this


def _largest_image(folder: Path) -> Path:
    files = [p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not files:
        raise FileNotFoundError(f"no images in {folder}; install the Debian package {KDE_PKG}")
    return max(files, key=lambda p: math.prod(Image.open(p).size))


def read_source(src: Source) -> tuple[np.ndarray, str]:
    """Load a source photo as uint8 (H, W, 3) and the exact file/function it came from."""
    if src.origin == "skimage":
        import skimage.data

        img = getattr(skimage.data, src.path)()
        if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
            img = img[0]
        return np.asarray(img)[..., :3], f"skimage.data.{src.path}()"
    path = _largest_image(Path(src.path))
    return np.asarray(Image.open(path).convert("RGB")), str(path)


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    H, W = img.shape[:2]
    if max(H, W) <= max_side:
        return img
    scale = max_side / max(H, W)
    return to_uint8(imresize(img.astype(np.float32) / 255.0, scale))


def _tiles(img: np.ndarray, tile: int) -> list[tuple[str, np.ndarray]]:
    """Split into an even grid of pieces with sides <= ``tile``; suffix '' when it fits already."""
    H, W = img.shape[:2]
    rows, cols = math.ceil(H / tile), math.ceil(W / tile)
    if rows == cols == 1:
        return [("", img)]
    ys = np.linspace(0, H, rows + 1).round().astype(int)
    xs = np.linspace(0, W, cols + 1).round().astype(int)
    return [(f"_{r}{c}", img[ys[r]:ys[r + 1], xs[c]:xs[c + 1]])
            for r in range(rows) for c in range(cols)]


def prepare(out: str | os.PathLike = "data/photos", sources: list[Source] | None = None) -> dict:
    """Write the PNG files, ``split.json`` and ``SOURCES.md`` into ``out``; return the split dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split: dict = {"train": [], "test": [], "files": {}}
    for src in sources or SOURCES:
        img, origin_file = read_source(src)
        # Big photos (wallpapers): shrink to 1024 and tile, keeping more detail than one 512 image;
        # smaller ones: one file shrunk to <= 512.
        small = _shrink(img, MAX_SIDE if max(img.shape[:2]) >= MAX_SIDE else TILE)
        for suffix, piece in _tiles(small, TILE):
            fname = f"{src.name}{suffix}.png"
            Image.fromarray(piece).save(out / fname, optimize=True)
            side = "test" if src.name in TEST_SOURCES else "train"
            split[side].append(fname)
            split["files"][fname] = {"source": src.name, "origin": src.origin, "from": origin_file,
                                     "author": src.author, "licence": src.licence,
                                     "size": [int(piece.shape[1]), int(piece.shape[0])]}
    (out / "split.json").write_text(json.dumps(split, indent=1, ensure_ascii=False))
    (out / "SOURCES.md").write_text(sources_markdown(split))
    return split


def sources_markdown(split: dict) -> str:
    """The split as a markdown table: file, size, split, source, author, licence."""
    lines = ["| file | size (w×h) | split | from | author | licence |",
             "| --- | --- | --- | --- | --- | --- |"]
    for fname, f in split["files"].items():
        side = "test" if fname in split["test"] else "train"
        lines.append(f"| {fname} | {f['size'][0]}×{f['size'][1]} | {side} | `{f['from']}` "
                     f"({f['origin']}) | {f['author']} | {f['licence']} |")
    return "\n".join(lines) + "\n"


def load_split(folder: str | os.PathLike) -> dict:
    """Read ``split.json`` of a prepared folder."""
    path = Path(folder) / "split.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python -m model.data prepare --out {folder}`")
    return json.loads(path.read_text())


def list_images(folder: str | os.PathLike, split: str = "train") -> list[Path]:
    """Paths of the ``split`` images ('train', 'test' or 'all') of a prepared folder."""
    s = load_split(folder)
    names = s["train"] + s["test"] if split == "all" else s[split]
    return [Path(folder) / n for n in names]


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1]."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def write_assets(out: str | os.PathLike = "assets", side: int = 256) -> list[Path]:
    """Save the held-out ASSET_SOURCES photos shrunk to a long side of ``side`` px (app examples)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in SOURCES:
        if src.name not in ASSET_SOURCES:
            continue
        assert src.name in TEST_SOURCES, "app examples must be held-out photos"
        img, _ = read_source(src)
        path = out / f"{src.name}.png"
        Image.fromarray(_shrink(img, side)).save(path, optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: ``prepare --out DIR`` and ``assets --out DIR``."""
    ap = argparse.ArgumentParser(prog="python -m model.data", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the photo set and split.json")
    p.add_argument("--out", default="data/photos")
    a = sub.add_parser("assets", help="write small held-out example photos for the app")
    a.add_argument("--out", default="assets")
    a.add_argument("--side", type=int, default=256)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        split = prepare(args.out)
        files = list(Path(args.out).glob("*.png"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(split['train'])} train + {len(split['test'])} test files, {mb:.1f} MB in {args.out}")
    else:
        for path in write_assets(args.out, args.side):
            print(path)


if __name__ == "__main__":
    main()
