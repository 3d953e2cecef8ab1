"""PSNR and SSIM with BasicSR's conventions (``basicsr/metrics/psnr_ssim.py``), in numpy.

Inputs: numpy images (H, W, C) or (H, W), either uint8 in [0, 255] or float in [0, 1]; or torch
tensors (C, H, W) / (1, C, H, W) float in [0, 1]. Both images are brought to float64 on the
0-255 range. For SR the benchmarks quantise the network output to uint8 first (as saving a PNG
does): pass ``to_uint8(sr)`` from ``model.evaluation.degrade`` to match published numbers exactly.

``test_y_channel``: compare only Y of YCbCr, ITU-R BT.601 "studio swing" (16-235), as MATLAB's
``rgb2ycbcr``: Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1]. Not rounded.
``crop_border``: pixels dropped on each side before comparing (= scale for SR).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import correlate1d

__all__ = ["psnr", "ssim", "rgb_to_y", "to_255"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])  # BT.601 Y from RGB in [0, 1], output on 0-255


def to_255(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Image as float64 (H, W, C) on the 0-255 range (uint8 kept, float in [0, 1] scaled by 255)."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        return t.to(torch.float64).numpy() * 255.0
    a = np.asarray(img)
    out = a.astype(np.float64) if a.dtype == np.uint8 else a.astype(np.float64) * 255.0
    return out[..., None] if out.ndim == 2 else out


def rgb_to_y(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Y channel (H, W, 1) on the 0-255 range (16-235 for in-range input) of an RGB image."""
    a = to_255(img)
    if a.shape[2] == 1:
        return a  # already one channel (grayscale): BasicSR leaves it as is
    if a.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels, got {a.shape[2]}")
    return (a / 255.0 @ _Y_WEIGHTS + 16.0)[..., None]  # (H, W, 3) @ (3,) -> (H, W) -> (H, W, 1)


def _prepare(img1, img2, crop_border: int, test_y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_255(img1), to_255(img2)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if crop_border > 0:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        a, b = rgb_to_y(a / 255.0), rgb_to_y(b / 255.0)  # back to [0, 1] floats for rgb_to_y
    return a, b


def psnr(img1: np.ndarray | torch.Tensor, img2: np.ndarray | torch.Tensor, crop_border: int = 0,
         test_y_channel: bool = False) -> float:
    """PSNR in dB with peak 255 (``inf`` for identical images)."""
    a, b = _prepare(img1, img2, crop_border, test_y_channel)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter, keeping only the positions where the window fits ('valid')."""
    r = len(g) // 2
    out = correlate1d(correlate1d(img, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")
    return out[r:-r, r:-r]  # border choice irrelevant: those rows/cols are cut


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_1d()
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    s11 = _filter_valid(a * a, g) - mu1 * mu1
    s22 = _filter_valid(b * b, g) - mu2 * mu2
    s12 = _filter_valid(a * b, g) - mu1 * mu2
    num = (2 * mu1 * mu2 + c1) * (2 * s12 + c2)
    den = (mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2)
    return float(np.mean(num / den))


def ssim(img1: np.ndarray | torch.Tensor, img2: np.ndarray | torch.Tensor, crop_border: int = 0,
         test_y_channel: bool = False) -> float:
    """SSIM (Wang et al. 2004; 11x11 Gaussian, sigma 1.5, on 0-255), mean over channels."""
    a, b = _prepare(img1, img2, crop_border, test_y_channel)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {a.shape[:2]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))
