"""Weights registry, download (network substituted), photo-set helpers, training and evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from model import build, load_checkpoint
from model.config import MambaIRConfig, MambaIRv2Config, MambaIRv2LightConfig
from model.hub.weights import load_manifest, manifest_entry, scan_weights, sha256_file, upsert_manifest

DATA = Path(__file__).parent / "data"
V2 = DATA / "v2light_x2.pth"  # tiny MambaIRv2Light x2 (official code's keys)
V1 = DATA / "mambair_light_x2.pth"  # tiny MambaIR x2

TINY = MambaIRv2LightConfig(upscale=2, embed_dim=16, d_state=4, depths=(1,), num_heads=(2,), window_size=8,
                            inner_rank=4, num_tokens=8)


# ----------------------------------------------------------------------------- manifest and scan


ROOT = Path(__file__).parent.parent
SHIPPED = load_manifest(ROOT / "weights" / "manifest.json")


@pytest.mark.parametrize("entry", SHIPPED, ids=[e["file"] for e in SHIPPED])
def test_shipped_weights_match_manifest_and_official_keys(entry):
    """Each checkpoint in weights/: the recorded sha256 and size, under 5 MB, and exactly the
    official code's keys and shapes for its preset (so the official files replace it one for one)."""
    path = ROOT / "weights" / entry["file"]
    assert path.stat().st_size == entry["size_bytes"] < 5 * 2**20
    assert sha256_file(path) == entry["sha256"]
    official = json.loads((DATA / "official_skeletons.json").read_text())[entry["preset"]]
    sd = torch.load(path, map_location="cpu", weights_only=True)["params"]
    assert {k: list(v.shape) for k, v in sd.items()} == official["keys"]
    if entry["source"] == "trained here":
        m = entry["metrics"]["photos-test"]
        if entry["arch"] != "MambaIR":  # the router has learned: >= 4/T in at least half of the layers
            xt = [r["mean_max_prob_xT"] for r in m["router"]["layers"]]
            assert sum(x >= 4 for x in xt) >= len(xt) / 2



