"""A small set of real photographs for training/evaluating here, with a fixed held-out split.

``python -m model.training.data prepare --out data/photos`` writes PNG files, ``split.json`` (train/test
file names, and each file's source and licence) and ``SOURCES.md`` (the same as a table).

Sources (only photographs; each one was looked at):
- scikit-image's bundled sample photos (licences from the ``skimage.data`` docstrings);
- the Debian package ``plasma-workspace-wallpapers`` (KDE): the photographic wallpapers only.
  ``ukui-wallpapers`` was also inspected: all of its images are illustrations/renders, none used.
- the Debian packages ``lomiri-wallpapers-16.04`` and ``lomiri-wallpapers-20.04`` (Ubuntu
  photo-contest wallpapers): the photographs only, each file's author and licence from the
  package's ``copyright`` file. Left out as not photographs: ``umang_by_Abhishek_Mudgal``
  (16.04), ``Fossa_by_Jasper_Roks``, ``Painting-Colors_by__herobrine7gamer`` (renders) and
  ``Infinite-Sea_by_Aury88`` (a composite artwork) (20.04).

The Debian files are read below ``--root`` (default ``/``, the installed packages);
``python -m model.training.data debs --out data/debs`` downloads the three packages with
``apt-get download`` and unpacks them with ``dpkg -x`` into ``data/debs/root`` (no root rights
needed), then ``prepare --root data/debs/root``.

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
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.evaluation.degrade import imresize, to_uint8

__all__ = ["Source", "SOURCES", "TEST_SOURCES", "DEBIAN_PACKAGES", "prepare", "load_split", "list_images",
           "load_image", "write_assets", "download_debs"]

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
LOMIRI_DIR = "/usr/share/backgrounds"
# Photographs of the lomiri wallpaper packages: file -> (author, licence), as the package's
# /usr/share/doc/<package>/copyright states them ("Files: 16.04/<file>" stanzas).
_LOMIRI_PHOTOS = {
    "lomiri-wallpapers-16.04": {
        "aitzgorri_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi, 2018", "CC-BY-4.0"),
        "analogpattern_by_Peter_Nerlich.jpg": ("Peter Nerlich, 2018", "CC-BY-SA-4.0"),
        "Bridge_by_Sander_Klootwijk.jpg": ("Sander Klootwijk, 2018", "CC-BY-SA-4.0"),
        "Dragonfly_by_Bolly.jpg": ('"Bolly", 2018', "CC-BY-SA-4.0"),
        "free_by_Peter_Nerlich.jpg": ("Peter Nerlich, 2018", "CC-BY-SA-4.0"),
        "friends_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi, 2018", "CC-BY-4.0"),
        "greentock_by_Peter_Nerlich.jpg": ("Peter Nerlich, 2018", "CC-BY-SA-4.0"),
        "life_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi, 2018", "CC-BY-4.0"),
        "picosdeeuropa_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi, 2018", "CC-BY-4.0"),
        "Picture_0B_by_freespace.jpg": ('Trevor "Freespace", 2018', "CC-BY-4.0"),
        "Picture_1A_by_freespace.jpg": ('Trevor "Freespace", 2018', "CC-BY-4.0"),
        "seeding_by_Clements_Engelhardt.jpg": ("Clemens Engelhardt, 2018", "CC0-1.0"),
        "sunset_by_Aitzol_Berasategi.jpg": ("Aitzol Berasategi, 2018", "CC-BY-4.0"),
        "Wine_by_Jakkub_Mede.jpg": ("Jakub Mede, 2018", "CC-BY-4.0"),
    },
    "lomiri-wallpapers-20.04": {
        "Kleiber_by_Lukas_Baubkus.jpg": ("Lukas Baubkus, 2021", "CC-BY-SA-3.0"),
    },
}
DEBIAN_PACKAGES = (KDE_PKG, *_LOMIRI_PHOTOS)

SOURCES: list[Source] = _SKIMAGE + [
    Source(name.lower(), KDE_PKG, f"{KDE_DIR}/{name}/contents/images/", author, KDE_LICENCE)
    for name, author in _KDE_PHOTOS.items()
] + [
    Source(fname.split("_by_")[0].lower(), pkg, f"{LOMIRI_DIR}/{fname}", author, licence)
    for pkg, files in _LOMIRI_PHOTOS.items() for fname, (author, licence) in files.items()
]
# Held-out photos (~20% of the files): never used for training; the app's examples come from here.
TEST_SOURCES = ("chelsea", "coffee", "eveningglow", "path", "picosdeeuropa", "picture_0b", "kleiber")
ASSET_SOURCES = ("chelsea", "coffee", "eveningglow", "path")

MAX_SIDE = 1024  # shrink to this long side before tiling
TILE = 512  # tiles' long side is at most this


def _largest_image(folder: Path, package: str) -> Path:
    """``folder`` itself when it is a file, else its largest image (KDE packs several sizes)."""
    if folder.is_file():
        return folder
    files = [p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not files:
        raise FileNotFoundError(f"no images at {folder}; install the Debian package {package}, or run "
                                "`python -m model.training.data debs --out data/debs` and prepare with "
                                "--root data/debs/root")
    return max(files, key=lambda p: math.prod(Image.open(p).size))


def read_source(src: Source, root: str | os.PathLike = "/") -> tuple[np.ndarray, str]:
    """Load a source photo as uint8 (H, W, 3) and the exact file/function it came from.

    Package files are looked up below ``root`` (``/`` = the installed package); the file name
    recorded is the path inside the package, so split.json does not depend on where it was unpacked.
    """
    if src.origin == "skimage":
        import skimage.data

        img = getattr(skimage.data, src.path)()
        if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
            img = img[0]
        return np.asarray(img)[..., :3], f"skimage.data.{src.path}()"
    root = Path(root)
    path = _largest_image(root / src.path.lstrip("/"), src.origin)
    inside = "/" + str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return np.asarray(Image.open(path).convert("RGB")), inside


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


def prepare(out: str | os.PathLike = "data/photos", sources: list[Source] | None = None,
            root: str | os.PathLike = "/") -> dict:
    """Write the PNG files, ``split.json`` and ``SOURCES.md`` into ``out``; return the split dict.

    ``root``: where the Debian packages' files are (``/`` when installed, or a ``dpkg -x`` folder).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split: dict = {"train": [], "test": [], "files": {}}
    for src in sources or SOURCES:
        img, origin_file = read_source(src, root)
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
        raise FileNotFoundError(
            f"{path} not found: run `python -m model.training.data prepare --out {folder}`")
    return json.loads(path.read_text())


