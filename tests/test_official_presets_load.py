"""Each of the 20 official presets: random weights with the official key/shape list load strictly
through ``load_checkpoint`` and are detected as exactly the official configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model import PRESETS, load_checkpoint

SKELETONS = json.loads((Path(__file__).parent / "data" / "official_skeletons.json").read_text())


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_random_official_weights_load_strictly(name: str) -> None:
    skeleton = SKELETONS[name]
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in skeleton["keys"].items():
        if key.endswith("relative_position_index_SA"):  # an int64 buffer in the official files
            state[key] = torch.zeros(shape, dtype=torch.long)
        else:
            state[key] = torch.randn(shape, generator=gen)
    net = load_checkpoint({"params": state})  # BasicSR layout; strict load inside
    assert type(net).__name__ == skeleton["arch"] == net.config.arch
    assert net.config == PRESETS[name]
    loaded = net.state_dict()
    probe = next(k for k in state if k.endswith("conv_first.weight"))
    assert torch.equal(loaded[probe], state[probe])  # the weights are the file's, not a fresh init
    assert sum(p.numel() for p in net.parameters()) == skeleton["params"]
