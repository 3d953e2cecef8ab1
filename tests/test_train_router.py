"""Training options for the router (model.training.train): its parameter group, prompt-pool scale, fine-tuning
from a checkpoint, router numbers in the validation log, and resuming a one-group optimizer state."""

from __future__ import annotations

import json

import pytest
import torch
from test_weights_tools import TINY, _photo_folder

from model import build
from model.training.train import _one_group_state, is_router_param, param_groups, train

KW = dict(batch=2, patch=8, config=TINY, save_every=1, val_every=1, val_size=16, log_every=1, progress=False)


def test_router_group_holds_router_and_prompt_pool_only() -> None:
    net = build(TINY)
    rest, router = param_groups(net, router_lr_mult=5.0, router_eps=1e-20)
    names = {id(p): n for n, p in net.named_parameters()}
    got = sorted(names[id(p)] for p in router["params"])
    want = sorted(n for n in names.values() if ".route." in n or "embedding" in n)
    assert got == want and len(got) == 6  # route.0, route.2 (weight, bias), embeddingB, embeddingA
    assert any(n.endswith("embeddingA.weight") for n in got) and any("embeddingB" in n for n in got)
    assert router["lr_mult"] == 5.0 and router["eps"] == 1e-20 and rest["eps"] == 1e-8
    assert len(rest["params"]) + len(router["params"]) == len(list(net.parameters()))
    assert not is_router_param("layers.0.residual_group.layers.0.assm.in_proj.0.weight")


def test_fine_tune_from_weights_with_prompt_scale_and_router_group(tmp_path) -> None:
    data = _photo_folder(tmp_path / "photos")
    torch.manual_seed(5)
    start = build(TINY).state_dict()
    torch.save({"params": start}, tmp_path / "start.pth")
    lr, mult = 1e-3, 10.0
    train("tiny", data, 1, tmp_path / "run", lr=lr, weights=str(tmp_path / "start.pth"), prompt_scale=3.0,
          router_lr_mult=mult, router_eps=1e-30, routing="argmax", **KW)
    end = torch.load(tmp_path / "run" / "model.pth", weights_only=True)["params"]
    key_b = next(k for k in start if k.endswith("assm.embeddingB.weight"))
    key_r = next(k for k in start if k.endswith("assm.route.2.bias"))
    # Adam's first step is lr * g / (|g| + eps): with eps ~0 every router entry with a gradient moves
    # by exactly lr * mult; embeddingB first became 3x the checkpoint's, then moved the same way.
    step = (end[key_r] - start[key_r]).abs()
    moved = step > 0
    assert moved.any()
    torch.testing.assert_close(step[moved], torch.full_like(step[moved], lr * mult), rtol=1e-4, atol=0)
    db = (end[key_b] - 3.0 * start[key_b]).abs()
    assert db.max() <= lr * mult * (1 + 1e-4) and db.max() > lr * mult * 0.99
    # The rest took ordinary steps of at most about lr.
    key_o = next(k for k in start if k.endswith("assm.out_proj.weight"))
    assert (end[key_o] - start[key_o]).abs().max() <= lr * 1.01
    with pytest.raises(ValueError, match="does not fit"):
        torch.save({"params": {k: v for k, v in start.items() if "route" not in k}}, tmp_path / "bad.pth")
        train("tiny", data, 1, tmp_path / "bad", weights=str(tmp_path / "bad.pth"), **KW)


def test_validation_logs_router_numbers_and_logit_change(tmp_path) -> None:
    data = _photo_folder(tmp_path / "photos")
    train("tiny", data, 2, tmp_path / "run", lr=1e-2, router_eps=1e-30, **KW)
    vals = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    vals = [v for v in vals if "val_psnr_y" in v]
    assert [v["step"] for v in vals] == [0, 1, 2]
    first, last = vals[0]["router"], vals[-1]["router"]
    assert len(first["layers"]) == 1 and first["num_prompts"] == TINY.num_tokens
    assert "logit_change" not in first["layers"][0]  # step 0 is the reference
    assert last["layers"][0]["logit_change"] > 0  # the router took steps of 1e-2
    row = last["layers"][0]
    assert 1 <= row["used"] <= TINY.num_tokens and row["dead"] == TINY.num_tokens - row["used"]
    assert (tmp_path / "run" / "router_ref.pt").exists()
    # A resumed run measures against the same reference.
    train("tiny", data, 3, tmp_path / "run", lr=1e-2, router_eps=1e-30, resume=True, **KW)
    vals = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [v["step"] for v in vals if "val_psnr_y" in v] == [0, 1, 2, 3]
    assert "logit_change" in [v for v in vals if "val_psnr_y" in v][-1]["router"]["layers"][0]


