"""viz pictures of SGN labels, the scan sequence, routing, prompts and ASE.

Crafted synthetic records (contract keys/shapes) check the numbers; records captured
from tiny random MambaIRv2-light / MambaIR models (``model.capture``) check that the
pictures work on the real thing. Letters: L tokens, T prompts, N d_state.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from viz.ase import added_prompt_raster, ase_figure, ase_maps, c_raster
from viz.palette import discrete_colorscale, label_colors, label_hex
from viz.prompts import prompt_projection, prompt_similarity, prompt_similarity_matrix
from viz.routing import routing_histogram, routing_stats, usage_heatmap, usage_stats
from viz.sequence import (
    neighbour_distances,
    raster_orders,
    scan_orders_figure,
    scan_sequence,
    sequence_distance_figure,
    sequence_ribbon,
)
from viz.sgn import label_grid, label_map, label_map_figure, label_overlay


def make_record(labels: np.ndarray, hp: int, wp: int, T: int, N: int = 3, seed: int = 0,
                order: str = "official") -> dict:
    """A MambaIRv2 ASSM record (batch 1) around given raster labels (L,)."""
    g = torch.Generator().manual_seed(seed)
    L = hp * wp
    lab = torch.as_tensor(labels, dtype=torch.int64).reshape(1, L)
    logits = torch.randn(1, L, T, generator=g)
    logits.scatter_(2, lab[..., None], 10.0)  # the argmax is the given label
    perm = torch.sort(lab, dim=-1, stable=True).indices
    inv = torch.argsort(perm, dim=-1)
    pool = torch.randn(T, N, generator=g)
    prompt = pool[lab]  # (1, L, N) raster order
    C = torch.randn(1, L, N, generator=g)  # sorted order
    added = prompt if order == "official" else prompt[:, perm[0]]  # what is added at each sorted position
    scan = dict(u=torch.randn(1, 2, L, generator=g), delta=torch.randn(1, 2, L, generator=g),
                A=-torch.ones(2, N), B=torch.randn(1, 1, N, L, generator=g),
                C=(C + added).transpose(1, 2)[:, None], D=torch.ones(2), delta_bias=torch.zeros(2),
                delta_softplus=True)
    return dict(stage=1, block=0, grid=(hp, wp), route_logp=torch.log_softmax(logits, -1), labels=lab,
                perm=perm, inv_perm=inv, prompt=prompt, C=C, prompt_pool=pool, prompt_order=order, scan=scan)


def random_record(hp: int = 8, wp: int = 8, T: int = 6, seed: int = 0, order: str = "official") -> dict:
    rng = np.random.default_rng(seed)
    return make_record(rng.integers(0, T, hp * wp), hp, wp, T, seed=seed, order=order)


@pytest.fixture(scope="module")
def real():
    """Records and input of tiny random models: v2-light on a 12x14 image (grid 16x16), MambaIR."""
    from model import capture
    from model.archs import build
    from model.config import MambaIRConfig, MambaIRv2LightConfig

    torch.manual_seed(0)
    v2 = build(MambaIRv2LightConfig(embed_dim=24, depths=(2, 2), num_heads=(2, 2), window_size=8,
                                    inner_rank=8, num_tokens=16, d_state=4, upscale=2))
    v1 = build(MambaIRConfig(embed_dim=30, depths=(1,), d_state=4, upscale=2, img_size=8, mlp_ratio=1.0,
                             upsampler="pixelshuffledirect"))
    from skimage.data import astronaut

    img = astronaut()[::40, ::36][:12, :14]  # (12, 14, 3) uint8, a real photo, tiny
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]  # (1, 3, 12, 14)
    with torch.no_grad(), capture(v2) as r2, capture(v1) as r1:
        v2(x)
        v1(x)
    return dict(image=img, assm=r2.assm, ss2d=r1.ss2d)


# ---------------------------------------------------------------- palette
def test_palette_fixed_distinct_and_prefix_stable() -> None:
    c256 = label_colors(256)
    assert c256.shape == (256, 3) and c256.dtype == np.uint8
    assert len({tuple(c) for c in c256}) == 256  # all distinct
    np.testing.assert_array_equal(label_colors(16), c256[:16])  # label k has one colour for every T
    np.testing.assert_array_equal(label_colors(16), label_colors(16))
    assert label_hex(3)[1] == "#{:02x}{:02x}{:02x}".format(*c256[1])
    scale = discrete_colorscale(4)
    assert scale[0][0] == 0 and scale[-1][0] == 1 and len(scale) == 8
    with pytest.raises(ValueError):
        label_colors(0)


# ---------------------------------------------------------------- SGN
def test_label_map_colours_and_crop() -> None:
    rec = random_record(hp=8, wp=8, T=6)
    lab = rec["labels"][0].numpy().reshape(8, 8)
    m = label_map(rec, (6, 5))
    assert m.shape == (6, 5, 3) and m.dtype == np.uint8
    np.testing.assert_array_equal(m, label_colors(6)[lab[:6, :5]])
    # another "layer" with other labels: the same label gets the same colour
    other = random_record(hp=8, wp=8, T=6, seed=9)
    m2 = label_map(other)
    lab2 = other["labels"][0].numpy().reshape(8, 8)
    for k in range(6):
        if (lab == k).any() and (lab2 == k).any():
            assert (m[lab[:6, :5] == k] == m2[lab2 == k][0]).all()
    with pytest.raises(ValueError):
        label_map(rec, (9, 8))


def test_label_overlay_blend_and_resize() -> None:
    rec = random_record(hp=8, wp=8, T=6)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(label_overlay(img, rec, alpha=0.0), img)
    np.testing.assert_array_equal(label_overlay(img, rec, alpha=1.0), label_map(rec, (6, 5)))
    big = np.repeat(np.repeat(img, 3, 0), 3, 1)  # an SR-sized display of the same LR image
    over = label_overlay(big, rec, alpha=1.0, image_hw=(6, 5))
    assert over.shape == (18, 15, 3)
    np.testing.assert_array_equal(over[::3, ::3], label_map(rec, (6, 5)))
    fl = label_overlay(img.astype(np.float32) / 255, rec, alpha=0.0)  # float images accepted
    assert fl.dtype == np.uint8 and np.abs(fl.astype(int) - img).max() <= 1


def test_label_map_figure_legend_counts_labels_in_use() -> None:
    labels = np.array([0] * 30 + [3] * 20 + [5] * 14)  # 3 of T=8 labels used
    rec = make_record(labels, 8, 8, T=8)
    img = np.zeros((8, 8, 3), np.uint8)
    fig = label_map_figure(rec, img)
    legend = [t for t in fig.data if getattr(t, "showlegend", None)]
    assert [t.name.split(":")[0] for t in legend] == ["label 0", "label 3", "label 5"]  # largest first
    assert [t.name.split(": ")[1].split(" px")[0] for t in legend] == ["30", "20", "14"]
    assert [t.marker.color for t in legend] == [label_hex(8)[k] for k in (0, 3, 5)]
    assert "3 of 8 labels in use" in fig.layout.title.text
    assert {t.type for t in fig.data} >= {"image", "heatmap"}


# ---------------------------------------------------------------- sequence
def test_raster_orders_match_the_official_four_scans() -> None:
    h, w = 3, 4
    x = torch.arange(h * w).view(1, 1, h, w)  # raster index as the feature
    rows = x.view(1, 1, -1)
    cols = torch.transpose(x, 2, 3).contiguous().view(1, 1, -1)  # as SS2D.forward_core builds x_hwwh
    official = torch.cat([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)[0]  # (4, L)
    np.testing.assert_array_equal(raster_orders((h, w)), official.numpy())


def test_ribbon_holds_every_image_pixel_in_scan_order() -> None:
    rec = random_record(hp=8, wp=8, T=5, seed=2)
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)
    bar = 2
    rib = sequence_ribbon(rec, img, bar=bar)
    n = 7 * 6
    n_rows = -(-n // 6)
    assert rib.shape == (n_rows * (1 + bar), 6, 3) and rib.dtype == np.uint8
    pix = rib[:: 1 + bar].reshape(-1, 3)[:n]  # the pixel rows, in reading order
    rc, labels = scan_sequence(rec, (7, 6))
    np.testing.assert_array_equal(pix, img[rc[:, 0], rc[:, 1]])
    # same multiset of pixels as the image (padded pixels dropped)
    key = lambda a: np.sort(a.astype(np.int64) @ np.array([65536, 256, 1]))  # noqa: E731
    np.testing.assert_array_equal(key(pix), key(img.reshape(-1, 3)))
    assert np.all(np.diff(labels) >= 0)  # sorted by label
    ticks = (rib[1 :: 1 + bar].reshape(-1, 3)[:n] == 0).all(axis=1)
    assert ticks.sum() == len(np.unique(labels))  # one boundary tick per group
    assert sequence_ribbon(rec, img, bar=0, zoom=2).shape == (2 * n_rows, 12, 3)


def test_distances_raster_vs_sgn() -> None:
    one_label = make_record(np.zeros(36, dtype=np.int64), 6, 6, T=4)  # one group: the sort is the identity
    rc, _ = scan_sequence(one_label)
    np.testing.assert_array_equal(rc[:, 0] * 6 + rc[:, 1], np.arange(36))
    d = neighbour_distances(rc)
    assert np.isclose(d.mean(), (30 * 1 + 5 * np.hypot(1, 5)) / 35)
    checker = make_record(np.indices((6, 6)).sum(0).ravel() % 2, 6, 6, T=2)  # alternating labels
    rc2, lab2 = scan_sequence(checker)
    d2 = neighbour_distances(rc2)
    assert d2.mean() > d.mean()  # same-label neighbours skip the other colour
    fig = sequence_distance_figure(checker)
    assert [t.type for t in fig.data].count("histogram") == 2
    assert f"{d2.mean():.1f} px" in fig.layout.title.text


def test_scan_orders_figure_visit_steps() -> None:
    fig = scan_orders_figure((3, 4))
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 4
    z = np.asarray(heat[1].z)  # column-major: down each column first
    np.testing.assert_array_equal(z[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(np.asarray(heat[2].z), 11 - np.arange(12).reshape(3, 4))


# ---------------------------------------------------------------- routing
def test_routing_stats_on_crafted_labels() -> None:
    T = 8
    uniform = routing_stats(make_record(np.arange(64) % T, 8, 8, T))
    assert np.isclose(uniform["perplexity"], T) and np.isclose(uniform["entropy_nats"], np.log(T))
    assert np.isclose(uniform["entropy_bits"], 3.0)
    assert uniform["unused_share"] == 0 and np.isclose(uniform["largest_share"], 1 / T)
    single = routing_stats(make_record(np.full(64, 5), 8, 8, T))
    assert np.isclose(single["perplexity"], 1) and single["entropy_nats"] == 0
    assert np.isclose(single["unused_share"], 7 / 8) and single["largest_share"] == 1 and single["used"] == 1
    half = usage_stats(np.array([10, 10, 0, 0]))
    assert np.isclose(half["perplexity"], 2) and half["unused_share"] == 0.5
    assert single["mean_confidence"] > 0.99  # the crafted router is sure of its label
    crop = routing_stats(make_record(np.arange(64) // 8, 8, 8, T), image_hw=(4, 8))  # rows 0-3 only
    assert crop["counts"].tolist() == [8, 8, 8, 8, 0, 0, 0, 0]


def test_routing_figures() -> None:
    rec = make_record(np.array([2] * 40 + [0] * 20 + [7] * 4), 8, 8, T=8)
    fig = routing_histogram(rec)
    bar = fig.data[0]
    assert list(bar.y) == [40, 20, 4, 0, 0, 0, 0, 0] and list(bar.customdata[:3]) == [2, 0, 7]
    st = routing_stats(rec)
    title = fig.layout.title.text
    assert f"perplexity {st['perplexity']:.1f} of 8" in title and "nats" in title
    recs = [rec, random_record(T=8, seed=4)]
    hm = usage_heatmap(recs)
    z = np.asarray(hm.data[0].z, dtype=float)
    assert z.shape == (2, 8) and np.allclose(z.sum(1), 1)
    assert hm.data[0].y[0].startswith("1.0 ")
    zs = np.asarray(usage_heatmap(recs, sort_rows=True).data[0].z, dtype=float)
    assert np.all(np.diff(zs, axis=1) <= 0)


# ---------------------------------------------------------------- prompts
def test_prompt_pictures() -> None:
    rec = make_record(np.array([1] * 50 + [4] * 14), 8, 8, T=6, N=4)
    fig = prompt_projection(rec)
    used = [t for t in fig.data if t.name.startswith("used")][0]
    assert sorted(used.customdata[:, 0].tolist()) == [1, 4]
    assert used.marker.size[list(used.customdata[:, 0]).index(1)] > used.marker.size[1 - list(
        used.customdata[:, 0]).index(1)]  # more pixels, bigger marker
    assert sum(len(t.x) for t in fig.data) == 6
    t1 = prompt_projection(rec, method="tsne", tsne_iter=250)
    t2 = prompt_projection(rec, method="tsne", tsne_iter=250)
    np.testing.assert_allclose(np.concatenate([t.x for t in t1.data]), np.concatenate([t.x for t in t2.data]))
    pool = rec["prompt_pool"].numpy().astype(np.float64)
    from sklearn.metrics.pairwise import cosine_similarity

    np.testing.assert_allclose(prompt_similarity_matrix(pool), cosine_similarity(pool), atol=1e-12)
    sim = np.asarray(prompt_similarity(rec).data[0].z)
    assert sim.shape == (6, 6) and np.allclose(np.diag(sim), 1) and np.allclose(sim, sim.T)
    with pytest.raises(ValueError):
        prompt_projection(rec, method="umap")


# ---------------------------------------------------------------- ASE
@pytest.mark.parametrize("order", ["official", "aligned"])
def test_ase_uses_the_prompt_actually_added(order: str) -> None:
    rec = random_record(hp=6, wp=6, T=4, seed=3, order=order)
    inv = rec["inv_perm"][0]
    added = (rec["scan"]["C"][0, 0].T - rec["C"][0])[inv].numpy()  # (L, N) added, per raster pixel
    np.testing.assert_allclose(added_prompt_raster(rec), added, atol=1e-6)
    P, C = added, c_raster(rec)
    maps = ase_maps(rec)
    cos = (P * C).sum(1) / np.linalg.norm(P, axis=1) / np.linalg.norm(C, axis=1)
    np.testing.assert_allclose(maps["cos"].ravel(), cos, rtol=1e-5)
    ratio = np.linalg.norm(P, axis=1) / np.linalg.norm(C, axis=1)
    np.testing.assert_allclose(maps["norm_ratio"].ravel(), ratio, rtol=1e-5)
    own = maps["own_prompt"]
    assert own.all() if order == "aligned" else not own.all()
    assert ase_maps(rec, (4, 5))["cos"].shape == (4, 5)
    fig = ase_figure(rec)
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]


# ---------------------------------------------------------------- real captures
def test_pictures_of_real_v2_capture(real) -> None:
    img = real["image"]
    recs = real["assm"]
    assert len(recs) == 4 and tuple(recs[0]["grid"]) == (16, 16)
    T = recs[0]["prompt_pool"].shape[0]
    for r in recs:
        lab = label_grid(r, img.shape[:2])
        assert lab.shape == (12, 14) and lab.min() >= 0 and lab.max() < T
        np.testing.assert_array_equal(label_map(r, img.shape[:2]), label_colors(T)[lab])
        st = routing_stats(r, img.shape[:2])
        assert st["counts"].sum() == 12 * 14 and 1 <= st["perplexity"] <= T
        rib = sequence_ribbon(r, img, bar=1)
        key = lambda a: np.sort(a.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1]))  # noqa: E731
        np.testing.assert_array_equal(key(rib[::2].reshape(-1, 3)[: 12 * 14]), key(img))
        maps = ase_maps(r, img.shape[:2])
        assert all(v.shape == (12, 14) and np.isfinite(v).all() for v in maps.values())
        np.testing.assert_allclose(added_prompt_raster(r),
                                   (r["scan"]["C"][0, 0].T - r["C"][0])[r["inv_perm"][0]].numpy(),
                                   rtol=1e-4, atol=1e-5)
    fig = label_map_figure(recs[0], img)
    used = int((label_grid(recs[0], img.shape[:2]).ravel()[:, None] == np.arange(T)).any(0).sum())
    assert len([t for t in fig.data if getattr(t, "showlegend", None)]) == used
    assert len(usage_heatmap(recs).data[0].y) == 4
    for f in (sequence_distance_figure(recs[0], img.shape[:2]), prompt_projection(recs[1]),
              prompt_similarity(recs[2]), ase_figure(recs[3], img), routing_histogram(recs[0])):
        assert len(f.data) >= 1


def test_scan_orders_of_real_mambair_capture(real) -> None:
    r = real["ss2d"][0]
    fig = scan_orders_figure(r, image_hw=real["image"].shape[:2])
    z = np.asarray([t for t in fig.data if t.type == "heatmap"][0].z)
    assert z.shape == (12, 14) and z[0, 0] == 0


def test_render_all_writes_every_picture(tmp_path) -> None:
    from PIL import Image

    from viz import render_all

    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 14, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "out"
    assert render_all.main(["--out", str(out), "--image", str(src), "--size", "14", "--pixel", "5,6"]) == 0
    meta = json.loads((out / "index.json").read_text())
    assert meta["image_hw"] == [14, 10] and meta["query_pixel"] == [5, 6]
    assert [r["arch"] for r in meta["runs"]] == ["MambaIRv2Light", "MambaIR"]
    assert all(r["random_weights"] for r in meta["runs"])
    names = [f["file"] for f in meta["files"]]
    assert all((out / f["file"]).is_file() and f["about"] for f in meta["files"])
    for part in ("labels", "overlay", "label_figure", "ribbon", "sequence_distance", "routing", "usage",
                 "prompts_pca", "prompts_tsne", "prompt_similarity", "ase", "attention", "scan_orders"):
        assert any(f"_{part}." in n for n in names), part
    ribbon = np.asarray(Image.open(out / next(n for n in names if n.endswith("_ribbon.png"))))
    assert ribbon.dtype == np.uint8 and ribbon.shape[1] == 10 * 4
