"""Detection of architecture and hyper-parameters from the key/shape lists of 20 official models."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from model.config import PRESETS, MambaIRConfig, MambaIRv2Config, MambaIRv2LightConfig
from model.detect import CheckpointError, _ratio, detect_arch, detect_config, expected_shapes, key_group

SKELETONS = json.loads((Path(__file__).parent / "data" / "official_skeletons.json").read_text())


def meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    """A fake state_dict of the official model ``name``: right keys and shapes, no storage."""
    return {k: torch.empty(shape, device="meta") for k, shape in SKELETONS[name]["keys"].items()}


def shapes_of(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(s) for k, s in SKELETONS[name]["keys"].items()}


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_official_skeleton_detected(name: str) -> None:
    cfg = detect_config(meta_state_dict(name))
    assert type(cfg) is type(PRESETS[name])
    assert dataclasses.asdict(cfg) == dataclasses.asdict(PRESETS[name])
    assert cfg.arch == SKELETONS[name]["arch"]
    assert cfg.kwargs() == SKELETONS[name]["config"]


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_expected_shapes_match_official(name: str) -> None:
    expected = expected_shapes(PRESETS[name])
    assert expected == shapes_of(name)
    # The parameter count the official code reports (buffers excluded) follows from the shapes.
    n = sum(math.prod(s) for k, s in expected.items() if k != "relative_position_index_SA")
    assert n == SKELETONS[name]["params"]


def test_shapes_accepted_as_well_as_tensors() -> None:
    name = "mambairv2_lightSR_x4"
    assert detect_config(shapes_of(name)) == detect_config(meta_state_dict(name))


def test_mlp_ratio_is_the_nice_decimal() -> None:
    assert _ratio(72, 60, "MambaIR") == 1.2
    assert _ratio(216, 180, "MambaIR") == 1.2
    assert _ratio(348, 174, "MambaIRv2") == 2.0
    assert _ratio(55, 50, "MambaIR") == 1.1
    for e, r in [(36, 1.5), (48, 2.66), (40, 0.75), (30, 1.3)]:
        got = _ratio(int(e * r), e, "x")
        assert int(e * got) == int(e * r)
        assert len(repr(got)) <= len(repr(r))


def test_realsr_nearest_conv_detected() -> None:
    cfg = PRESETS["MambaIR_realSR_x4"]
    assert detect_config(expected_shapes(cfg)) == cfg


def test_resnet_like_dict_is_refused() -> None:
    sd = {"conv1.weight": (64, 3, 7, 7), "bn1.weight": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
          "fc.weight": (1000, 512), "fc.bias": (1000,)}
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    msg = str(info.value)
    assert "conv_first.weight" in msg and "not a MambaIR" in msg and "conv1.weight" in msg
    assert isinstance(info.value, ValueError)


def test_swinir_like_dict_is_refused() -> None:
    sd = {"conv_first.weight": (60, 3, 3, 3), "layers.0.residual_group.blocks.0.attn.qkv.weight": (180, 60)}
    # 'residual_group.blocks.' is also MambaIR's naming: it is recognised as MambaIR, then the
    # missing groups are named.
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    assert "MambaIR" in str(info.value)


@pytest.mark.parametrize("group", ["assm.route", "embeddingA", "win_mhsa.relative_position_bias_table",
                                   "conv_after_body"])
def test_whole_group_removed_is_named(group: str) -> None:
    sd = {k: v for k, v in shapes_of("mambairv2_classicSR_x2").items() if group not in k}
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    msg = str(info.value)
    assert "MambaIRv2" in msg
    assert group in msg


def test_missing_group_needed_for_detection_is_named() -> None:
    sd = {k: v for k, v in shapes_of("mambairv2_lightSR_x2").items() if "embeddingB" not in k}
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    group = "'layers.*.residual_group.layers.*.assm.embeddingB'"
    assert f"the whole key group {group} is missing" in str(info.value)


def test_missing_group_listed_as_pattern() -> None:
    sd = {k: v for k, v in shapes_of("mambairv2_lightSR_x2").items() if ".assm.CPE." not in k}
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    msg = str(info.value)
    assert "missing key groups" in msg
    assert "'layers.*.residual_group.layers.*.assm.CPE.0' (40 keys)" in msg


def test_unexpected_keys_named() -> None:
    sd = shapes_of("MambaIR_lightSR_x2")
    sd["extra_head.weight"] = (3, 3)
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    assert "unexpected key groups" in str(info.value) and "extra_head" in str(info.value)


def test_shape_that_fits_no_configuration() -> None:
    sd = shapes_of("mambairv2_lightSR_x2")
    sd["layers.2.residual_group.layers.3.wqkv.weight"] = (150, 48)  # should be (3 * 48, 48)
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    msg = str(info.value)
    assert "fit no configuration" in msg and "layers.2.residual_group.layers.3.wqkv.weight" in msg
    assert "[150, 48]" in msg and "[144, 48]" in msg


def test_upsampler_channels_that_fit_no_scale() -> None:
    sd = shapes_of("mambairv2_lightSR_x2")
    sd["upsample.0.weight"] = (21, 48, 3, 3)  # 21 = 7 * 3: 7 is not a square
    with pytest.raises(CheckpointError) as info:
        detect_config(sd)
    assert "upsample.0.weight" in str(info.value) and "scale" in str(info.value)


def test_window_size_that_is_not_square() -> None:
    sd = shapes_of("mambairv2_lightSR_x2")
    sd["relative_position_index_SA"] = (250, 250)
    with pytest.raises(CheckpointError, match="relative_position_index_SA"):
        detect_config(sd)


def test_v2_family_without_ffn_keys() -> None:
    sd = {k: v for k, v in shapes_of("mambairv2_lightSR_x2").items() if "convffn" not in k}
    with pytest.raises(CheckpointError, match="convffn1"):
        detect_arch(sd)


def test_empty_and_non_tensor() -> None:
    with pytest.raises(CheckpointError, match="empty"):
        detect_config({})
    with pytest.raises(CheckpointError, match="not a tensor"):
        detect_config({"conv_first.weight": "hello"})


def test_key_group() -> None:
    assert key_group("layers.3.residual_group.layers.5.assm.in_proj.0.weight") == \
        "layers.*.residual_group.layers.*.assm.in_proj.0"
    assert key_group("layers.1.residual_group.blocks.0.skip_scale") == \
        "layers.*.residual_group.blocks.*.skip_scale"
    assert key_group("conv_first.bias") == "conv_first"


def test_config_classes_cover_all_archs() -> None:
    archs = {type(detect_config(shapes_of(n))) for n in SKELETONS}
    assert archs == {MambaIRv2Config, MambaIRv2LightConfig, MambaIRConfig}


@pytest.mark.parametrize("name", ["mambairv2_lightSR_x2", "mambairv2_SRSmall_x4"])
def test_window_size_from_bias_table_without_index_buffer(name: str) -> None:
    sd = {k: v for k, v in shapes_of(name).items() if k != "relative_position_index_SA"}
    assert detect_config(sd) == PRESETS[name]
