"""The paper's claims as numbers (model.analysis.evidence) on tiny random networks, each against a direct
computation.

Letters: B batch, L tokens, D scan channels, N d_state, K scans.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import V2_CFG, randomize

import model.scan as scan
from model.analysis import evidence as ev
from model.archs import build, get_options, set_options
from model.archs.mambairv2 import ASSM
from model.capture import capture

pytestmark = pytest.mark.usefixtures("ref_scan")


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 12, 14, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def v2rec(v2net, image):
    with capture(v2net) as rec, torch.no_grad():
        v2net(image)
    return rec.assm


def test_scan_redundancy_equals_cosine_of_captured_outputs(v1net, image):
    with capture(v1net) as rec, torch.no_grad():
        v1net(image)
    r = rec.ss2d[0]
    h, w = r["grid"]
    out = r["scan_out"][0].double()  # (K*D, L) scan order
    d = out.shape[0] // 4
    # Back to raster order as SS2D.forward_core does: un-flip the reversed scans, transpose column-major.
    row, col = out[:d], out[d:2 * d].reshape(d, w, h).transpose(1, 2).reshape(d, -1)
    rrow = out[2 * d:3 * d].flip(-1)
    rcol = out[3 * d:].flip(-1).reshape(d, w, h).transpose(1, 2).reshape(d, -1)
    vs = [row, col, rrow, rcol]
    want = np.array([[F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item() for b in vs] for a in vs])
    got = ev.scan_redundancy(r)
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert not np.allclose(got, 1.0)  # random scans are not identical
    # The sum of the raster-ordered outputs is what SS2D adds up; a wrong reordering would break this.
    table = ev.redundancy_table(rec.ss2d)
    assert len(table) == 3 and table[0]["mean"] == pytest.approx(want[~np.eye(4, dtype=bool)].mean())


def test_ss2d_outputs_raster_sum_is_the_layer_core(v1net, image):
    """The four outputs in raster order sum to SS2D.forward_core's result."""
    m = v1net.layers[0].residual_group.blocks[0].self_attention
    x = torch.randn(1, m.d_inner, 5, 7, generator=torch.Generator().manual_seed(0))
    with capture(v1net) as rec, torch.no_grad():
        core = m.forward_core(x)  # (1, H, W, D)
    got = ev.ss2d_outputs_raster(rec.ss2d[0]).sum(0)  # (D, L)
    torch.testing.assert_close(got, core[0].reshape(-1, m.d_inner).t().double(), atol=1e-5, rtol=1e-5)


def _assm_direct(m: ASSM, x: torch.Tensor, size: tuple[int, int], token: torch.nn.Embedding,
                 perm: torch.Tensor, prompt_on: bool) -> torch.Tensor:
    """The ASSM forward written out with a given permutation (official prompt order)."""
    b, l, c = x.shape
    pool = m.embeddingB.weight @ token.weight
    policy = F.one_hot(m.route(x).argmax(-1), m.num_tokens).to(x.dtype)
    prompt = policy @ pool if prompt_on else torch.zeros(b, l, pool.shape[1])
    f = m.in_proj(x.transpose(1, 2).reshape(b, c, *size))
    f = (f * torch.sigmoid(m.CPE(f))).flatten(2).transpose(1, 2)  # (b, l, d)
    y = m.selectiveScan(f[:, perm], prompt)
    return m.out_proj(m.out_norm(y))[:, torch.argsort(perm)]


