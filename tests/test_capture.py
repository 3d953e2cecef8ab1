"""Recording of ASSM / SS2D internals (model.capture) on tiny random networks.

Letters: B batch, L tokens of the padded grid, T prompts, N d_state, D scan channels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_models import V1_CFG, V2_CFG, randomize

from model.archs import SS2D, set_options
from model.archs.mambairv2 import ASSM, route_policy, route_prompts
from model.capture import capture, is_capturing, ss2d_orders
from model.scan import selective_scan_ref

pytestmark = pytest.mark.usefixtures("ref_scan")


@pytest.fixture(scope="module")
def x_v2():
    # 12 x 20 pads to a 16 x 24 grid (window 8): exercises the flip padding.
    return torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def v2run(v2net, x_v2):
    """One captured forward of v2net, with each ASSM's own output kept by a forward hook."""
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o.detach()))
             for m in v2net.modules() if isinstance(m, ASSM)]
    try:
        with torch.no_grad():
            # Warm-up: torch's first CPU forward can differ from later ones by ~1e-7 (kernel choice);
            # later forwards are bit-identical, which the exact comparisons below rely on.
            v2net(x_v2)
            outputs.clear()
            with capture(v2net) as rec:
                y = v2net(x_v2)
    finally:
        for h in hooks:
            h.remove()
    return y, rec, outputs


def test_assm_record_count_and_positions(v2run) -> None:
    _, rec, _ = v2run
    assert [(r["stage"], r["block"]) for r in rec.assm] == [(0, 0), (0, 1), (1, 0)]
    assert rec.ss2d == []
    for r in rec.assm:
        assert r["grid"] == (16, 24)
        assert r["prompt_order"] == "official"


def test_assm_labels_and_permutation(v2run) -> None:
    _, rec, _ = v2run
    B, L, T, N = 2, 16 * 24, V2_CFG.num_tokens, V2_CFG.d_state
    n_groups = 0
    for r in rec.assm:
        logp, labels, perm, inv = r["route_logp"], r["labels"], r["perm"], r["inv_perm"]
        assert logp.shape == (B, L, T) and logp.dtype == torch.float32
        assert labels.shape == perm.shape == inv.shape == (B, L) and perm.dtype == torch.int64
        assert torch.equal(labels, logp.argmax(-1))
        sorted_labels = labels.gather(1, perm)
        assert (sorted_labels[:, 1:] >= sorted_labels[:, :-1]).all()
        ties = sorted_labels[:, 1:] == sorted_labels[:, :-1]
        assert (perm[:, 1:] > perm[:, :-1])[ties].all()  # stable: raster order inside a group
        ar = torch.arange(L).expand(B, L)
        assert torch.equal(perm.gather(1, inv), ar) and torch.equal(inv.gather(1, perm), ar)
        assert r["prompt_pool"].shape == (T, N)
        assert torch.allclose(r["prompt"], r["prompt_pool"][labels], atol=1e-6)
        n_groups += labels[0].unique().numel()
    assert n_groups > len(rec.assm)  # random routing really uses several prompts


def test_assm_scan_args_reproduce_layer_output(v2run, v2net) -> None:
    _, rec, outputs = v2run
    assms = [m for m in v2net.modules() if isinstance(m, ASSM)]
    assert len(outputs) == len(assms) == len(rec.assm)
    for r, m, out in zip(rec.assm, assms, outputs, strict=True):
        s = r["scan"]
        B, D, L = s["u"].shape
        N = V2_CFG.d_state
        assert s["delta"].shape == (B, D, L) and s["A"].shape == (D, N)
        assert s["B"].shape == s["C"].shape == (B, 1, N, L)
        assert s["D"].shape == s["delta_bias"].shape == (D,) and s["delta_softplus"] is True
        # Official order: the raster-order prompt is added to the scan-order C.
        assert torch.allclose(s["C"][:, 0].transpose(1, 2), r["C"] + r["prompt"], atol=1e-6)
        y = selective_scan_ref(s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"],
                               delta_bias=s["delta_bias"], delta_softplus=True)  # (B, D, L)
        with torch.no_grad():
            z = m.out_proj(m.out_norm(y.transpose(1, 2)))  # (B, L, c) scan order
            z = z.gather(1, r["inv_perm"][..., None].expand_as(z))  # raster order
        assert torch.allclose(z, out, atol=1e-5), (z - out).abs().max()