DEMOS = sorted((ROOT / "weights").glob("*_demo.pth"))
PHOTOS = sorted((ROOT / "assets").glob("*.png"))  # held out of training (assets/README.md)
LR_SIDE = 32  # LR crop side: seconds per checkpoint on a free 2-core CPU
# Floors on the mean PSNR-Y gain over bicubic of the centre crops of the four photos. Issue 13's
# targets are on the 22 held-out files: x2 ships at >= 1.2 dB (the files: +1.29 / +1.35); x4's 1.0 dB
# is not reached (+0.84 / +0.85). These small crops of the 256-px photos are easier: measured +2.16 /
# +2.21 (x2) and +1.32 / +1.30 (x4) (MambaIR / MambaIRv2; this test with -s, 2026-12-06). A floor at
# the target would let an x2 file lose 0.9 dB unnoticed, so each floor sits 0.15-0.2 dB below what the
# files do here, and above the targets. Measured on the MambaIRv2 files (x2 / x4): weights with 20%
# noise give +1.22 / +0.80 dB (a floor at the x2 target would pass them), box-filtered LR +1.17 / +0.90,
# an untrained network -21 / -15: each fails.
GAIN_FLOOR = {2: 2.0, 4: 1.15}


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The centred side x side crop of an (H, W, C) image."""
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    return img[top:top + side, left:left + side]


@pytest.mark.slow
@pytest.mark.parametrize("path", DEMOS, ids=[p.name for p in DEMOS])
def test_shipped_demo_weights_beat_bicubic_on_the_project_photos(path):
    """Run the shipped checkpoint: MATLAB-bicubic LR of each photo's centre crop (saved as uint8, as a PNG
    would be), restore, PSNR-Y (crop = scale) against bicubic upscaling of the same LR."""
    from model.evaluation.degrade import bicubic_downscale, bicubic_upscale, to_uint8
    from model.evaluation.metrics import psnr

    assert len(DEMOS) == 4 and len(PHOTOS) == 4
    net = load_checkpoint(path, routing="argmax")
    s = net.config.upscale
    gains = []
    for photo in PHOTOS:
        hr = centre_crop(np.asarray(Image.open(photo).convert("RGB"), dtype=np.float64) / 255.0, LR_SIDE * s)
        lr = to_uint8(bicubic_downscale(hr, s)) / 255.0
        with torch.inference_mode():
            sr = net(torch.from_numpy(lr).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
        hr8 = to_uint8(hr)
        gains.append(psnr(to_uint8(sr), hr8, crop_border=s, test_y_channel=True)
                     - psnr(to_uint8(bicubic_upscale(lr, s)), hr8, crop_border=s, test_y_channel=True))
    print(f"{path.name}: gain {np.mean(gains):+.3f} dB ({', '.join(f'{g:+.2f}' for g in gains)})")
    assert np.mean(gains) >= GAIN_FLOOR[s]


def test_manifest_round_trip(tmp_path):
    shutil.copy(V2, tmp_path / "a.pth")
    man = tmp_path / "manifest.json"
    e = manifest_entry(tmp_path / "a.pth", source="trained here", training={"steps": 7},
                       metrics={"photos-test": {"psnr": 30.0}})
    assert e["arch"] == "MambaIRv2Light" and e["task"] == "sr" and e["scale"] == 2
    assert e["sha256"] == sha256_file(tmp_path / "a.pth")
    upsert_manifest(e, man)
    assert load_manifest(man) == [e]
    # Updating the same file merges metrics and keeps the training facts.
    e2 = manifest_entry(tmp_path / "a.pth", source="trained here", metrics={"photos-train": {"psnr": 31.0}})
    entries = upsert_manifest(e2, man)
    assert len(entries) == 1
    got = load_manifest(man)[0]
    assert got["training"] == {"steps": 7}
    assert set(got["metrics"]) == {"photos-test", "photos-train"}
    with pytest.raises(ValueError):
        manifest_entry(tmp_path / "a.pth", source="somewhere")
    (tmp_path / "bad.json").write_text('{"file": "x"}')
    with pytest.raises(ValueError):
        load_manifest(tmp_path / "bad.json")
    assert load_manifest(tmp_path / "missing.json") == []


def test_scan_good_renamed_garbage_and_wrong_network(tmp_path):
    shutil.copy(V2, tmp_path / "mine.pth")
    man = tmp_path / "manifest.json"
    upsert_manifest(manifest_entry(tmp_path / "mine.pth", source="trained here", training={"steps": 3}), man)
    (tmp_path / "mine.pth").rename(tmp_path / "renamed.pth")  # same bytes, new name
    shutil.copy(V1, tmp_path / "other.pt")  # a MambaIR file nobody listed
    (tmp_path / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
    torch.save({"params": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "wrong_net.pth")
    (tmp_path / "notes.txt").write_text("ignored: not a checkpoint suffix")

    entries, skipped = scan_weights(tmp_path)
    by_file = {e["file"]: e for e in entries}
    assert set(by_file) == {"renamed.pth", "other.pt"}
    ren = by_file["renamed.pth"]
    assert ren["source"] == "trained here" and ren["in_manifest"]
    assert ren["training"] == {"steps": 3}
    assert "mine.pth" in ren["notes"]
    oth = by_file["other.pt"]
    assert oth["source"] == "user file" and not oth["in_manifest"]
    assert oth["arch"] == "MambaIR" and oth["config"]["arch"] == "MambaIR"
    reasons = {s["file"]: s["reason"] for s in skipped}
    assert set(reasons) == {"garbage.pth", "wrong_net.pth"}
    assert all(r for r in reasons.values())


def test_scan_replaced_file_is_not_joined_by_name(tmp_path):
    shutil.copy(V2, tmp_path / "model.pth")
    man = tmp_path / "manifest.json"
    upsert_manifest(manifest_entry(tmp_path / "model.pth", source="official"), man)
    shutil.copy(V1, tmp_path / "model.pth")  # replaced by other bytes under the same name
    (entry,), _ = scan_weights(tmp_path)
    assert entry["source"] == "user file" and entry["arch"] == "MambaIR"
    assert scan_weights(tmp_path / "nope") == ([], [])


# ----------------------------------------------------------------------------- training


def _photo_folder(root: Path) -> Path:
    """Four small smooth 'photos' with a split.json, as ``model.training.data prepare`` writes them."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:44] / 40.0
    names = ["a.png", "b.png", "c.png", "t.png"]
    for i, n in enumerate(names):
        img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (yy * (i + 1) + xx * rng.uniform(0.5, 2)) + c)
                        for c in range(3)], axis=2)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(root / n)
    (root / "split.json").write_text(json.dumps({"train": names[:3], "test": names[3:], "files": {}}))
    return root


