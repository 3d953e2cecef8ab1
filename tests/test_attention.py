"""Implicit attention (viz.attention) equals the autograd Jacobian of the reference selective scan.

Synthetic scan arguments with the exact shapes of ``model.capture`` records, and a
real capture of a tiny random MambaIRv2-light / MambaIR.
Letters: D channels of one scan, K scans, N d_state, L tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import capture
from model.scan.ref import selective_scan_ref
from viz.attention import (
    attention_figure,
    implicit_attention_channels,
    implicit_attention_map,
    implicit_attention_row,
)
from viz.sequence import raster_orders


def make_v2_record(hp: int = 6, wp: int = 7, T: int = 4, N: int = 3, D: int = 4, seed: int = 0) -> dict:
    """A synthetic MambaIRv2 ASSM record (contract keys/shapes), batch 1."""
    g = torch.Generator().manual_seed(seed)
    L = hp * wp
    logp = torch.log_softmax(2 * torch.randn(1, L, T, generator=g), dim=-1)  # (1, L, T)
    labels = logp.argmax(-1)  # (1, L)
    perm = torch.sort(labels, dim=-1, stable=True).indices
    inv = torch.argsort(perm, dim=-1)
    pool = torch.randn(T, N, generator=g)
    prompt = pool[labels]  # (1, L, N)
    C = torch.randn(1, L, N, generator=g)
    scan = dict(u=torch.randn(1, D, L, generator=g), delta=torch.randn(1, D, L, generator=g),
                A=-torch.exp(torch.randn(D, N, generator=g)), B=torch.randn(1, 1, N, L, generator=g),
                C=(C + prompt).transpose(1, 2)[:, None], D=torch.randn(D, generator=g),  # (1, 1, N, L)
                delta_bias=0.5 * torch.randn(D, generator=g), delta_softplus=True)
    return dict(stage=0, block=0, grid=(hp, wp), route_logp=logp, labels=labels, perm=perm, inv_perm=inv,
                prompt=prompt, C=C, prompt_pool=pool, prompt_order="official", scan=scan)


def make_ss2d_record(hp: int = 5, wp: int = 6, N: int = 3, D: int = 3, seed: int = 1) -> dict:
    """A synthetic MambaIR SS2D record: four raster scans, grouped B/C (1, 4, N, L), u (1, 4*D, L)."""
    g = torch.Generator().manual_seed(seed)
    L, K = hp * wp, 4
    scan = dict(u=torch.randn(1, K * D, L, generator=g), delta=torch.randn(1, K * D, L, generator=g),
                A=-torch.exp(torch.randn(K * D, N, generator=g)), B=torch.randn(1, K, N, L, generator=g),
                C=torch.randn(1, K, N, L, generator=g), D=torch.randn(K * D, generator=g),
                delta_bias=0.5 * torch.randn(K * D, generator=g), delta_softplus=True)
    return dict(stage=0, block=0, grid=(hp, wp), orders=torch.from_numpy(raster_orders((hp, wp))), scan=scan)


def _scan_kwargs(scan: dict) -> dict:
    return {k: scan[k] for k in ("A", "B", "C", "D", "delta_bias", "delta_softplus")}


def _diag_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """(D, L) d fn(x)[d] / d x[0, d, :] for fn: (1, D, L) -> (D,), channels independent."""
    J = torch.autograd.functional.jacobian(fn, x.float())  # (D, 1, D, L)
    d = J.shape[0]
    return J[torch.arange(d), 0, torch.arange(d)]  # (D, L)


def v2_raster_jacobian(rec: dict, q: int) -> torch.Tensor:
    """(D, L) d y_raster[d, q] / d x_raster[d, :] through sort -> reference scan -> unsort."""
    scan = rec["scan"]
    perm, inv = rec["perm"][0], rec["inv_perm"][0]

    def fn(x):  # x (1, D, L) in raster order
        y = selective_scan_ref(x[:, :, perm], scan["delta"], **_scan_kwargs(scan))  # sorted order
        return y[:, :, inv][0, :, q]  # back to raster, query pixel -> (D,)

    return _diag_jacobian(fn, scan["u"][:, :, inv])


def ss2d_raster_jacobian(rec: dict, q: int) -> torch.Tensor:
    """(D, L) d (sum of the 4 scans' outputs at raster q) / d x_raster, channel-wise."""
    scan = rec["scan"]
    orders = rec["orders"]
    K = orders.shape[0]
    Dk = scan["u"].shape[1] // K

    def fn(x):  # x (1, Dk, L) raster
        u = torch.cat([x[:, :, orders[k]] for k in range(K)], dim=1)  # (1, K*Dk, L) in each scan's order
        y = selective_scan_ref(u, scan["delta"], **_scan_kwargs(scan))  # (1, K*Dk, L)
        out = 0
        for k in range(K):
            inv_k = torch.argsort(orders[k])
            out = out + y[:, k * Dk:(k + 1) * Dk][:, :, inv_k]  # scan k back to raster order
        return out[0, :, q]

    return _diag_jacobian(fn, torch.randn(1, Dk, orders.shape[1]))


# ---------------------------------------------------------------- the row formula
@pytest.mark.parametrize("i", [0, 1, 17, 41])
def test_row_equals_jacobian_of_reference_scan(i: int) -> None:
    rec = make_v2_record()
    scan = rec["scan"]
    def fn(u):
        return selective_scan_ref(u, scan["delta"], **_scan_kwargs(scan))[0, :, i]  # (D,)

    J = _diag_jacobian(fn, scan["u"])  # (D, L)
    row = implicit_attention_row(scan, i)  # (D, i+1)
    assert row.shape == (J.shape[0], i + 1)
    assert torch.allclose(row.float(), J[:, : i + 1], rtol=1e-4, atol=1e-5)
    assert torch.count_nonzero(J[:, i + 1:]) == 0  # causal: nothing after i
    no_skip = implicit_attention_row(scan, i, include_skip=False)
    assert torch.allclose(row[:, i] - no_skip[:, i], scan["D"].double())


def test_row_of_grouped_scan_uses_its_group() -> None:
    rec = make_ss2d_record()
    scan = rec["scan"]
    Dk = scan["u"].shape[1] // 4
    i = 13

    def fn(u):
        return selective_scan_ref(u, scan["delta"], **_scan_kwargs(scan))[0, :, i]  # (4*Dk,)

    J = _diag_jacobian(fn, scan["u"])  # (4*Dk, L)
    for k in range(4):
        row = implicit_attention_row(scan, i, channels=slice(k * Dk, (k + 1) * Dk), group=k)
        assert torch.allclose(row.float(), J[k * Dk:(k + 1) * Dk, : i + 1], rtol=1e-4, atol=1e-5)


def test_long_sequence_is_stable() -> None:
    """Large cumulative decays (L=4096) give finite weights that still match a short direct sum."""
    g = torch.Generator().manual_seed(3)
    D, N, L = 2, 4, 4096
    scan = dict(u=torch.randn(1, D, L, generator=g), delta=torch.full((1, D, L), 2.0),
                A=-torch.arange(1.0, N + 1).repeat(D, 1) * 4, B=torch.randn(1, N, L, generator=g),
                C=torch.randn(1, N, L, generator=g), D=None, delta_bias=None, delta_softplus=False)
    row = implicit_attention_row(scan, L - 1)
    assert torch.isfinite(row).all()
    # Direct: alpha[j=L-2] = sum_n C[L-1, n] exp(delta A[n]) delta B[L-2, n]
    direct = (scan["C"][0, :, -1].double() * torch.exp(2.0 * scan["A"][0].double()) * 2.0
              * scan["B"][0, :, -2].double()).sum()
    assert torch.allclose(row[0, -2], direct)


# ---------------------------------------------------------------- maps on the image
def test_v2_map_equals_raster_jacobian_and_is_causal_in_sorted_order() -> None:
    rec = make_v2_record()
    hp, wp = rec["grid"]
    for q in (0, 9, 23, hp * wp - 1):
        J = v2_raster_jacobian(rec, q).double()  # (D, L)
        m_abs = implicit_attention_map(rec, q)
        m_signed = implicit_attention_map(rec, (q // wp, q % wp), reduce="signed")
        assert m_abs.shape == (hp, wp)
        np.testing.assert_allclose(m_abs.ravel(), J.abs().mean(0).numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(m_signed.ravel(), J.mean(0).numpy(), rtol=1e-4, atol=1e-6)
        # zero exactly for pixels sorted after the query; non-zero for every same-label pixel before it
        inv = rec["inv_perm"][0].numpy()
        after = inv > inv[q]
        assert np.all(m_abs.ravel()[after] == 0)
        same = (rec["labels"][0].numpy() == rec["labels"][0, q].item()) & ~after
        assert np.all(m_abs.ravel()[same] > 0)


def test_v2_reaches_same_label_pixels_far_away() -> None:
    rec = make_v2_record(hp=8, wp=8, T=2, seed=5)
    labels = rec["labels"][0].numpy().reshape(8, 8)
    # pick the last same-label pixel in raster order: it is sorted after all its group mates
    lab = labels[-1, -1]
    m = implicit_attention_map(rec, (7, 7))
    mates = np.argwhere(labels == lab)
    far = mates[np.abs(mates - 7).sum(1) > 8]  # Manhattan distance > 8: not a raster-scan neighbour
    assert len(far) > 0 and np.all(m[far[:, 0], far[:, 1]] > 0)


def test_ss2d_map_equals_sum_of_four_scans() -> None:
    rec = make_ss2d_record()
    hp, wp = rec["grid"]
    orders = rec["orders"].numpy()
    for q in (0, 7, 16, hp * wp - 1):
        J = ss2d_raster_jacobian(rec, q).double()
        m = implicit_attention_map(rec, q)
        np.testing.assert_allclose(m.ravel(), J.abs().mean(0).numpy(), rtol=1e-4, atol=1e-6)
        # non-zero only on pixels visited before (or at) q in at least one order
        before = np.zeros(hp * wp, dtype=bool)
        for k in range(4):
            pos = int(np.flatnonzero(orders[k] == q)[0])
            before[orders[k, : pos + 1]] = True
        assert np.all(m.ravel()[~before] == 0)
        assert np.all(m.ravel()[before] > 0)


def test_map_crops_to_image_and_figure() -> None:
    rec = make_v2_record(hp=8, wp=8)
    m = implicit_attention_map(rec, (3, 2), image_hw=(6, 5))
    full = implicit_attention_map(rec, (3, 2))
    assert m.shape == (6, 5)
    np.testing.assert_array_equal(m, full[:6, :5])
    ch = implicit_attention_channels(rec, (3, 2))
    assert ch.shape == (rec["scan"]["u"].shape[1], 64) and ch.dtype == torch.float64
    img = np.zeros((6, 5, 3), np.uint8)
    fig = attention_figure(m, img, (3, 2))
    kinds = [t.type for t in fig.data]
    assert kinds.count("heatmap") == 1 and kinds.count("image") == 1
    assert [t.x[0] for t in fig.data if t.type == "scatter"] == [2, 2]  # query marked on both panels
    with pytest.raises(ValueError):
        implicit_attention_map(rec, (8, 0))
    with pytest.raises(ValueError):
        implicit_attention_map(rec, 0, reduce="max")


# ---------------------------------------------------------------- real captures
def test_real_capture_v2_light_matches_jacobian() -> None:
    from model.archs import build
    from model.config import MambaIRv2LightConfig

    torch.manual_seed(0)
    net = build(MambaIRv2LightConfig(embed_dim=24, depths=(2, 2), num_heads=(2, 2), window_size=8,
                                     inner_rank=8, num_tokens=16, d_state=4, upscale=2))
    x = torch.rand(1, 3, 12, 14)  # padded to 16 x 16
    with torch.no_grad(), capture(net) as rec:
        net(x)
    assert len(rec.assm) == 4
    r = rec.assm[-1]
    assert tuple(r["grid"]) == (16, 16)
    hp, wp = r["grid"]
    sub_d = 6  # check a few channels only: the Jacobian is per channel
    scan = dict(r["scan"])
    for key in ("u", "delta"):
        scan[key] = scan[key][:, :sub_d]
    for key in ("A", "D", "delta_bias"):
        scan[key] = scan[key][:sub_d]
    small = dict(r, scan=scan)
    for q in (0, 5 * wp + 7, hp * wp - 1):
        J = v2_raster_jacobian(small, q).double()
        m = implicit_attention_map(small, q)
        np.testing.assert_allclose(m.ravel(), J.abs().mean(0).numpy(), rtol=1e-4, atol=1e-6)
    # the captured scan C really is C + the prompt as the record says
    from viz.ase import added_prompt_raster, c_raster

    inv = r["inv_perm"][0]
    diff = (r["scan"]["C"][0, 0].T - r["C"][0])[inv]  # (L, N) added prompt seen from raster pixels
    np.testing.assert_allclose(diff.numpy(), added_prompt_raster(r), rtol=1e-4, atol=1e-5)
    assert c_raster(r).shape == (hp * wp, r["C"].shape[-1])
    # in aligned order the prompt travels with its pixel: still what the scan added
    from model.archs import set_options

    set_options(net, prompt_order="aligned")
    with torch.no_grad(), capture(net) as rec2:
        net(x)
    r2 = rec2.assm[-1]
    assert r2["prompt_order"] == "aligned"
    diff2 = (r2["scan"]["C"][0, 0].T - r2["C"][0])[r2["inv_perm"][0]]
    np.testing.assert_allclose(diff2.numpy(), added_prompt_raster(r2), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(added_prompt_raster(r2), r2["prompt"][0].numpy(), atol=0)


def test_real_capture_mambair_matches_jacobian() -> None:
    from model.archs import build
    from model.config import MambaIRConfig

    torch.manual_seed(0)
    net = build(MambaIRConfig(embed_dim=30, depths=(1,), d_state=4, upscale=2, img_size=8, mlp_ratio=1.0,
                              upsampler="pixelshuffledirect"))  # CAB squeezes channels by 30: embed_dim >= 30
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad(), capture(net) as rec:
        net(x)
    r = rec.ss2d[0]
    hp, wp = r["grid"]
    np.testing.assert_array_equal(np.asarray(r["orders"]), raster_orders((hp, wp)))
    K, sub_d = 4, 3
    Dk = r["scan"]["u"].shape[1] // K
    keep = torch.cat([k * Dk + torch.arange(sub_d) for k in range(K)])  # the first channels of every scan
    scan = dict(r["scan"])
    for key in ("u", "delta"):
        scan[key] = scan[key][:, keep]
    for key in ("A", "D", "delta_bias"):
        scan[key] = scan[key][keep]
    small = dict(r, scan=scan)
    for q in (0, hp * wp // 2, hp * wp - 1):
        J = ss2d_raster_jacobian(small, q).double()
        m = implicit_attention_map(small, q)
        np.testing.assert_allclose(m.ravel(), J.abs().mean(0).numpy(), rtol=1e-4, atol=1e-6)