def test_capture_does_not_change_output_and_stops(v2net, x_v2, v2run) -> None:
    y_cap, rec, _ = v2run
    n = len(rec.assm)
    with torch.no_grad():
        y = v2net(x_v2)
    assert torch.equal(y, y_cap)
    assert len(rec.assm) == n  # nothing recorded after the block
    assert not is_capturing(v2net)
    assert all(m._capture is None for m in v2net.modules() if isinstance(m, ASSM))


def test_prompt_order_aligned(v2net, x_v2, v2run) -> None:
    y_official = v2run[0]
    try:
        set_options(v2net, prompt_order="aligned")
        with torch.no_grad(), capture(v2net) as rec:
            y_aligned = v2net(x_v2)
    finally:
        set_options(v2net, prompt_order="official")
    assert (y_aligned - y_official).abs().max() > 1e-4
    r = rec.assm[0]
    assert r["prompt_order"] == "aligned"
    prompt_sorted = r["prompt"].gather(1, r["perm"][..., None].expand_as(r["prompt"]))
    assert torch.allclose(r["scan"]["C"][:, 0].transpose(1, 2), r["C"] + prompt_sorted, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(v2net(x_v2), y_official)  # back to official


def test_gumbel_routing_is_seedable(v2net, x_v2) -> None:
    x = x_v2[:1, :, :8, :8]

    def run(seed: int):
        set_options(v2net, routing="gumbel", generator=torch.Generator().manual_seed(seed))
        with torch.no_grad(), capture(v2net) as rec:
            y = v2net(x)
        return y, torch.stack([r["labels"] for r in rec.assm])

    try:
        y1, l1 = run(5)
        y2, l2 = run(5)
        y3, l3 = run(6)
    finally:
        set_options(v2net, routing="argmax", generator=None)
    assert torch.equal(y1, y2) and torch.equal(l1, l2)
    assert not torch.equal(l1, l3)
    assert (y1 - y3).abs().max() > 0


def test_route_policy_matches_official_gumbel_softmax() -> None:
    logp = torch.randn(2, 50, 7).log_softmax(-1)
    torch.manual_seed(11)
    official = F.gumbel_softmax(logp, hard=True, dim=-1)
    ours = route_policy(logp, "gumbel", torch.Generator().manual_seed(11))
    assert torch.equal(ours, official)
    # argmax mode: one-hot of the argmax, straight-through gradient of the softmax.
    lg = logp.clone().requires_grad_(True)
    p = route_policy(lg, "argmax")
    assert torch.equal(p.detach().argmax(-1), logp.argmax(-1))
    assert torch.allclose(p.detach(), F.one_hot(logp.argmax(-1), 7).float())
    w = torch.randn_like(p)
    (p * w).sum().backward()
    lg2 = logp.clone().requires_grad_(True)
    (lg2.softmax(-1) * w).sum().backward()
    assert torch.allclose(lg.grad, lg2.grad, atol=1e-6)


@pytest.mark.parametrize("routing", ["argmax", "gumbel"])
def test_route_prompts_without_gradient_are_the_policy_product_bit_for_bit(routing: str) -> None:
    """The no-gradient prompts (a row of the pool times the straight-through value) and labels are
    exactly route_policy @ pool and its argmax; with a gradient they are that product itself."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4000, 64, generator=gen) * 4
    logits[0, :10, :2] = 5.0  # ties: the first maximum is chosen both ways
    logp = logits.log_softmax(-1)
    pool = torch.randn(64, 8, generator=gen)
    policy = route_policy(logp, routing, torch.Generator().manual_seed(5))
    want_prompt, want_labels = policy @ pool, policy.argmax(-1)
    with torch.no_grad():
        prompt, labels = route_prompts(logp, pool, routing, torch.Generator().manual_seed(5))
    assert torch.equal(labels, want_labels) and torch.equal(prompt, want_prompt)
    lg = logp.clone().requires_grad_(True)
    prompt_g, labels_g = route_prompts(lg, pool, routing, torch.Generator().manual_seed(5))
    assert prompt_g.requires_grad and torch.equal(prompt_g.detach(), want_prompt)
    assert torch.equal(labels_g, want_labels)


def test_ss2d_orders() -> None:
    o = ss2d_orders(2, 3)
    assert o.dtype == torch.int64 and o.shape == (4, 6)
    assert o[1].tolist() == [0, 3, 1, 4, 2, 5]  # column-major
    o = ss2d_orders(5, 7)
    assert len({tuple(r.tolist()) for r in o}) == 4
    for r in o:
        assert torch.equal(r.sort().values, torch.arange(35))
    assert torch.equal(o[2], o[0].flip(0)) and torch.equal(o[3], o[1].flip(0))


def test_ss2d_record_parameters_when_the_map_has_as_many_pixels_as_states() -> None:
    """The record's per-channel parameters (A, D, delta bias) and per-step tensors each in scan
    order, also where l = n (a 2x2 map, 4 states: A's shape does not tell it from a step tensor)."""
    from dataclasses import replace

    from model import build

    torch.manual_seed(0)
    net = randomize(build(replace(V1_CFG, depths=(1,))), 3)
    m = next(x for x in net.modules() if isinstance(x, SS2D))
    with torch.no_grad(), capture(net) as rec:
        net(torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(1)))
    s = rec.ss2d[0]["scan"]
    L, D = 4, m.d_inner
    assert L == m.d_state
    assert torch.equal(s["A"], -torch.exp(m.A_logs.float()))
    assert torch.equal(s["D"], m.Ds.float())
    assert torch.equal(s["delta_bias"], m.dt_projs_bias.float().reshape(-1))
    assert s["u"].shape == (1, 4 * D, L) and s["B"].shape == (1, 4, m.d_state, L)


def test_ss2d_records_reproduce_layer_output(v1net) -> None:
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(4))
    io: list[tuple[torch.Tensor, torch.Tensor]] = []
    layers = [m for m in v1net.modules() if isinstance(m, SS2D)]
    hooks = [m.register_forward_hook(lambda m, i, o: io.append((i[0].detach(), o.detach()))) for m in layers]
    try:
        with torch.no_grad(), capture(v1net) as rec:
            y = v1net(x)
    finally:
        for h in hooks:
            h.remove()
    assert y.shape == (1, 3, 20, 28)
    assert rec.assm == []
    assert [(r["stage"], r["block"]) for r in rec.ss2d] == [(0, 0), (0, 1), (1, 0)]
    for r, m, (inp, out) in zip(rec.ss2d, layers, io, strict=True):
        assert r["grid"] == (10, 14)
        L, N, D = 140, V1_CFG.d_state, m.d_inner
        s = r["scan"]
        assert s["u"].shape == s["delta"].shape == (1, 4 * D, L)
        assert s["B"].shape == s["C"].shape == (1, 4, N, L) and s["A"].shape == (4 * D, N)
        assert torch.equal(r["orders"], ss2d_orders(10, 14))
        ys = selective_scan_ref(s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"],
                                delta_bias=s["delta_bias"], delta_softplus=True).view(1, 4, D, L)
        total = torch.zeros(1, D, L)
        for k in range(4):
            total[:, :, r["orders"][k]] += ys[:, k]  # scan position -> raster pixel
        with torch.no_grad():
            z = m.in_proj(inp).chunk(2, dim=-1)[1]  # (1, h, w, D)
            o = m.out_proj(m.out_norm(total.transpose(1, 2).reshape(1, 10, 14, D)) * F.silu(z))
        assert torch.allclose(o, out, atol=1e-5), (o - out).abs().max()


def test_capture_select_and_nesting(v2net) -> None:
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(), capture(v2net, select=lambda stage, block: stage == 1) as rec:
        v2net(x)
        with pytest.raises(RuntimeError):
            with capture(v2net):
                pass
    assert [(r["stage"], r["block"]) for r in rec.assm] == [(1, 0)]
    assert not is_capturing(v2net)