def test_one_group_state_is_reindexed() -> None:
    torch.manual_seed(0)
    net = build(TINY)
    old = torch.optim.Adam(net.parameters(), lr=1e-3)  # the optimizer before the router group
    x = torch.rand(1, 3, 8, 8)
    net(x).abs().mean().backward()
    old.step()
    new = torch.optim.Adam(param_groups(net), lr=1e-3)
    new.load_state_dict(_one_group_state(old.state_dict(), net))
    for p in net.parameters():  # every parameter keeps its own moments
        torch.testing.assert_close(new.state[p]["exp_avg"], old.state[p]["exp_avg"])


def test_evaluate_prints_and_stores_router_numbers(tmp_path, capsys) -> None:
    from model.analysis.router_stats import UNTRAINED_MESSAGE, pool_records, records_stats, router_records
    from model.evaluation.evaluate import evaluate, update_manifest
    from model.hub.weights import load_manifest

    data = _photo_folder(tmp_path / "photos")
    torch.manual_seed(0)
    net = build(TINY)
    torch.save({"params": net.state_dict()}, tmp_path / "tiny.pth")
    res = evaluate(tmp_path / "tiny.pth", data, "all", router_crop=12)
    out = capsys.readouterr().out
    assert "gain over bicubic" in out and "router per ASSM layer" in out and UNTRAINED_MESSAGE in out
    router = res["router"]
    assert router["untrained"] and router["crop"] == 12 and len(router["layers"]) == 1
    # The same numbers as the router of each 12x12 centre crop (LR 20x22 -> rows 4-15, cols 5-16), pooled.
    from model.evaluation.degrade import bicubic_downscale, modcrop, to_uint8
    from model.training.data import list_images, load_image

    runs = []
    for path in list_images(data, "all"):
        lr = to_uint8(bicubic_downscale(modcrop(load_image(path), 2), 2)).astype("float32") / 255.0
        runs.append(router_records(net.eval(), torch.from_numpy(lr[4:16, 5:17]).permute(2, 0, 1)[None]))
    want = records_stats(pool_records(runs))[0]
    assert router["layers"][0]["mean_max_prob"] == pytest.approx(want["mean_max_prob"], abs=1e-5)
    assert router["layers"][0]["used"] == want["used"]
    entry = update_manifest(tmp_path / "tiny.pth", res, tmp_path / "manifest.json")
    stored = load_manifest(tmp_path / "manifest.json")[0]["metrics"][f"{data.name}-all"]
    assert stored["router"]["layers"] == router["layers"]
    assert entry["metrics"][f"{data.name}-all"]["router"] == stored["router"]
    assert stored["gain_psnr"] == pytest.approx(res["psnr"] - res["baseline_psnr"], abs=1e-4)


@pytest.mark.parametrize("arch", ["v2light", "mambair_light"])
def test_weights_of_another_scale_start_at_the_box_average_of_the_source(tmp_path, arch) -> None:
    """x4 -> x2 (and x2 -> x4): the body is copied, the upsampler derived, so the x2 network draws the
    2x2 box average of the x4 network's output (each x4 sub-pixel's conv row is linear)."""
    import dataclasses

    import torch.nn.functional as F

    from model import MambaIRConfig
    from model.training.train import load_start_weights

    v1 = MambaIRConfig(upscale=2, upsampler="pixelshuffledirect", embed_dim=30, d_state=4, depths=(1,),
                       mlp_ratio=1.2)
    base = TINY if arch == "v2light" else v1
    x4, x2 = build(dataclasses.replace(base, upscale=4)).eval(), build(base).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in x4.parameters():
            p.add_(0.05 * torch.randn_like(p))  # every weight, the upsampler's included, non-trivial
    assert load_start_weights(x2, x4.state_dict()) == 4
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(x2(x), F.avg_pool2d(x4(x), 2), rtol=1e-4, atol=1e-5)
        # Upscaling the scale copies each x2 sub-pixel into the 2x2 x4 sub-pixels of its cell.
        back = build(dataclasses.replace(base, upscale=4)).eval()
        assert load_start_weights(back, x2.state_dict()) == 2
        torch.testing.assert_close(back(x), F.interpolate(x2(x), scale_factor=2, mode="nearest"),
                                   rtol=1e-4, atol=1e-5)
    other = build(dataclasses.replace(base, embed_dim=base.embed_dim + 6))
    with pytest.raises(ValueError, match="shapes"):
        load_start_weights(other, x4.state_dict())


def test_train_from_weights_of_another_scale_records_it(tmp_path) -> None:
    import dataclasses

    data = _photo_folder(tmp_path / "photos")
    torch.save({"params": build(dataclasses.replace(TINY, upscale=4)).state_dict()}, tmp_path / "x4.pth")
    info = train("tiny", data, 1, tmp_path / "run", weights=str(tmp_path / "x4.pth"), **KW)
    assert info["weights_scale"] == 4 and info["scale"] == 2
