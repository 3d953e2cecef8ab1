"""Checkpoint timeline (model.analysis.timeline, viz.timeline) on tiny MambaIRv2 models saved at a few
iterations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import V2_CFG

from model import CheckpointError, build, load_checkpoint
from model.analysis.router_stats import UNTRAINED_MESSAGE, router_stats
from model.analysis.timeline import checkpoint_step, checkpoint_timeline, list_checkpoints
from model.config import MambaIRConfig, MambaIRv2LightConfig
from viz.timeline import (
    label_grid_image,
    label_maps_figure,
    label_strip,
    main,
    timeline_figure,
    timeline_table,
)

CFG = V2_CFG  # tiny_models: two stages, six prompts


def _bias_router(net: torch.nn.Module, strength: float) -> None:
    """Make every router prefer prompt 1 by ``strength`` nats (a 'trained' router, for the tests)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("assm.route.2.bias"):
                p[1] += strength


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A BasicSR-like run folder: models/net_g_{0,50,200,1000}.pth; the router learns from 200 on."""
    run = tmp_path_factory.mktemp("run")
    (run / "models").mkdir()
    torch.manual_seed(0)
    net = build(CFG)
    for step, strength in ((1000, 6.0), (0, 0.0), (200, 3.0), (50, 0.0)):  # written out of order
        n = build(CFG)
        n.load_state_dict(net.state_dict())
        _bias_router(n, strength)
        torch.save({"params": n.state_dict()}, run / "models" / f"net_g_{step}.pth")
    return run


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def snaps(series, image):
    return checkpoint_timeline([series], image)


def test_list_checkpoints_sorts_by_iteration(series, tmp_path) -> None:
    assert [checkpoint_step(p) for p in list_checkpoints([series])] == [0, 50, 200, 1000]
    assert checkpoint_step("net_g_latest.pth") is None and checkpoint_step("x4_net_g_5000.pth") == 5000
    (tmp_path / "net_g_latest.pth").write_bytes(b"")
    files = list_checkpoints([tmp_path / "net_g_latest.pth", series / "models" / "net_g_200.pth"])
    assert [f.name for f in files] == ["net_g_200.pth", "net_g_latest.pth"]  # no number: last
    with pytest.raises(FileNotFoundError):
        list_checkpoints([tmp_path / "nothing_here"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint files"):
        list_checkpoints([tmp_path / "empty"])


def test_timeline_numbers_equal_router_stats_of_each_checkpoint(snaps, series, image) -> None:
    assert [s.step for s in snaps] == [0, 50, 200, 1000]
    assert [s.untrained for s in snaps] == [True, True, False, False]
    assert snaps[0].layers == ["0.0", "0.1", "1.0"]
    x = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    direct = router_stats(load_checkpoint(series / "models" / "net_g_200.pth"), x)
    for got, want in zip(snaps[2].stats, direct, strict=True):
        assert got["mean_max_prob"] == pytest.approx(want["mean_max_prob"])
        assert got["counts"].tolist() == want["counts"].tolist()
    assert all(lab.shape == (12, 10) for lab in snaps[0].labels)
    assert all((lab == 1).all() for lab in snaps[3].labels)  # the strong bias routes every pixel to 1
    assert snaps[3].stats[0]["used"] == 1 and len(snaps[3].stats[0]["dead"]) == 5


def test_timeline_refuses_mixed_or_routerless_checkpoints(series, image, tmp_path) -> None:
    torch.save({"params": build(MambaIRv2LightConfig(**{**CFG.kwargs(), "num_tokens": 8})).state_dict()},
               tmp_path / "net_g_300.pth")
    with pytest.raises(CheckpointError, match="one training run"):
        checkpoint_timeline([series, tmp_path / "net_g_300.pth"], image)
    v1 = build(MambaIRConfig(upscale=2, img_size=16, embed_dim=30, d_state=4, depths=(1,), mlp_ratio=1.2,
                             upsampler="pixelshuffledirect"))
    torch.save({"params": v1.state_dict()}, tmp_path / "v1.pth")
    with pytest.raises(CheckpointError, match="no router"):
        checkpoint_timeline([tmp_path / "v1.pth"], image)


def _reddish(a: np.ndarray) -> int:
    """Pixels of the flag colour (red text)."""
    a = a.astype(int)
    return int(((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)).sum())


def test_figures_and_pictures_flag_untrained_routers(snaps) -> None:
    fig = timeline_figure(snaps)
    assert len(fig.data) == 4 * 3 and list(fig.data[0].x) == [0, 50, 200, 1000]
    xt = list(fig.data[0].y)  # layer 0.0, mean max prob x T
    assert xt[0] < 2 <= xt[2] < xt[3]
    assert UNTRAINED_MESSAGE not in fig.layout.title.text  # the latest checkpoint routes
    early = timeline_figure(snaps[:2])
    assert UNTRAINED_MESSAGE in early.layout.title.text
    lab = label_maps_figure(snaps, "0.1")
    assert len(lab.data) == 4 and UNTRAINED_MESSAGE in lab.layout.title.text
    assert [("not trained" in a.text) for a in lab.layout.annotations] == [True, True, False, False]
    with pytest.raises(ValueError, match="no ASSM layer"):
        label_maps_figure(snaps, "7.7")
    strip = label_strip(snaps, 0, zoom=3)
    trained = label_strip(snaps[2:], 0, zoom=3)
    assert strip.dtype == np.uint8 and strip.shape[1] > trained.shape[1]
    # Label maps of trained routers are one colour (prompt 1); the flag's red text is only where flagged.
    cap = 30
    assert _reddish(strip[:cap]) > 0 and _reddish(trained[:cap]) == 0
    grid = label_grid_image(snaps)
    row = label_strip(snaps, 0, zoom=2, sentence=False)
    assert grid.shape[0] == 3 * row.shape[0] + 20  # three layers, the sentence once at the bottom
    assert _reddish(grid[-20:]) > 0 and label_strip(snaps, 0, zoom=2).shape[0] > row.shape[0]
    table = timeline_table(snaps)
    rows = [r for r in table.splitlines() if r.strip().startswith("step")]
    assert len(rows) == 4 and rows[0].endswith("router not trained") and rows[3].endswith("routing")


def test_cli_writes_figures_and_table(series, tmp_path, capsys) -> None:
    from PIL import Image

    img = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(img)
    assert main([str(series), "--image", str(img), "--size", "12", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "router not trained" in out and "step 1000" in out
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"labels_all.png", "labels_0.0.png", "labels_1.0.png", "table.txt", "index.json"} <= names
    assert "timeline.png" in names or "timeline.html" in names  # PNG when kaleido finds a browser


def test_training_curves_figure() -> None:
    from viz.timeline import training_curves_figure

    def ev(step: int, xt: list[float], lc: float, gain: float) -> dict:
        layers = [{"mean_max_prob_xT": v, "logit_change": lc} for v in xt]
        return {"step": step, "val_psnr_y": 30.0 + gain, "val_psnr_y_bicubic": 30.0,
                "router": {"layers": layers}}

    runs = {"a": [ev(0, [1.0, 1.0, 1.0], 0.0, 0.5), {"step": 5, "loss": 0.1},
                  ev(10, [1.0, 3.0, 5.0], 0.2, 0.7)],
            "b": [ev(0, [1.0, 1.0, 1.0], 0.0, 0.5)]}
    fig = training_curves_figure(runs)
    assert len(fig.data) == 8 and [t.name for t in fig.data[:4]] == ["a"] * 4
    assert list(fig.data[0].x) == [0, 10] and list(fig.data[0].y) == [1.0, 3.0]  # medians
    assert list(fig.data[1].y) == [1.0, 5.0] and fig.data[3].y[1] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no validation event"):
        training_curves_figure({"c": [{"step": 1, "loss": 0.2}]})
