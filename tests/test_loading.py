"""Checkpoint reading and loading: wrappers, prefixes, the official test files, and every error case."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model import CheckpointError, config_from_dict, inspect_checkpoint, load_checkpoint, read_state_dict
from model.archs import build
from model.loading import _strict_load

DATA = Path(__file__).parent / "data"
V2L = DATA / "v2light_x2.pth"
V1L = DATA / "mambair_light_x2.pth"


@pytest.fixture(scope="module")
def sd() -> dict[str, torch.Tensor]:
    """The official tiny MambaIRv2Light state_dict (from {'params': ...})."""
    return torch.load(V2L, weights_only=True)["params"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------
# The official test files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v2light_x2", "mambair_light_x2"])
def test_official_files_load_with_their_config(name: str) -> None:
    io = torch.load(DATA / f"{name}.io.pt", weights_only=True)
    net = load_checkpoint(DATA / f"{name}.pth")
    assert net.config.arch == io["arch"]
    want = config_from_dict({"arch": io["arch"], **io["config"]})
    # img_size leaves no trace in a state_dict (the official default 64 is reported).
    assert dataclasses.replace(net.config, img_size=want.img_size) == want
    assert not net.training
    with torch.no_grad():
        out = net(io["input"])
    torch.testing.assert_close(out, io["output"], rtol=0, atol=1e-4)


def _routings(net: torch.nn.Module) -> set[str]:
    return {m.routing for m in net.modules() if hasattr(m, "routing")}


def test_routing_option_is_applied() -> None:
    assert _routings(load_checkpoint(V2L)) == {"argmax"}
    assert _routings(load_checkpoint(V2L, routing="gumbel")) == {"gumbel"}
    with pytest.raises(ValueError):
        load_checkpoint(V2L, routing="sometimes")


def test_inspect_checkpoint(tmp_path: Path) -> None:
    cfg, text = inspect_checkpoint(V2L)
    assert cfg is not None and cfg.arch == "MambaIRv2Light" and cfg.upscale == 2
    assert "MambaIRv2Light" in text and "x2" in text
    cfg, text = inspect_checkpoint(V1L)
    assert cfg is not None and cfg.arch == "MambaIR"
    bad = tmp_path / "notes.pth"
    bad.write_text("not weights")
    cfg, text = inspect_checkpoint(bad)
    assert cfg is None and "not a PyTorch" in text
    assert inspect_checkpoint(tmp_path / "absent.pth")[0] is None


# ---------------------------------------------------------------------------
# Wrappers, prefixes, formats
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", ["bare", "params", "params_ema", "state_dict", "model", "nested"])
def test_wrappers(wrap: str, sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    obj = {"bare": sd, "params": {"params": sd}, "params_ema": {"params_ema": sd},
           "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd, "optimizer": {}},
           "nested": {"state_dict": {"params": sd}}}[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    assert _same(read_state_dict(path), sd)
    assert _same(read_state_dict(obj), sd)
    assert _same(load_checkpoint(path).state_dict(), sd)


def test_legacy_torch_format_and_str_path(sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    torch.save({"params": sd}, path, _use_new_zipfile_serialization=False)
    assert _same(read_state_dict(str(path)), sd)
    assert inspect_checkpoint(str(path))[0] == load_checkpoint(str(path)).config


def test_params_preferred_over_params_ema(sd: dict[str, torch.Tensor]) -> None:
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    assert _same(read_state_dict({"params_ema": ema, "params": sd}), sd)
    assert _same(read_state_dict({"params_ema": ema}), ema)


@pytest.mark.parametrize("prefix", ["module.", "module.module.", "_orig_mod."])
def test_prefixes_stripped(prefix: str, sd: dict[str, torch.Tensor]) -> None:
    wrapped = {"params": {prefix + k: v for k, v in sd.items()}}
    assert _same(read_state_dict(wrapped), sd)
    assert _same(load_checkpoint(wrapped).state_dict(), sd)


def test_safetensors_even_with_a_pth_name(sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    for name in ("w.safetensors", "w.pth"):
        save_file(sd, str(tmp_path / name))
        assert _same(load_checkpoint(tmp_path / name).state_dict(), sd)


def test_half_precision_checkpoint_loads(sd: dict[str, torch.Tensor]) -> None:
    half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    net = load_checkpoint(half)
    assert next(net.parameters()).dtype == torch.float32


# ---------------------------------------------------------------------------
# Errors: always CheckpointError (a ValueError), with a message a user can act on
# ---------------------------------------------------------------------------


def _error(source: object) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(source)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope.pth")
    assert "folder" in _error(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "empty" in _error(tmp_path / "empty.pth")


def test_truncated_files(sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    data = V2L.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(tmp_path / "cut.pth")
    save_file(sd, str(tmp_path / "full.safetensors"))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("content", [b"hello, not a checkpoint at all\n", b"\x89PNG\r\n\x1a\n" + bytes(100)])
def test_not_a_torch_file(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "x.pth").write_bytes(content)
    msg = _error(tmp_path / "x.pth")
    assert "not a PyTorch or safetensors checkpoint" in msg


class _Evil:
    """Unpickling this would create a folder (standing in for any code an attacker wants to run)."""

    marker = ""

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_refused_without_running(writer: str, tmp_path: Path) -> None:
    evil = _Evil()
    evil.marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "hook": evil}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"params": evil}, f, protocol=2)
    msg = _error(path)
    assert "arbitrary code" in msg and "refused" in msg
    assert not (tmp_path / "pwned").exists()
    cfg, reason = inspect_checkpoint(path)
    assert cfg is None and "arbitrary code" in reason
    assert not (tmp_path / "pwned").exists()


def test_not_a_dict(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    msg = _error(tmp_path / "list.pth")
    assert "list" in msg and "not a dict of tensors" in msg


def test_dict_of_non_tensors() -> None:
    assert "non-tensors" in _error({"params": {"lr": 1e-4, "name": "x"}})
    assert "non-tensors" in _error({"epoch": 3, "iter": 100})
    assert "training state" in _error({"epoch": 3, "optimizers": [{}], "schedulers": []})
    assert "empty" in _error({"params": {}})


def test_mixed_tensors_and_other_values(sd: dict[str, torch.Tensor]) -> None:
    msg = _error({**sd, "version": "1.0"})
    assert "'version' (str)" in msg and "not tensors" in msg


def test_state_dict_of_another_network() -> None:
    resnet = {"conv1.weight": torch.zeros(8, 3, 7, 7), "bn1.weight": torch.zeros(8),
              "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)}
    msg = _error({"params": resnet})
    assert "conv_first.weight" in msg and "not a MambaIR/MambaIRv2" in msg and "'conv1.weight'" in msg


def test_v2_with_a_group_removed(sd: dict[str, torch.Tensor]) -> None:
    msg = _error({k: v for k, v in sd.items() if ".assm.route." not in k})
    assert "MambaIRv2Light" in msg and "missing key groups" in msg and "assm.route.0" in msg


def test_shapes_that_fit_no_config(sd: dict[str, torch.Tensor]) -> None:
    bad = dict(sd)
    bad["layers.1.residual_group.layers.0.assm.selectiveScan.A_logs"] = torch.zeros(24, 5)
    msg = _error(bad)
    assert "fit no configuration" in msg and "A_logs" in msg and "[24, 5]" in msg


def test_strict_load_mismatch_is_listed(sd: dict[str, torch.Tensor]) -> None:
    # Detection rejects such dicts first; this checks the second line of defence on its own.
    net = build(load_checkpoint(sd).config)
    bad = {k: v for k, v in sd.items() if "norm1" not in k}
    bad["extra.weight"] = torch.zeros(3)
    bad["conv_first.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as info:
        _strict_load(net, bad)
    msg = str(info.value)
    assert "missing" in msg and "norm1" in msg and "unexpected" in msg and "extra" in msg
    assert "conv_first.bias" in msg and "[5]" in msg


def test_missing_position_index_buffer_is_rebuilt(sd: dict[str, torch.Tensor]) -> None:
    # The buffer follows from window_size; some forks do not save it.
    net = load_checkpoint({k: v for k, v in sd.items() if k != "relative_position_index_SA"})
    assert _same(net.state_dict(), sd)
