"""Figures of viz.evidence on tiny random networks: each checked against the numbers it should show."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import V1_CFG, V2_CFG

from model.analysis import evidence as ev
from model.archs import build
from model.capture import capture
from model.scan import selective_scan_ref
from viz import evidence as vz

pytestmark = pytest.mark.usefixtures("ref_scan")


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 12, 14, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def recs(image):
    torch.manual_seed(0)
    v2, v1 = build(V2_CFG), build(V1_CFG)
    with capture(v2) as r2, capture(v1) as r1, torch.no_grad():
        v2(image)
        v1(image)
    return r2.assm, r1.ss2d


def test_decay_profile_equals_the_scan_jacobian():
    g = torch.Generator().manual_seed(1)
    L, D, N = 12, 2, 3
    sc = {"u": torch.randn(1, D, L, generator=g), "delta": torch.randn(1, D, L, generator=g),
          "A": -torch.rand(D, N, generator=g) - 0.1, "B": torch.randn(1, N, L, generator=g),
          "C": torch.randn(1, N, L, generator=g), "D": torch.ones(D), "delta_bias": torch.zeros(D),
          "delta_softplus": True}
    prof = vz.decay_profile({"scan": sc}, queries=1, seed=5)
    i = int(np.random.default_rng(5).integers(L // 2, L, size=1)[0])  # the query decay_profile draws
    u = sc["u"].double().requires_grad_(True)
    y = selective_scan_ref(u, sc["delta"].double(), sc["A"].double(), sc["B"].double(), sc["C"].double(),
                           None, None, sc["delta_bias"].double(), True)
    jac = torch.stack([torch.autograd.grad(y[0, d, i], u, retain_graph=True)[0][0, d] for d in range(D)])
    for k in range(1, i + 1):
        assert prof["weight"][k] == pytest.approx(jac[:, i - k].abs().mean().item(), rel=1e-6)
    dl = torch.nn.functional.softplus(sc["delta"][0].double()).mean(1)  # (D,)
    want = torch.exp(dl[:, None] * sc["A"].double() * 3).mean().item()
    assert prof["envelope"][3] == pytest.approx(want)
    assert prof["envelope"][0] == pytest.approx(1.0)


def test_redundancy_figure_shows_the_table(recs):
    _, ss2d = recs
    fig = vz.redundancy_figure(ss2d)
    bars = [t for t in fig.data if t.type == "bar"][0]
    np.testing.assert_allclose(bars.y, [r["mean"] for r in ev.redundancy_table(ss2d)])
    assert "0.7" in fig.layout.title.text
    with pytest.raises(ValueError, match="MambaIR"):
        vz.redundancy_figure([])


def test_decay_figure_for_both_networks(recs):
    assm, ss2d = recs
    fig = vz.decay_figure(assm[0], queries=4)
    bar = [t for t in fig.data if t.type == "bar"][0]
    d = ev.label_distances(assm[0])
    assert list(bar.y) == pytest.approx([d["raster"], d["scan"]])
    fig1 = vz.decay_figure(ss2d[0], queries=4)
    assert not [t for t in fig1.data if t.type == "bar"]  # no labels in MambaIR
    assert ev.UNTRAINED_NOTE[:40] in vz.decay_figure(assm[0], queries=2, untrained=True).layout.title.text


def test_ase_query_figure_maps(recs, image):
    assm, _ = recs
    img = image[0].permute(1, 2, 0).numpy()
    fig = vz.ase_query_figure(assm[1], (4, 6), img)
    heat = [t for t in fig.data if t.type == "heatmap"]
    np.testing.assert_allclose(heat[0].z, ev.ase_query_map(assm[1], (4, 6), "official", (12, 14)))
    np.testing.assert_allclose(heat[1].z, ev.ase_query_map(assm[1], (4, 6), "aligned", (12, 14)))
    assert "sorted position" in fig.layout.title.text


def test_ablation_markdown_and_difference():
    a = np.zeros((4, 5, 3))
    b = a.copy()
    b[1, 2] = 10 / 255
    outs = {"as trained": a, "SGN off": b}
    md = vz.ablation_markdown(outs, [{"variant": "as trained", "psnr": 40.0, "ssim": 0.9},
                                     {"variant": "SGN off", "psnr": 39.0, "ssim": 0.8}])
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "variant" not in ln and "---" not in ln]
    assert len(rows) == 2 and "39.00" in rows[1] and "0.8000" in rows[1]
    assert f"{10 / 20:.3f}" in rows[1]  # mean |change| = 10/255 on 1 of 20 pixels, in 1/255 units
    diff = vz.difference_image(a, b, gain=255 / 10)
    assert diff.shape == (4, 5, 3) and diff.dtype == np.uint8
    assert (diff[1, 2] != diff[0, 0]).any() and (diff[0, 0] == diff[3, 4]).all()


def test_prompt_quality_and_cost_figures(recs, image):
    assm, _ = recs
    rows = ev.prompt_quality_table(assm, image[0].permute(1, 2, 0).numpy())
    fig = vz.prompt_quality_figure(rows)
    assert list(fig.data[1].y) == pytest.approx([r["feature_ratio"] for r in rows])
    from model.evaluation.profile import count

    res = []
    for hw in ((8, 8), (16, 16)):
        counted = count(build(V2_CFG), torch.rand(1, 3, *hw))
        res.append({"preset": "tiny", "size": list(hw), "backend": "ref", **counted})
    cost = vz.cost_figure(res)
    assert list(cost.data[0].x) == [64, 256] and cost.data[0].y[1] > cost.data[0].y[0]
