"""MATLAB-style bicubic resize, noise/JPEG degradations and BasicSR-convention metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from model.evaluation.degrade import (
    add_gaussian_noise,
    bicubic_downscale,
    bicubic_upscale,
    imresize,
    jpeg_compress,
    modcrop,
    resize_matrix,
    to_uint8,
)
from model.evaluation.metrics import psnr, rgb_to_y, ssim


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (sum of low-frequency cosines) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w, 3))
    for c in range(3):
        fy, fx, ph = rng.uniform(0.5, 1.5, 3)
        out[..., c] = 0.5 + 0.3 * np.cos(2 * np.pi * (fy * yy + fx * xx) + ph)
    return out.astype(np.float32)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale):
    img = np.full((23, 18, 3), 0.37, dtype=np.float32)
    out = imresize(img, scale)
    assert out.shape == (math.ceil(23 * scale - 1e-9), math.ceil(18 * scale - 1e-9), 3)
    np.testing.assert_allclose(out, 0.37, atol=1e-6)


@pytest.mark.parametrize("n,scale", [(40, 0.25), (36, 0.5), (30, 1 / 3), (10, 4.0)])
def test_resize_matrix_rows_sum_to_one(n, scale):
    m = resize_matrix(n, math.ceil(round(n * scale, 9)), scale)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    assert (m != 0).sum(axis=1).max() <= math.ceil(4 / min(scale, 1)) + 2


@pytest.mark.parametrize("s", [2, 3, 4])
def test_downscaled_ramp_matches_sampling_position(s):
    # The cubic kernel (widened or not) is symmetric and reproduces straight lines, so far from
    # the borders a ramp f(i) = i (1-based) comes out as the sampling position x/s + (1 - 1/s)/2.
    n = 24 * s
    ramp = np.tile(np.arange(1, n + 1, dtype=np.float64)[:, None, None], (1, 5, 1))  # (n, 5, 1)
    out = imresize(ramp, 1.0 / s)[:, 0, 0]  # constant along columns: any column will do
    x = np.arange(1, n // s + 1)
    expected = x * s + 0.5 * (1 - s)
    inner = slice(3, -3)  # the kernel reaches 2*s input pixels: stay clear of the mirrored border
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-9)
    # At the border the mirrored samples bend the ramp: the first output is not the straight line.
    assert abs(out[0] - expected[0]) > 1e-3


def test_down_of_nearest_upsampled_returns_original():
    small = _smooth(16, 20)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)  # each pixel a 4x4 block
    back = imresize(big, 0.25)
    assert back.shape == small.shape
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(back[inner] - small[inner]).max() < 0.01
    assert np.abs(back - small).mean() < 0.01


def test_scale_one_is_identity_and_pure():
    img = _smooth(9, 7)
    keep = img.copy()
    out = imresize(img, 1)
    np.testing.assert_array_equal(out, img)
    out[0, 0, 0] = 5.0
    np.testing.assert_array_equal(img, keep)
    bicubic_downscale(img, 2)
    np.testing.assert_array_equal(img, keep)


def test_torch_matches_numpy():
    img = _smooth(20, 28)
    t = torch.from_numpy(img).permute(2, 0, 1)[None]  # (1, 3, H, W)
    for scale in (0.5, 3.0):
        a = imresize(img, scale)
        b = imresize(t, scale)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_differs_slightly_from_pil_bicubic():
    hr = skimage.data.astronaut()[:128, :128]
    ours = to_uint8(bicubic_downscale(hr / 255.0, 4)).astype(int)
    pil = np.asarray(Image.fromarray(hr).resize((32, 32), Image.BICUBIC)).astype(int)
    diff = np.abs(ours - pil)
    assert diff.max() > 0  # not the same algorithm (borders, rounding)
    assert diff.mean() < 1.0  # but the same kind of filter: under one grey level on average


def test_bicubic_up_and_down_ranges():
    img = _smooth(16, 12)
    lr = bicubic_downscale(modcrop(np.pad(img, ((0, 1), (0, 3), (0, 0))), 4), 4)
    assert lr.shape == (4, 3, 3)
    up = bicubic_upscale(lr, 4)
    assert up.shape == (16, 12, 3)
    assert up.min() >= 0 and up.max() <= 1


def test_gaussian_noise_seeded_and_scaled():
    img = np.full((64, 64, 3), 0.5, dtype=np.float32)
    a = add_gaussian_noise(img, 25, seed=1)
    b = add_gaussian_noise(img, 25, seed=1)
    c = add_gaussian_noise(img, 25, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs((a - img).std() - 25 / 255) < 0.005
    assert np.all(img == 0.5)


def test_jpeg_quality_orders_error():
    img = skimage.data.chelsea()[:96, :128] / 255.0
    e_low = np.abs(jpeg_compress(img, 10) - img).mean()
    e_high = np.abs(jpeg_compress(img, 95) - img).mean()
    assert jpeg_compress(img, 10).shape == img.shape
    assert e_high < e_low
    gray = img.mean(axis=2, keepdims=True)
    assert jpeg_compress(gray, 30).shape == gray.shape
    assert jpeg_compress(gray[..., 0], 30).shape == gray.shape[:2]


# ----------------------------------------------------------------------------- metrics


def test_identical_images():
    img = skimage.data.coffee()[:64, :64]
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0)
    assert psnr(img, img, crop_border=4, test_y_channel=True) == math.inf


def test_known_mse_gives_known_psnr():
    a = np.full((32, 32, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[::2] += 10  # half the pixels off by 10 -> MSE = 50
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 50))
    # float [0, 1] input is the same image
    assert psnr(a / 255.0, b / 255.0) == pytest.approx(psnr(a, b))
    # crop_border removes the rows that differ at the edges only when they are cut
    c = a.copy()
    c[:2] = 0
    assert psnr(a, c, crop_border=2) == math.inf
    assert psnr(a, c, crop_border=1) < 30


def test_y_channel_is_bt601():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    y = rgb_to_y(rgb)[0, :, 0]
    np.testing.assert_allclose(y, [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)
    rng = np.random.default_rng(3)
    img = rng.random((5, 6, 3))
    expected = 16 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]
    np.testing.assert_allclose(rgb_to_y(img)[..., 0], expected)
    # A difference only in chroma that leaves Y unchanged is invisible to Y-PSNR.
    a = np.full((12, 12, 3), 0.5)
    b = a.copy()
    b[..., 0] += 0.1
    b[..., 1] -= 0.1 * 65.481 / 128.553
    assert psnr(a, b, test_y_channel=True) > 100
    assert psnr(a, b) < 40


def test_ssim_symmetric_below_one_and_matches_skimage():
    clean = skimage.data.camera()[100:164, 200:280]
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    s1, s2 = ssim(clean, noisy), ssim(noisy, clean)
    assert s1 == pytest.approx(s2)
    assert s1 < 0.9
    ref = structural_similarity(clean.astype(float), noisy.astype(float), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert s1 == pytest.approx(ref, abs=1e-9)
    assert ssim(clean, noisy, crop_border=3) != pytest.approx(s1, abs=1e-9)


def test_metrics_accept_torch_chw():
    img = skimage.data.astronaut()[:32, :40]
    other = np.roll(img, 1, axis=1)
    t1 = torch.from_numpy(img / 255.0).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    t2 = torch.from_numpy(other / 255.0).permute(2, 0, 1).float()  # (3, H, W)
    assert psnr(t1, t2, 2, True) == pytest.approx(psnr(img, other, 2, True), abs=1e-4)
    with pytest.raises(ValueError):
        psnr(img, img[:-1])
