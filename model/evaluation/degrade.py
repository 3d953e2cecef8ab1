"""Degradations used to make training/evaluation inputs: MATLAB bicubic resize, noise, JPEG.

All functions are pure: they return a new array and never modify their input.
Images are numpy float arrays (H, W, C) or (H, W) with values in [0, 1];
``imresize`` also accepts torch tensors (..., H, W) (channels first, as networks use).

Letters: H, W input height/width; h, w output height/width; C channels; P taps per output pixel.

``imresize`` follows MATLAB's ``imresize(img, scale, 'bicubic')`` (and BasicSR's
``basicsr.utils.matlab_functions.imresize``): Keys cubic kernel with a = -0.5, output size
``ceil(in * scale)``, output pixel x (1-based) sampled at input coordinate
``x / scale + 0.5 * (1 - 1 / scale)``, kernel widened by ``1 / scale`` when downscaling
(antialiasing), weights normalised to sum to one, borders mirrored with the edge pixel repeated
(MATLAB's "symmetric" padding). The SR benchmarks make their LR inputs this way; PIL's bicubic
(a = -0.5 too, but other borders and rounding) differs by a few 1/255 levels.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

__all__ = ["cubic", "resize_taps", "resize_matrix", "imresize", "bicubic_downscale", "bicubic_upscale",
           "add_gaussian_noise", "jpeg_compress", "to_uint8", "modcrop"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_taps(in_len: int, out_len: int, scale: float, antialiasing: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's 1-D bicubic resize as taps: 0-based source indices (h, P) int64 and weights (h, P)."""
    widen = scale < 1 and antialiasing
    kernel_width = 4.0 / scale if widen else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)  # 1-based output coordinates (MATLAB)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # matching input coordinate, 1-based
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # (h, P) 1-based input indices
    dist = u[:, None] - idx  # (h, P)
    w = scale * cubic(dist * scale) if widen else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Mirror out-of-range indices with the edge repeated: 0 -> 1, -1 -> 2, n+1 -> n (MATLAB's aux).
    period = 2 * in_len
    m = np.mod(idx.astype(np.int64) - 1, period)  # 0-based position in [1..n, n..1]
    src = np.where(m < in_len, m, period - 1 - m)  # (h, P) 0-based input index
    return src, w


def resize_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """Dense (out_len, in_len) float64 matrix M so that ``M @ signal`` is MATLAB's 1-D bicubic resize."""
    src, w = resize_taps(in_len, out_len, scale, antialiasing)
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), src.shape[1])
    np.add.at(mat, (rows, src.ravel()), w.ravel())  # mirrored taps may hit one pixel twice: add
    return mat


def _out_size(n: int, scale: float) -> int:
    # MATLAB: ceil(in * scale); round first so that 0.25 * 128 does not become 33 via 32.0000001.
    return int(math.ceil(round(n * scale, 9)))


def _resize_axis(x, axis: int, scale: float, antialiasing: bool):
    """Resize numpy array or tensor ``x`` (float64) along ``axis``: a weighted sum of P shifted gathers."""
    n = x.shape[axis]
    src, w = resize_taps(n, _out_size(n, scale), scale, antialiasing)
    shape = [1] * x.ndim
    shape[axis] = src.shape[0]  # weights broadcast along every other axis
    out = None
    for p in range(src.shape[1]):  # P is small (<= 4 / scale + 2), each gather is one output-sized array
        if isinstance(x, torch.Tensor):
            idx = torch.from_numpy(src[:, p]).to(x.device)
            term = x.index_select(axis, idx) * torch.from_numpy(w[:, p]).to(x.device).reshape(shape)
        else:
            term = np.take(x, src[:, p], axis=axis) * w[:, p].reshape(shape)
        out = term if out is None else out + term
    return out


def imresize(img: np.ndarray | torch.Tensor, scale: float, antialiasing: bool = True
             ) -> np.ndarray | torch.Tensor:
    """MATLAB-style bicubic resize by ``scale``; numpy (H, W[, C]) or torch (..., H, W), float.

    No clipping: bicubic overshoots slightly past [0, 1] at edges (as MATLAB before its uint8 cast).
    """
    if scale == 1:
        return img.clone() if isinstance(img, torch.Tensor) else np.array(img, copy=True)
    if isinstance(img, torch.Tensor):
        dt = img.dtype if img.is_floating_point() else torch.float32
        x = img.to(torch.float64)
        out = _resize_axis(_resize_axis(x, x.ndim - 2, scale, antialiasing), x.ndim - 1, scale, antialiasing)
        return out.to(dt)
    a = np.asarray(img)
    dt = a.dtype if np.issubdtype(a.dtype, np.floating) else np.float32
    x = a.astype(np.float64)
    out = _resize_axis(_resize_axis(x, 0, scale, antialiasing), 1, scale, antialiasing)  # rows, then cols
    return out.astype(dt)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of ``scale`` (BasicSR ``mod_crop``)."""
    H, W = img.shape[:2]
    return np.array(img[: H - H % scale, : W - W % scale], copy=True)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding and clipping (what saving a PNG does)."""
    return np.clip(np.round(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """LR image of an HR float image: MATLAB bicubic by 1/scale with antialiasing, clipped to [0, 1].

    The size is ``ceil(H / scale)``; ``modcrop`` the HR first to have exactly H / scale.
    """
    return np.clip(imresize(img, 1.0 / scale), 0.0, 1.0)


def bicubic_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic SR baseline: MATLAB bicubic upscaling by ``scale``, clipped to [0, 1]."""
    return np.clip(imresize(img, float(scale)), 0.0, 1.0)


def add_gaussian_noise(img: np.ndarray, sigma_255: float, seed: int | None = 0) -> np.ndarray:
    """Add i.i.d. Gaussian noise of std ``sigma_255`` / 255 (denoising benchmarks; not clipped)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(img, dtype=np.float32)
    return a + rng.standard_normal(a.shape).astype(np.float32) * np.float32(sigma_255 / 255.0)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip with PIL at ``quality``; returns float [0, 1] of the same shape.

    Colour images use PIL's default chroma subsampling, 4:2:0 (the common camera/web setting);
    grayscale (H, W) or (H, W, 1) images are coded as one luma channel, as the JPEG CAR
    benchmarks (Classic5, LIVE1 in Y) do.
    """
    a = to_uint8(img)
    gray_with_axis = a.ndim == 3 and a.shape[2] == 1
    pil = Image.fromarray(a[..., 0] if gray_with_axis else a)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert(pil.mode), dtype=np.float32) / 255.0
    return out[..., None] if gray_with_axis else out
