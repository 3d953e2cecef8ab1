"""Weight averaging (model/training/average.py): the mean of a run's checkpoints as an ordinary BasicSR
file."""

from __future__ import annotations

import pytest
import torch

from model import build, load_checkpoint
from model.training.average import average_state_dicts, main
from tests.tiny_models import V1_CFG, V2_CFG, randomize


def _sd(cfg, seed: int) -> dict[str, torch.Tensor]:
    return randomize(build(cfg), seed).state_dict()


def test_average_is_the_elementwise_mean_and_keeps_integer_buffers():
    sds = [_sd(V2_CFG, s) for s in (1, 2, 3)]
    avg = average_state_dicts(iter(sds))  # a generator is enough: one checkpoint in memory at a time
    assert avg.keys() == sds[0].keys()
    ints = [k for k, t in avg.items() if not t.is_floating_point()]
    assert ints, "the tiny MambaIRv2 has integer buffers (relative position index)"
    for k, t in avg.items():
        assert t.dtype == sds[0][k].dtype
        if k in ints:
            assert torch.equal(t, sds[0][k])
        else:
            torch.testing.assert_close(t, (sds[0][k] + sds[1][k] + sds[2][k]) / 3, rtol=0, atol=1e-6)
    moved = [k for k in avg if k not in ints and not torch.equal(sds[0][k], sds[1][k])]
    assert len(moved) > 0.9 * (len(avg) - len(ints)), "randomize moved the weights: the test means something"


def test_average_refuses_other_networks_and_nothing():
    with pytest.raises(ValueError, match="one network"):
        average_state_dicts([_sd(V2_CFG, 1), _sd(V1_CFG, 1)])
    a, b = _sd(V2_CFG, 1), _sd(V2_CFG, 2)
    k = next(k for k, t in b.items() if not t.is_floating_point())
    b[k] = b[k] + 1
    with pytest.raises(ValueError, match="integer buffer"):
        average_state_dicts([a, b])
    with pytest.raises(ValueError, match="nothing to average"):
        average_state_dicts([])


def test_command_writes_a_file_the_app_loads(tmp_path, capsys):
    paths = []
    for s in (4, 5):
        paths.append(tmp_path / f"net_g_{s}.pth")
        torch.save({"params": _sd(V1_CFG, s)}, paths[-1])
    out = tmp_path / "avg" / "mean.pth"
    main([str(p) for p in paths] + ["--out", str(out)])
    assert "mean of 2 checkpoints; MambaIR x2" in capsys.readouterr().out
    net = load_checkpoint(out)
    a, b = (torch.load(p, weights_only=True)["params"] for p in paths)
    for k, t in net.state_dict().items():
        torch.testing.assert_close(t, (a[k] + b[k]) / 2, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="exists"):  # nothing lost without --force
        main([str(paths[0]), "--out", str(out)])
    main([str(paths[0]), "--out", str(out), "--force"])
    replaced = torch.load(out, weights_only=True)["params"]
    assert torch.equal(replaced["conv_first.weight"], a["conv_first.weight"])
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        main([str(tmp_path / "missing.pth"), "--out", str(tmp_path / "new.pth")])
