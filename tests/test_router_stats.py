"""Router numbers per ASSM layer (model.analysis.router_stats) on crafted records and tiny networks.

Letters: B batch, L tokens of the padded grid, T prompts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import V2_CFG

from model.analysis.router_stats import (
    UNTRAINED_MESSAGE,
    is_untrained,
    layer_stats,
    logit_change,
    pool_records,
    router_stats,
    slim_records,
    summary,
    untrained_message,
)
from model.archs import build, get_options, set_options
from model.capture import capture
from model.config import MambaIRConfig

CFG = V2_CFG  # tiny_models: two stages, six prompts


def record(logits: torch.Tensor, hp: int, wp: int) -> dict:
    """An ASSM record from (B, L, T) logits: labels are their argmax."""
    return {"stage": 0, "block": 1, "grid": (hp, wp), "route_logp": torch.log_softmax(logits, -1),
            "labels": logits.argmax(-1)}


def test_uniform_router_is_flagged_and_numbers_match() -> None:
    T, L = 8, 64
    labels = torch.arange(L) % 4  # only prompts 0-3 are chosen, evenly
    logits = torch.zeros(1, L, T)
    logits[0, torch.arange(L), labels] = 1e-3  # near uniform, argmax = labels
    st = layer_stats(record(logits, 8, 8))
    assert st["mean_max_prob"] == pytest.approx(1 / T, rel=1e-3)
    assert st["used"] == 4 and st["dead"] == [4, 5, 6, 7]
    assert st["perplexity"] == pytest.approx(4.0) and st["counts"].tolist() == [16] * 4 + [0] * 4
    assert st["untrained"] and is_untrained([st, st, st])
    assert untrained_message([st]) == UNTRAINED_MESSAGE


def test_biased_router_is_not_flagged_and_numbers_equal_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    T = 6
    logits = torch.randn(2, 48, T, generator=g)
    logits[..., 2] += 4.0  # a strong bias towards prompt 2
    st = layer_stats(record(logits, 6, 8))
    p = torch.softmax(logits.double(), -1)
    assert st["mean_max_prob"] == pytest.approx(float(p.max(-1).values.mean()), rel=1e-6)
    counts = torch.bincount(logits.argmax(-1).ravel(), minlength=T).double()
    q = counts[counts > 0] / counts.sum()
    assert st["perplexity"] == pytest.approx(float(torch.exp(-(q * q.log()).sum())), rel=1e-9)
    assert st["used"] == int((counts > 0).sum())
    assert not st["untrained"] and not is_untrained([st]) and untrained_message([st]) is None
    one = layer_stats(record(logits, 6, 8), batch=1)  # one batch item only
    assert one["counts"].sum() == 48


def test_most_layers_rule() -> None:
    flat = {"mean_max_prob": 1 / 6, "num_prompts": 6}
    sharp = {"mean_max_prob": 0.9, "num_prompts": 6}
    assert is_untrained([flat, flat, sharp]) and not is_untrained([flat, sharp])
    assert not is_untrained([])


def test_crop_to_image_and_logit_change() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 16, 5, generator=g)  # a 4x4 grid
    logits[0, :8, 3] += 20.0  # the top two rows are sure of prompt 3
    top = layer_stats(record(logits, 4, 4), image_hw=(2, 4))
    assert top["counts"].tolist() == [0, 0, 0, 8, 0] and top["mean_max_prob"] > 0.99
    with pytest.raises(ValueError, match="does not fit"):
        layer_stats(record(logits, 4, 4), image_hw=(5, 4))
    ref = record(logits, 4, 4)
    shifted = record(logits + 7.0, 4, 4)  # a constant per pixel: the same router
    assert layer_stats(shifted, ref=ref)["logit_change"] == pytest.approx(0.0, abs=1e-5)
    moved = logits.clone()
    moved[..., 0] += 1.0  # prompt 0 up by 1 -> centred logits change by 0.8 / -0.2
    want = np.sqrt((0.8 ** 2 + 4 * 0.2 ** 2) / 5)
    assert logit_change(torch.log_softmax(moved, -1), ref["route_logp"]) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="same input"):
        logit_change(torch.zeros(1, 3, 5), ref["route_logp"])


def test_router_stats_on_tiny_networks() -> None:
    torch.manual_seed(0)
    net = build(CFG)
    set_options(net, routing="gumbel")
    net.train()
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(2))
    stats, recs = router_stats(net, x, keep_records=True)
    assert len(stats) == 3 and [(s["stage"], s["block"]) for s in stats] == [(0, 0), (0, 1), (1, 0)]
    assert net.training and get_options(net)["routing"] == "gumbel"  # modes restored
    assert all(s["counts"].sum() == 12 * 10 for s in stats)  # the image's pixels only
    assert is_untrained(stats)  # a random initialisation routes near uniformly
    with capture(net) as rec:  # the same numbers as a direct capture with argmax routing
        set_options(net, routing="argmax")
        net.eval()(x)
    direct = layer_stats(rec.assm[1], image_hw=(12, 10))
    assert stats[1]["mean_max_prob"] == pytest.approx(direct["mean_max_prob"])
    with torch.no_grad():  # a strong bias in every router: no longer flagged
        for m in net.modules():
            if hasattr(m, "route"):
                m.route[2].bias[1] += 5.0
    biased = router_stats(net, x, refs=recs)
    assert not is_untrained(biased) and all(s["used"] == 1 for s in biased)
    assert all(s["logit_change"] > 1.0 for s in biased)
    assert router_stats(build(MambaIRConfig(upscale=2, img_size=16, embed_dim=30, d_state=4, depths=(1,),
                                            mlp_ratio=1.2, upsampler="pixelshuffledirect")), x) == []


def test_pool_and_summary() -> None:
    g = torch.Generator().manual_seed(3)
    a = record(torch.randn(1, 16, 4, generator=g), 4, 4)
    b = record(torch.randn(1, 6, 4, generator=g) + torch.tensor([0.0, 0.0, 9.0, 0.0]), 2, 3)
    pooled = pool_records([slim_records([a]), slim_records([b])])
    both = layer_stats(pooled[0])
    assert both["counts"].sum() == 22
    assert both["counts"].tolist() == (layer_stats(a)["counts"] + layer_stats(b)["counts"]).tolist()
    want = (16 * layer_stats(a)["mean_max_prob"] + 6 * layer_stats(b)["mean_max_prob"]) / 22
    assert both["mean_max_prob"] == pytest.approx(want, rel=1e-6)
    top = slim_records([a], image_hw=(2, 4))[0]  # cropped to the top half
    assert top["labels"].shape == (1, 8) and top["grid"] == (2, 4)
    with pytest.raises(ValueError, match="same number"):
        pool_records([slim_records([a]), []])
    s = summary([layer_stats(a, ref=a), both])
    assert [r["layer"] for r in s["layers"]] == ["0.1", "0.1"] and s["num_prompts"] == 4
    assert s["layers"][0]["logit_change"] == 0 and "logit_change" not in s["layers"][1]
    assert s["layers_at_4_over_T"] == sum(st["mean_max_prob"] >= 1.0 for st in (layer_stats(a), both))


def test_layers_at_4_over_T_counts_decided_routers_only() -> None:
    """With T = 8 (4/T = 0.5 < 1) the count separates a decided router from an undecided one."""
    T, L = 8, 64
    g = torch.Generator().manual_seed(4)
    flat = torch.randn(1, L, T, generator=g) * 0.1  # near uniform: mean max prob ~ 1/T
    halfway = torch.zeros(1, L, T)
    halfway[..., 0] = np.log(3.0)  # prompt 0 three times as likely as each other: p = 3/10 < 4/T
    decided = torch.randn(1, L, T, generator=g)
    decided[0, torch.arange(L), torch.arange(L) % T] += 3.0  # one prompt per pixel clearly ahead
    st = {name: layer_stats(record(lg, 8, 8)) for name, lg in
          (("flat", flat), ("halfway", halfway), ("decided", decided))}
    assert st["flat"]["mean_max_prob"] < 2 / T
    assert st["halfway"]["mean_max_prob"] == pytest.approx(0.3, rel=1e-5)
    assert 4 / T < st["decided"]["mean_max_prob"] < 1.0  # decided, yet never sure of every pixel
    assert summary([st["flat"], st["halfway"]])["layers_at_4_over_T"] == 0  # not decided
    assert summary([st["flat"], st["decided"], st["halfway"]])["layers_at_4_over_T"] == 1
    assert summary([st["decided"], st["decided"]])["layers_at_4_over_T"] == 2