@pytest.mark.parametrize("cfg", [
    TINY,
    MambaIRv2Config(upscale=3, upsampler="pixelshuffle", embed_dim=16, d_state=4, depths=(1,),
                    num_heads=(2,), window_size=8, inner_rank=4, num_tokens=8, resi_connection="3conv"),
    MambaIRConfig(upscale=4, upsampler="nearest+conv", embed_dim=30, d_state=4, depths=(1,)),
    MambaIRv2Config(upscale=1, upsampler="", embed_dim=16, d_state=4, depths=(1,), num_heads=(2,),
                    window_size=8, inner_rank=4, num_tokens=8),
], ids=lambda c: f"{c.arch}-{c.upsampler or 'none'}-x{c.upscale}")
def test_nearest_init_is_nearest_upsampling(cfg):
    from model.training.train import nearest_init

    torch.manual_seed(0)
    net = build(cfg)
    x = torch.rand(1, cfg.in_chans, 11, 13)
    with torch.no_grad():
        before = net(x)
        after = nearest_init(net)(x)
    ref = F.interpolate(x, scale_factor=cfg.upscale, mode="nearest")
    assert (before - ref).abs().max() > 1e-2  # a random network is not nearest upsampling
    torch.testing.assert_close(after, ref, atol=1e-5, rtol=0)


def test_lr_schedule():
    from model.training.train import lr_factor

    assert lr_factor(0, 100, "none") == lr_factor(99, 100, "none") == 1.0
    assert lr_factor(0, 100, "cosine") == 1.0 and lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert [lr_factor(s, 100, "multistep") for s in (0, 49, 50, 80, 90, 95)] == \
        [1.0, 1.0, 0.5, 0.25, 0.125, 0.0625]
    assert [lr_factor(s, 100, "none", warmup=4) for s in (0, 1, 3, 50)] == [0.25, 0.5, 1.0, 1.0]
    assert lr_factor(1, 100, "multistep", warmup=4) == 0.5


def test_patch_sampler_aligned_and_augmented():
    from model.training.train import PatchSampler

    lr = np.random.default_rng(1).random((12, 10, 3)).astype(np.float32)
    hr = lr.repeat(2, axis=0).repeat(2, axis=1)  # 2x2 blocks: any flip/rotation keeps HR[::2, ::2] = LR
    sampler = PatchSampler([(hr, lr)], 2, 4, np.random.default_rng(0))
    x, y = sampler.batch(16)
    assert x.shape == (16, 3, 4, 4) and y.shape == (16, 3, 8, 8)
    torch.testing.assert_close(y[:, :, ::2, ::2], x)  # flips/rotations applied to both alike
    orients = {tuple(np.round(x[i, 0, 0, :2].numpy(), 4)) for i in range(16)}
    assert len(orients) > 1


