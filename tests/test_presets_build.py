"""Every official preset builds with exactly the official state_dict keys, shapes and size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.archs import build
from model.config import PRESETS

SKELETONS = json.loads((Path(__file__).parent / "data" / "official_skeletons.json").read_text())


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_preset_matches_official_skeleton(name: str) -> None:
    skeleton = SKELETONS[name]
    cfg = PRESETS[name]
    assert cfg.arch == skeleton["arch"]
    with torch.device("meta"):  # shapes only: no memory, no init cost
        net = build(cfg)
    assert type(net).__name__ == skeleton["arch"]
    assert net.config is cfg
    assert not net.training
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert sorted(set(shapes) - set(skeleton["keys"])) == []
    assert sorted(set(skeleton["keys"]) - set(shapes)) == []
    wrong = {k: (shapes[k], s) for k, s in skeleton["keys"].items() if shapes[k] != s}
    assert wrong == {}
    assert sum(p.numel() for p in net.parameters()) == skeleton["params"]