def test_sgn_off_equals_identity_permutation(v2net):
    layer = v2net.layers[0].residual_group.layers[0]
    m = layer.assm
    x = torch.randn(1, 8 * 8, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        set_options(v2net, sgn="off")
        off = m(x, (8, 8), layer.embeddingA)
        set_options(v2net, sgn="on")
        on = m(x, (8, 8), layer.embeddingA)
        direct_id = _assm_direct(m, x, (8, 8), layer.embeddingA, torch.arange(64), True)
        labels = m.route(x).argmax(-1)[0]
        direct_sorted = _assm_direct(m, x, (8, 8), layer.embeddingA, torch.sort(labels, stable=True)[1], True)
    torch.testing.assert_close(off, direct_id, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(on, direct_sorted, atol=1e-5, rtol=1e-5)
    assert (off - on).abs().max() > 1e-4  # the permutation matters for this layer


def test_prompt_off_equals_zero_prompt(v2net):
    layer = v2net.layers[0].residual_group.layers[1]
    m = layer.assm
    x = torch.randn(1, 64, 12, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        set_options(v2net, prompt="off")
        off = m(x, (8, 8), layer.embeddingA)
        set_options(v2net, prompt="on")
        labels = m.route(x).argmax(-1)[0]
        direct = _assm_direct(m, x, (8, 8), layer.embeddingA, torch.sort(labels, stable=True)[1], False)
    torch.testing.assert_close(off, direct, atol=1e-5, rtol=1e-5)


def test_options_validated_and_defaults_unchanged(v2net):
    assert get_options(v2net)["sgn"] == "on" and get_options(v2net)["prompt"] == "on"
    with pytest.raises(ValueError, match="sgn"):
        set_options(v2net, sgn="maybe")
    with pytest.raises(ValueError, match="prompt"):
        set_options(v2net, prompt="no")


def test_knockouts_outputs_and_options_restored(v2net, image):
    set_options(v2net, prompt_order="official")
    outs = ev.knockouts(v2net, image)
    assert list(outs) == list(ev.VARIANTS)
    with torch.no_grad():
        base = v2net(image)
        set_options(v2net, sgn="off")
        sgn_off = v2net(image)
        set_options(v2net, sgn="on")
    torch.testing.assert_close(outs["as trained"], base)
    torch.testing.assert_close(outs["SGN off"], sgn_off)
    assert (outs["prompt off"] - base).abs().max() > 1e-5
    assert get_options(v2net)["sgn"] == "on" and get_options(v2net)["prompt_order"] == "official"
    gt = image[0].permute(1, 2, 0).numpy().repeat(2, 0).repeat(2, 1)
    as_hwc = {k: v[0].clamp(0, 1).permute(1, 2, 0).numpy() for k, v in outs.items()}
    rows = ev.knockout_metrics(as_hwc, gt, 2, True)
    assert [r["variant"] for r in rows] == list(ev.VARIANTS)
    assert all(np.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1 for r in rows)


def test_knockouts_refuse_mambair(v1net, image):
    with pytest.raises(ValueError, match="MambaIRv2"):
        ev.knockouts(v1net, image)


def test_label_distances_against_all_pairs(v2rec):
    r = v2rec[0]
    labels = r["labels"][0].numpy()
    inv = r["inv_perm"][0].numpy()
    raster, scanned = [], []
    for p in range(labels.size):
        for q in range(p + 1, labels.size):
            if labels[p] == labels[q]:
                raster.append(q - p)
                scanned.append(abs(int(inv[q]) - int(inv[p])))
    got = ev.label_distances(r)
    assert got["pairs"] == len(raster)
    assert got["raster"] == pytest.approx(np.mean(raster))
    assert got["scan"] == pytest.approx(np.mean(scanned))
    assert got["scan"] <= got["raster"]  # sorting packs each group into one run


def test_ase_query_map_direct(v2rec):
    r = v2rec[1]
    hp, wp = r["grid"]
    q = (3, 5)
    qi = q[0] * wp + q[1]
    inv = r["inv_perm"][0]
    C = r["C"][0].double()
    prompt = r["prompt"][0].double()
    for order, p in (("official", prompt[int(inv[qi])]), ("aligned", prompt[qi])):
        got = ev.ase_query_map(r, q, order, image_hw=(12, 14))
        assert got.shape == (12, 14)
        for j in ((0, 0), (11, 13), (3, 5)):
            ji = j[0] * wp + j[1]
            want = F.cosine_similarity(C[int(inv[ji])], p, dim=0).item()
            assert got[j] == pytest.approx(want, abs=1e-9)
    assert "sorted position" in ev.ase_query_note(r, q)
    with pytest.raises(ValueError):
        ev.ase_query_map(r, (12, 0), image_hw=(12, 14))


def test_within_group_fraction_and_neighbours_by_hand():
    v = np.array([[0.0], [2.0], [10.0], [12.0]])
    # group means 1 and 11: within = 1+1+1+1 = 4; total around 6: 36+16+16+36 = 104
    assert ev.within_group_fraction(v, np.array([0, 0, 1, 1])) == pytest.approx(4 / 104)
    assert ev.within_group_fraction(v, np.array([0, 1, 2, 3])) == 0.0
    lab = np.array([[0, 0, 1], [0, 1, 1]])
    # horizontal pairs: (0,0) same, (0,1) no, (0,1) no, (1,1) same; vertical: 0-0 same, 0-1 no, 1-1 same
    assert ev.neighbour_agreement(lab) == pytest.approx(4 / 7)


def test_prompt_quality_on_a_constructed_record():
    """Labels that split an image into two flat halves are coherent; the numbers say so."""
    hp, wp = 8, 8
    img = np.zeros((8, 8, 3), np.float32)
    img[:, 4:] = 1.0
    img += np.random.default_rng(0).normal(0, 0.01, img.shape).astype(np.float32)
    labels = torch.tensor((np.arange(64) % 8 >= 4).astype(np.int64))[None]  # right half label 1
    perm = torch.sort(labels, stable=True)[1]
    inv = torch.argsort(perm, dim=1)
    u = torch.tensor(img.reshape(64, 3).T)[None][:, :, perm[0]]  # (1, 3, L) scan order
    rec = {"grid": (hp, wp), "labels": labels, "inv_perm": inv, "scan": {"u": u}}
    q = ev.prompt_quality(rec, img)
    assert q["input_ratio"] < 0.01 and q["feature_ratio"] < 0.01
    assert q["neighbours"] == pytest.approx(1 - 8 / 112)
    assert q["neighbours_chance"] == pytest.approx(0.5)


def test_prompt_quality_table_runs_on_capture(v2rec, image):
    rows = ev.prompt_quality_table(v2rec, image[0].permute(1, 2, 0).numpy())
    assert len(rows) == 3
    assert all(np.isfinite(r["feature_ratio"]) and np.isfinite(r["input_ratio"]) for r in rows)


def test_router_untrained_rule(v2rec):
    L, t = v2rec[0]["route_logp"].shape[1:]
    uniform = dict(v2rec[0], route_logp=torch.full((1, L, t), -float(np.log(t))))
    sure = torch.tensor([9.0] + [0.0] * (t - 1)).expand(1, L, t)  # (1, L, T) one prompt preferred
    peaked = dict(v2rec[0], route_logp=torch.log_softmax(sure, -1))
    assert ev.router_untrained([uniform])
    assert ev.router_untrained([uniform, uniform, peaked])  # most layers near uniform
    assert not ev.router_untrained([uniform, peaked])
    assert ev.mean_max_route_prob(uniform) == pytest.approx(1 / t)


def test_redundancy_without_skip_is_the_state_part(v1net, image):
    with capture(v1net) as rec, torch.no_grad():
        v1net(image)
    r = rec.ss2d[1]
    scan_args = r["scan"]
    u, delta, A, B, C = (scan_args[k].double() for k in ("u", "delta", "A", "B", "C"))
    # The scan without D, run directly, is the state part of each output.
    y = scan.selective_scan_ref(u, delta, A, B, C, None, None, scan_args["delta_bias"].double(), True)[0]
    orders = r["orders"]
    d = y.shape[0] // 4
    vs = []
    for k in range(4):
        v = torch.empty(d, y.shape[1], dtype=torch.float64)
        v[:, orders[k]] = y[k * d:(k + 1) * d]
        vs.append(F.normalize(v.flatten(), dim=0))
    want = torch.stack(vs) @ torch.stack(vs).T
    np.testing.assert_allclose(ev.scan_redundancy(r, skip=False), want.numpy(), atol=1e-5)
    row = ev.redundancy_table([r])[0]
    assert row["mean_state"] == pytest.approx(float(want[~torch.eye(4, dtype=bool)].mean()), abs=1e-5)


def test_command_line_report(tmp_path, v2net, v1net, capsys):
    from PIL import Image

    yy, xx = np.mgrid[0:24, 0:28]
    Image.fromarray(np.stack([xx * 9, yy * 10, (xx + yy) * 4], -1).astype(np.uint8)).save(tmp_path / "p.png")
    for name, net in (("v2.pth", v2net), ("v1.pth", v1net)):
        torch.save({"params": net.state_dict()}, tmp_path / name)
    ev.main([str(tmp_path / "v2.pth"), str(tmp_path / "p.png"), "--gt"])
    out = capsys.readouterr().out
    assert "same-label distance" in out and "PSNR-Y" in out
    for v in ev.VARIANTS:
        assert v in out
    ev.main([str(tmp_path / "v1.pth"), str(tmp_path / "p.png")])
    out = capsys.readouterr().out
    assert "state part only" in out and "PSNR" not in out


def test_prompt_quality_series_over_checkpoints(tmp_path, v2net):
    from model.evaluation.degrade import bicubic_downscale, modcrop, to_uint8
    from model.evaluation.metrics import psnr
    from viz.evidence import prompt_quality_series_figure

    run = tmp_path / "run"
    run.mkdir()
    other = randomize(build(V2_CFG), 7)
    torch.save({"params": other.state_dict()}, run / "net_g_100.pth")
    torch.save({"params": v2net.state_dict()}, run / "net_g_20.pth")
    yy, xx = np.mgrid[0:24, 0:28] / 24
    img = np.stack([0.5 + 0.4 * np.sin(6 * yy + c + 3 * xx) for c in range(3)], -1).astype(np.float32)
    rows = ev.prompt_quality_series([run], img, crop=8)
    assert [r["step"] for r in rows] == [20, 100]  # sorted by iteration
    # The first row against a direct computation with v2net.
    gt = modcrop(img, 2)
    lr = to_uint8(bicubic_downscale(gt, 2)).astype(np.float32) / 255.0
    with torch.no_grad():
        out = v2net(torch.from_numpy(lr).permute(2, 0, 1)[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()
        small = np.ascontiguousarray(lr[2:10, 3:11])  # the centre 8x8 of the 12x14 LR
        with capture(v2net) as rec:
            v2net(torch.from_numpy(small).permute(2, 0, 1)[None])
    assert rows[0]["psnr"] == pytest.approx(psnr(to_uint8(out), to_uint8(gt), 2, True))
    want = np.mean([q["feature_ratio"] for q in ev.prompt_quality_table(rec.assm, small)])
    assert rows[0]["feature_ratio"] == pytest.approx(want)
    assert rows[0]["psnr"] != rows[1]["psnr"]
    fig = prompt_quality_series_figure(rows)
    assert list(fig.data[2].y) == pytest.approx([r["psnr"] for r in rows])