def list_images(folder: str | os.PathLike, split: str = "train") -> list[Path]:
    """Paths of the ``split`` images ('train', 'test' or 'all') of a prepared folder."""
    s = load_split(folder)
    names = s["train"] + s["test"] if split == "all" else s[split]
    return [Path(folder) / n for n in names]


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1]."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def write_assets(out: str | os.PathLike = "assets", side: int = 256,
                 root: str | os.PathLike = "/") -> list[Path]:
    """Save the held-out ASSET_SOURCES photos shrunk to a long side of ``side`` px (app examples)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in SOURCES:
        if src.name not in ASSET_SOURCES:
            continue
        assert src.name in TEST_SOURCES, "app examples must be held-out photos"
        img, _ = read_source(src, root)
        path = out / f"{src.name}.png"
        Image.fromarray(_shrink(img, side)).save(path, optimize=True)
        written.append(path)
    return written


def download_debs(out: str | os.PathLike = "data/debs", packages: tuple[str, ...] = DEBIAN_PACKAGES) -> Path:
    """``apt-get download`` each package into ``out`` (skipped when its .deb is there) and unpack it
    with ``dpkg -x`` into ``out/root``; return that root (pass it to ``prepare``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        debs = list(out.glob(f"{pkg}_*.deb"))
        if not debs:
            print(f"apt-get download {pkg}", flush=True)
            subprocess.run(["apt-get", "download", pkg], cwd=out, check=True)
            debs = list(out.glob(f"{pkg}_*.deb"))
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), str(out / "root")], check=True)
    return out / "root"


def main(argv: list[str] | None = None) -> None:
    """Command line: ``debs --out DIR``, ``prepare --out DIR [--root DIR]`` and ``assets --out DIR``."""
    ap = argparse.ArgumentParser(prog="python -m model.training.data", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the photo set and split.json")
    p.add_argument("--out", default="data/photos")
    p.add_argument("--root", default="/", help="folder holding the Debian packages' files "
                   "(default /: installed; `debs` unpacks them into DIR/root)")
    d = sub.add_parser("debs", help="apt-get download + dpkg -x the Debian wallpaper packages")
    d.add_argument("--out", default="data/debs")
    a = sub.add_parser("assets", help="write small held-out example photos for the app")
    a.add_argument("--out", default="assets")
    a.add_argument("--side", type=int, default=256)
    a.add_argument("--root", default="/", help="as for prepare")
    args = ap.parse_args(argv)
    if args.cmd == "debs":
        print(f"unpacked into {download_debs(args.out)}; now: python -m model.training.data prepare "
              f"--root {Path(args.out) / 'root'}")
    elif args.cmd == "prepare":
        split = prepare(args.out, root=args.root)
        files = list(Path(args.out).glob("*.png"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(split['train'])} train + {len(split['test'])} test files, {mb:.1f} MB in {args.out}")
    else:
        for path in write_assets(args.out, args.side, args.root):
            print(path)


if __name__ == "__main__":
    main()
