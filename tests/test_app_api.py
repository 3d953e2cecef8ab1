"""The app driven through gradio_client: restore, internals, LAM and a corrupt upload.

The demo runs with tiny random models (MAMBAIR_APP_DEMO=tiny) so that each call takes seconds.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from browser import require_gradio_client
from PIL import Image

from app.handlers.internals import LESSON_SIDE as INTERNALS_ZOOM

gradio_client = require_gradio_client()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Small RGB photo-like PNGs (16x20 and 32x40), and a corrupt PNG."""
    d = tmp_path_factory.mktemp("app_api")
    yy, xx = np.mgrid[0:32, 0:40]
    rgb = np.stack([xx * 6, yy * 7, (xx + yy) * 3], axis=-1).astype(np.uint8)  # smooth gradients
    rgb[8:20, 10:24] = 230  # and an edge
    Image.fromarray(rgb).save(d / "gt.png")
    Image.fromarray(rgb[::2, ::2]).save(d / "small.png")
    bad = d / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 16)
    return {"good": str(d / "small.png"), "gt": str(d / "gt.png"), "bad": str(bad)}


def _png(path: str) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"  # lossless output, not the default webp
        return np.asarray(im.convert("RGB"))


def test_named_endpoints(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/restore", "/internals", "/lam"} <= names


def test_restore_defaults_to_sr_x2_and_returns_both_models(client, images):
    v2, v1, slider, details, scores, *_ = client.predict(
        gradio_client.handle_file(images["good"]), api_name="/restore")
    a, b = _png(v2), _png(v1)
    assert a.shape == b.shape == (32, 40, 3)  # 2x the 16x20 input
    before, after = (_png(p) for p in slider)
    assert before.shape == (32, 40, 3)
    np.testing.assert_array_equal(after, a)
    assert "MambaIRv2" in details and "MambaIR" in details and "random weights" in details
    assert "Scan backend: " in details and "(CPU, " in details  # model.scan.backend_report
    assert scores == ""


def test_restore_ground_truth_mode_scores_three_outputs(client, images):
    out = client.predict(gradio_client.handle_file(images["gt"]), task="SR x2",
                         mode="Treat as ground truth: degrade, restore, score", api_name="/restore")
    v2, scores = out[0], out[4]
    assert _png(v2).shape == (32, 40, 3)  # degraded to 16x20, restored to the original size
    rows = [r for r in scores.splitlines() if r.startswith("| ") and "PSNR" not in r]
    assert [r.split("|")[1].strip() for r in rows] == ["MambaIRv2", "MambaIR", "bicubic"]
    psnr_bicubic = float(rows[2].split("|")[2])
    assert 15.0 < psnr_bicubic < 60.0


def test_internals_returns_every_picture(client, images):
    out = client.predict(gradio_client.handle_file(images["good"]), layer="1.0", api_name="/internals")
    summary, overlay, label_fig, ribbon = out[:4]
    assert "layer 1.0" in summary
    zoom = INTERNALS_ZOOM // 20  # enlarged to about LESSON_SIDE pixels
    assert _png(overlay).shape == (16 * zoom, 20 * zoom, 3)
    assert _png(ribbon).shape[1] >= 20
    plots = out[4:]
    assert len(plots) == 9 and all(p is not None for p in plots)


def _cyan_marks(plot) -> list[tuple[float, float]]:
    """(x, y) of the followed-pixel crosses in a gr.Plot value returned by gradio_client."""
    import json

    fig = json.loads(plot["plot"])
    return [(t["x"][0], t["y"][0]) for t in fig["data"]
            if t.get("type") == "scatter" and t.get("marker", {}).get("color") == "cyan"
            and t.get("x") and t["x"][0] is not None]


def test_internals_follows_the_requested_pixel(client, images):
    out = client.predict(gradio_client.handle_file(images["good"]), query_row=3, query_col=7,
                         api_name="/internals")
    summary, _, label_fig, _, seq_fig, scan_fig, *_rest = out
    assert "row 3, column 7" in summary
    assert _cyan_marks(label_fig) == [(7, 3), (7, 3)]
    assert _cyan_marks(scan_fig) == [(7, 3)] * 4
    (pos, raster), = _cyan_marks(seq_fig)
    assert raster == 3 * 20 + 7  # the 16x20 input: raster index of (3, 7)
    assert f"position {pos} of 320" in summary
    ase_fig, attn_v2, attn_v1 = out[10:13]
    for fig in (ase_fig, attn_v2, attn_v1):
        assert _cyan_marks(fig) == [(7, 3), (7, 3)]


def test_lam_gives_two_maps_and_diffusion_index(client, images):
    v2, v1, info = client.predict(gradio_client.handle_file(images["good"]), x=12, y=10, method="Saliency",
                                  api_name="/lam")
    assert _png(v2).ndim == 3 and _png(v1).ndim == 3
    assert "DI" in info and "x 4–19, y 2–17" in info
    v2, v1, info = client.predict(gradio_client.handle_file(images["good"]), steps=1, method="LAM",
                                  api_name="/lam")
    assert "| MambaIRv2 | lam |" in info and "| MambaIR | lam |" in info


def test_corrupt_upload_is_an_app_error(client, images):
    with pytest.raises(gradio_client.exceptions.AppError, match="corrupt"):
        client.predict(gradio_client.handle_file(images["bad"]), api_name="/restore")


def test_unknown_task_is_an_app_error(client, images):
    with pytest.raises(gradio_client.exceptions.AppError, match="unknown task|not in the list|choices"):
        client.predict(gradio_client.handle_file(images["good"]), task="SR x9", api_name="/restore")


def test_lam_window_and_box_helpers():
    from app.handlers import draw_box, lam_window

    assert lam_window(0, 0, (40, 40)) == (0, 0)
    assert lam_window(39, 39, (40, 40)) == (24, 24)
    assert lam_window(20, 10, (40, 40)) == (12, 2)
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    boxed = draw_box(img, 12, 2, 16)
    assert boxed[2, 12:28].tolist() == [[255, 40, 40]] * 16  # top edge drawn
    assert boxed[10, 20].tolist() == [0, 0, 0]  # inside untouched
    assert img.max() == 0  # input not modified


def test_weights_folder_is_scanned_and_unusable_files_listed(tmp_path, monkeypatch):
    """Checkpoints in the weights folder replace the demo models; junk files are listed with a reason."""
    import shutil

    from app import cache, handlers

    data = os.path.join(os.path.dirname(__file__), "data")
    shutil.copy(os.path.join(data, "v2light_x2.pth"), tmp_path / "v2light_x2.pth")
    shutil.copy(os.path.join(data, "mambair_light_x2.pth"), tmp_path / "mambair_light_x2.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("MAMBAIR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MAMBAIR_APP_DEMO", raising=False)
    cache.clear()
    try:
        tasks = cache.tasks()
        assert list(tasks) == ["SR x2"]
        assert {f: s.config.arch for f, s in tasks["SR x2"].items()} == {
            "MambaIRv2": "MambaIRv2Light", "MambaIR": "MambaIR"}
        assert all(not s.is_random for s in tasks["SR x2"].values())
        assert [s["file"] for s in cache.skipped_files()] == ["junk.pth"]
        assert handlers.layer_choices("SR x2") == ["0.0", "0.1", "1.0", "1.1"]
        table = handlers.weights_table()
        assert "v2light_x2.pth" in table and "junk.pth" in table
    finally:
        cache.clear()


def test_noise_level_and_quality_come_from_manifest_or_file_name():
    from app.cache import _level_of

    assert _level_of({"file": "mambairv2_ColorDN_50.pth"}, "dn") == (50, True)
    assert _level_of({"file": "ColorDN_MambaIR_level25.pth"}, "dn") == (25, True)
    assert _level_of({"file": "mambairv2_jpeg_q30.pth"}, "car") == (30, True)
    assert _level_of({"file": "x.pth", "level": 15}, "dn") == (15, True)
    assert _level_of({"file": "mystery.pth"}, "dn") == (25, False)


def test_large_input_is_tiled(client, tmp_path):
    yy, xx = np.mgrid[0:72, 0:80]
    rgb = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).astype(np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(rgb).save(path)
    v2, v1, *_ = client.predict(gradio_client.handle_file(str(path)), tile=64, api_name="/restore")
    assert _png(v2).shape == _png(v1).shape == (144, 160, 3)


def test_settings_effect_prompt_order_and_gumbel(client, images):
    """Both settings really change the output of a (random) MambaIRv2: the comparison is not zero."""
    import re

    pic, text = client.predict(gradio_client.handle_file(images["good"]),
                               what="prompt order: official vs aligned", api_name="/settings_effect")
    assert _png(pic).shape == (32, 40, 3) and _png(pic).max() == 255  # scaled: max change is white
    assert 0 < float(re.search(r"outputs ([\d.]+) dB", text).group(1)) < 100
    pic, text = client.predict(gradio_client.handle_file(images["good"]),
                               what="Gumbel routing: spread over seeds", runs=2, api_name="/settings_effect")
    assert _png(pic).shape == (32, 40, 3)
    assert float(re.search(r"per-pixel std ([\d.]+)", text).group(1)) > 0


def test_manifest_metrics_are_formatted():
    from app.handlers import format_metric

    text = format_metric("photos-test", {"psnr": 27.314, "ssim": 0.79123, "baseline": "bicubic",
                                         "baseline_psnr": 26.9, "baseline_ssim": 0.7801, "n_images": 10})
    assert text == "photos-test: PSNR 27.31 dB (bicubic 26.90), SSIM 0.7912 (bicubic 0.7801), 10 images"
    assert format_metric("note", "not measured") == "note: not measured"


def test_unexpected_failures_become_messages():
    import gradio as gr

    from app.handlers import explain_errors

    @explain_errors
    def broken(x: int) -> int:
        """Fails like a model bug would."""
        raise RuntimeError(f"shape mismatch {x}")

    with pytest.raises(gr.Error, match="RuntimeError: shape mismatch 3"):
        broken(3)
    assert broken.__doc__ == "Fails like a model bug would."  # signature/doc kept for Gradio


@pytest.fixture(scope="module")
def camera_photo(tmp_path_factory):
    """A 2560x1600 camera-size JPEG (smooth gradients: a small file) and its decoded pixels."""
    yy, xx = np.mgrid[0:1600, 0:2560]
    rgb = np.stack([(xx // 10) % 256, (yy // 7) % 256, ((xx + yy) // 13) % 256], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("camera") / "camera.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    with Image.open(path) as im:
        return str(path), np.asarray(im.convert("RGB"))


def _bicubic_of(crop: np.ndarray, scale: int) -> np.ndarray:
    from model.evaluation.degrade import bicubic_upscale, to_uint8

    return to_uint8(bicubic_upscale(crop.astype(np.float64) / 255.0, scale))


def test_large_photo_restores_the_most_detailed_region_by_default(client, camera_photo):
    """``region`` left empty: the most detailed window (app.region.default_box; where it lands on a photo
    with one textured patch is tested in tests/test_app_region.py)."""
    from app.region import REGION_SIDE, default_box

    path, rgb = camera_photo
    v2, v1, slider, details, *_ = client.predict(gradio_client.handle_file(path), api_name="/restore")
    side = REGION_SIDE
    assert _png(v2).shape == _png(v1).shape == (2 * side, 2 * side, 3)
    (t, left, _, _), why = default_box(rgb, side)
    assert f"x {left}–{left + side - 1}, y {t}–{t + side - 1}" in details and why in details
    # The "before" image is the bicubic upscaling of exactly that crop of the photo.
    before = _png(slider[0])
    np.testing.assert_array_equal(before, _bicubic_of(rgb[t:t + side, left:left + side], 2))


def test_large_photo_restores_a_given_region(client, camera_photo):
    path, rgb = camera_photo
    # A box drawn from (x 2000, y 100) to (x 2064, y 148), corners in either order.
    v2, v1, slider, details, *_ = client.predict(gradio_client.handle_file(path), region="2064,148,2000,100",
                                                 api_name="/restore")
    assert _png(v2).shape == (96, 128, 3)
    np.testing.assert_array_equal(_png(slider[0]), _bicubic_of(rgb[100:148, 2000:2064], 2))
    # A point: the default-size window around it, kept inside the photo (here: the top-left corner).
    v2, *_ = client.predict(gradio_client.handle_file(path), region="3,4", api_name="/restore", tile=512)
    assert _png(v2).shape[:2] == (512, 512)


def test_large_photo_downscaled_to_fit(client, tmp_path):
    from app.io import MAX_SIDE

    rgb = np.zeros((40, MAX_SIDE + 16, 3), dtype=np.uint8)
    rgb[:, ::2] = 200  # a wide strip: cheap to restore once downscaled
    path = tmp_path / "wide.png"
    Image.fromarray(rgb).save(path)
    v2, *_ = client.predict(gradio_client.handle_file(str(path)), large="Downscale to fit",
                            api_name="/restore")
    assert _png(v2).shape == (2 * 39, 2 * MAX_SIDE, 3)  # 1040x40 -> 1024x39, then x2


def test_pixel_bomb_and_bad_region_are_app_errors(client, camera_photo, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 8000)).save(bomb)  # 72 million pixels in a few kB
    with pytest.raises(gradio_client.exceptions.AppError, match="too large to decode"):
        client.predict(gradio_client.handle_file(str(bomb)), api_name="/restore")
    with pytest.raises(gradio_client.exceptions.AppError, match="region"):
        client.predict(gradio_client.handle_file(camera_photo[0]), region="1,2,3", api_name="/restore")