def test_training_writes_loadable_checkpoint_and_resumes(tmp_path):
    from model.training.train import train

    data = _photo_folder(tmp_path / "photos")
    kw = dict(batch=2, patch=8, config=TINY, save_every=1, val_every=2, val_size=16, log_every=1,
              progress=False, init="nearest")
    info = train("tiny", data, 2, tmp_path / "run", **kw)
    assert info["steps_done"] == 2 and info["s_per_iter"] > 0
    ckpt = tmp_path / "run" / "model.pth"
    assert set(torch.load(ckpt, weights_only=True)) == {"params"}
    net = load_checkpoint(ckpt)
    assert net.config == TINY
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]
    assert any("val_psnr_y" in e and e["step"] == 2 for e in log)

    # Resuming to 3 steps gives exactly the weights of an uninterrupted 3-step run.
    train("tiny", data, 3, tmp_path / "run", resume=True, **kw)
    train("tiny", data, 3, tmp_path / "straight", **kw)
    a = torch.load(tmp_path / "run" / "model.pth", weights_only=True)["params"]
    b = torch.load(tmp_path / "straight" / "model.pth", weights_only=True)["params"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = torch.load(ckpt.with_name("state.pt"), weights_only=False)
    assert first["step"] == 3
    with pytest.raises(ValueError, match="another network config"):
        other = MambaIRv2LightConfig(**{**TINY.kwargs(), "embed_dim": 8})
        train("tiny", data, 4, tmp_path / "run", **{**kw, "config": other}, resume=True)


def test_evaluate_and_manifest_update(tmp_path):
    from model.evaluation.evaluate import evaluate, update_manifest
    from model.training.train import nearest_init

    data = _photo_folder(tmp_path)
    torch.manual_seed(0)
    net = nearest_init(build(TINY))
    ckpt = tmp_path / "near.pth"
    torch.save({"params": net.state_dict()}, ckpt)
    res = evaluate(ckpt, data, "all", verbose=False)
    assert res["n_images"] == 4 and res["task"] == "sr" and res["scale"] == 2
    # Nearest-neighbour upsampling scores below bicubic on smooth images.
    assert res["psnr"] < res["baseline_psnr"]
    assert all(r["ssim"] <= 1 for r in res["per_image"])
    man = tmp_path / "manifest.json"
    entry = update_manifest(ckpt, res, man)
    assert entry["metrics"][f"{tmp_path.name}-all"]["psnr"] == pytest.approx(res["psnr"], abs=1e-3)
    assert load_manifest(man)[0]["source"] == "trained here"
    with pytest.raises(ValueError, match="x2 model"):
        evaluate(ckpt, data, "test", scale=4, verbose=False)


def test_evaluate_tiled_and_restoration_tasks(tmp_path):
    from model.evaluation.evaluate import evaluate
    from model.training.train import nearest_init

    data = _photo_folder(tmp_path)
    torch.manual_seed(0)
    ckpt = tmp_path / "near.pth"
    torch.save({"params": nearest_init(build(TINY)).state_dict()}, ckpt)
    whole = evaluate(ckpt, data, "all", verbose=False)
    tiled = evaluate(ckpt, data, "all", tile=12, verbose=False)  # LR 20x22 > 12: runs tile by tile
    # The initialised network is purely local (nearest upsampling), so tiles must not show.
    assert tiled["psnr"] == pytest.approx(whole["psnr"], abs=1e-6)

    # Identity networks (upscale 1, conv_last at zero) score exactly the baseline input.
    for in_chans, task in ((3, "denoise"), (1, "jpeg")):
        cfg = MambaIRv2Config(upscale=1, in_chans=in_chans, upsampler="", embed_dim=16, d_state=4,
                              depths=(1,), num_heads=(2,), window_size=8, inner_rank=4, num_tokens=8)
        path = tmp_path / f"{task}.pth"
        torch.save({"params": nearest_init(build(cfg)).state_dict()}, path)
        res = evaluate(path, data, "test", sigma=25, quality=20, verbose=False)
        assert res["task"] == task
        assert res["psnr"] == pytest.approx(res["baseline_psnr"], abs=1e-9)
        assert res["psnr"] < 40  # the degradation is really there


# ----------------------------------------------------------------------------- photo set


def test_prepare_photo_set(tmp_path):
    from model.training.data import Source, list_images, load_image, load_split, prepare

    wall = tmp_path / "wall" / "contents" / "images"
    wall.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (800, 1200, 3), dtype=np.uint8)).save(wall / "1200x800.jpg")
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(wall / "90x60.jpg")
    sources = [Source("chelsea", "skimage", "chelsea", "Stefan van der Walt", "CC0"),
               Source("fakewall", "some-package", str(wall), "nobody", "CC0")]
    split = prepare(tmp_path / "out", sources)
    assert split["test"] == ["chelsea.png"]  # chelsea is a held-out photo by name
    assert split["train"] == [f"fakewall_{r}{c}.png" for r in (0, 1) for c in (0, 1)]
    assert split["files"]["fakewall_00.png"]["from"].endswith("1200x800.jpg")  # the largest file
    for path in list_images(tmp_path / "out", "all"):
        img = load_image(path)
        assert max(img.shape[:2]) <= 512 and img.dtype == np.float32 and img.shape[2] == 3
    # 1200x800 shrunk to 1024 long side (1024x683) and cut 2x2.
    sizes = [tuple(split["files"][f]["size"]) for f in split["train"]]
    assert sum(w for w, _ in sizes[:2]) == 1024 and sum(h for _, h in sizes[::2]) == 683
    assert load_split(tmp_path / "out") == json.loads((tmp_path / "out" / "split.json").read_text())
    assert "chelsea.png" in (tmp_path / "out" / "SOURCES.md").read_text()
    with pytest.raises(FileNotFoundError, match="model.training.data prepare"):
        load_split(tmp_path / "empty")
