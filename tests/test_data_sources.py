"""The photo set's sources (model.training.data): the lomiri wallpaper photographs, read below a dpkg -x
root."""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.training.data import DEBIAN_PACKAGES, SOURCES, TEST_SOURCES, prepare


def test_sources_are_unique_and_held_out_by_name() -> None:
    names = [s.name for s in SOURCES]
    assert len(names) == len(set(names))  # one name per source photo: the split is by name
    assert set(TEST_SOURCES) <= set(names)
    lomiri = [s for s in SOURCES if s.origin.startswith("lomiri-wallpapers")]
    assert {s.origin for s in lomiri} == {"lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"}
    assert len(lomiri) == 15 and all(s.licence.startswith("CC") for s in lomiri)
    assert {"umang", "fossa", "painting-colors", "infinite-sea"}.isdisjoint(names)  # renders, artwork
    assert set(DEBIAN_PACKAGES) == {"plasma-workspace-wallpapers", "lomiri-wallpapers-16.04",
                                    "lomiri-wallpapers-20.04"}


def test_prepare_reads_package_files_below_root(tmp_path) -> None:
    src = next(s for s in SOURCES if s.name == "kleiber")
    folder = tmp_path / "root" / "usr" / "share" / "backgrounds"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (300, 533, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / src.path.split("/")[-1])
    split = prepare(tmp_path / "out", [src], root=tmp_path / "root")
    assert split["test"] == ["kleiber.png"] and split["train"] == []  # held out; small: one file
    info = split["files"]["kleiber.png"]
    assert info["from"] == "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"  # the path in the package
    assert info["licence"] == "CC-BY-SA-3.0" and info["origin"] == "lomiri-wallpapers-20.04"
