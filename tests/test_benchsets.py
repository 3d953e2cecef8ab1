"""model.evaluation.evaluate on any folder (plain images, benchmark HR/LR layouts) and the paper's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model.archs import build
from model.config import MambaIRv2LightConfig
from model.evaluation.benchsets import dataset_name, find_pairs, paper_result
from model.evaluation.degrade import bicubic_downscale, bicubic_upscale, modcrop, to_uint8
from model.evaluation.evaluate import evaluate, run_net
from model.evaluation.metrics import psnr, ssim
from model.training.train import nearest_init

TINY = MambaIRv2LightConfig(upscale=2, embed_dim=16, d_state=4, depths=(1,), num_heads=(2,), window_size=8,
                            inner_rank=4, num_tokens=8)


def _img(seed: int, h: int = 30, w: int = 34) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / h
    img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (yy * (seed + 1) + xx * rng.uniform(0.5, 2)) + c)
                    for c in range(3)], axis=2)
    return (img * 255).round().astype(np.uint8)


def _save(path, arr, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "near.pth"
    torch.save({"params": nearest_init(build(TINY)).state_dict()}, path)
    return path


def test_layouts(tmp_path):
    for name in ("baby", "bird"):
        _save(tmp_path / "div" / "HR" / f"{name}.png", _img(0))
        _save(tmp_path / "div" / "LR_bicubic" / "X2" / f"{name}x2.png", _img(0, 15, 17))
        _save(tmp_path / "bsr" / "GTmod12" / f"{name}.png", _img(0))
        _save(tmp_path / "bsr" / "LRbicx2" / f"{name}.png", _img(0, 15, 17))
        _save(tmp_path / "srf" / f"img_{name}_SRF_2_HR.png", _img(0))
        _save(tmp_path / "srf" / f"img_{name}_SRF_2_LR.png", _img(0, 15, 17))
        _save(tmp_path / "plain" / f"{name}.jpg", _img(0))
    pairs, layout = find_pairs(tmp_path / "div", 2)
    assert [(p.hr.name, p.lr.name) for p in pairs] == [("baby.png", "babyx2.png"), ("bird.png", "birdx2.png")]
    assert "LR_bicubic/X2" in layout
    pairs, _ = find_pairs(tmp_path / "bsr", 2)
    assert [p.lr.parent.name for p in pairs] == ["LRbicx2"] * 2
    pairs, _ = find_pairs(tmp_path / "srf", 2)
    assert [(p.hr.name, p.lr.name) for p in pairs][0] == ("img_baby_SRF_2_HR.png", "img_baby_SRF_2_LR.png")
    pairs, layout = find_pairs(tmp_path / "plain", 2)
    assert all(p.lr is None for p in pairs) and len(pairs) == 2 and "plain" in layout
    pairs, layout = find_pairs(tmp_path / "div", 3)  # no X3 folder: HR only, LR made by bicubic
    assert all(p.lr is None for p in pairs) and "bicubic" in layout
    (tmp_path / "div" / "LR_bicubic" / "X2" / "birdx2.png").unlink()
    with pytest.raises(FileNotFoundError, match="no LR image for bird.png"):
        find_pairs(tmp_path / "div", 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        find_pairs(tmp_path / "empty", 2)


def test_evaluate_plain_folder_of_jpegs(tmp_path, ckpt):
    """The issue's case: three JPEGs, no split.json; equals metrics computed directly."""
    folder = tmp_path / "my_photos"
    for i in range(3):
        _save(folder / f"p{i}.jpg", _img(i), quality=90)
    res = evaluate(ckpt, folder, verbose=False)
    assert res["n_images"] == 3 and "plain" in res["layout"] and res["paper"] is None
    hr = np.asarray(Image.open(folder / "p1.jpg").convert("RGB"), dtype=np.float32) / 255.0
    gt = modcrop(hr, 2)
    lr = to_uint8(bicubic_downscale(gt, 2)).astype(np.float32) / 255.0
    out = run_net(build_loaded(ckpt), lr)
    row = res["per_image"][1]
    assert row["psnr"] == pytest.approx(psnr(to_uint8(out), to_uint8(gt), 2, True))
    base = to_uint8(bicubic_upscale(lr, 2))
    assert row["baseline_ssim"] == pytest.approx(ssim(base, to_uint8(gt), 2, True))


def build_loaded(path):
    from model import load_checkpoint

    return load_checkpoint(path)


def test_evaluate_paired_folder_uses_the_given_lr(tmp_path, ckpt):
    root = tmp_path / "Urban100"
    for i in range(2):
        hr = _img(i, 31, 35)  # odd sizes: the HR is cropped to LR x 2
        _save(root / "HR" / f"img_{i:03d}.png", hr)
        lr = np.asarray(Image.fromarray(hr[:30, :34]).resize((17, 15), Image.NEAREST))  # not bicubic
        _save(root / "LRbicx2" / f"img_{i:03d}.png", lr)
    res = evaluate(ckpt, root, verbose=False)
    assert res["dataset"] == "Urban100" and "given LR" in res["setting"] and res["n_images"] == 2
    lr = np.asarray(Image.open(root / "LRbicx2" / "img_000.png"), dtype=np.float32) / 255.0
    gt = np.asarray(Image.open(root / "HR" / "img_000.png"), dtype=np.float32)[:30, :34] / 255.0
    out = run_net(build_loaded(ckpt), lr)
    assert res["per_image"][0]["psnr"] == pytest.approx(psnr(to_uint8(out), to_uint8(gt), 2, True))
    assert res["per_image"][0]["baseline_psnr"] == pytest.approx(
        psnr(to_uint8(bicubic_upscale(lr, 2)), to_uint8(gt), 2, True))


def test_evaluate_prepared_folder_still_uses_the_split(tmp_path, ckpt):
    import json

    for n in ("a.png", "b.png"):
        _save(tmp_path / n, _img(3))
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a.png"], "test": ["b.png"], "files": {}}))
    res = evaluate(ckpt, tmp_path, "test", verbose=False)
    assert [r["file"] for r in res["per_image"]] == ["b.png"]


def test_paper_numbers_lookup(tmp_path):
    assert dataset_name(tmp_path / "benchmark" / "Urban100" / "HR") == "Urban100"
    assert dataset_name(tmp_path / "bsd100") == "B100"
    assert dataset_name(tmp_path / "photos") is None
    assert paper_result("mambairv2_lightSR_x4", "Urban100") == (26.82, 0.8079)
    assert paper_result("MambaIR_lightSR_x4", "Urban100") == (26.75, 0.8051)
    assert paper_result("mambairv2_lightSR_x4", "Set5") is None  # not known to the project
    # One architecture for the three noise levels: the level of the run picks the number.
    assert paper_result("MambaIR_ColorDN_level15", "Urban100", 25) == (32.99, None)
    assert paper_result("mambairv2_JPEG_q10", "Classic5", 40) == (34.64, 0.9093)
    assert paper_result("mambairv2_JPEG_q10", "Classic5", 20) is None
    assert paper_result(None, "Urban100") is None
