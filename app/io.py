"""Image-file handling for the app: any upload in, an (H, W, 3) uint8 RGB array out, or a clear error.

Plain functions (no Gradio) so that they can be tested alone; the handlers turn
``ImageError`` into ``gr.Error``. H, W = height and width in pixels.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Largest input the networks are given (pixels per side): a CPU forward pass would take minutes
# beyond it (tiling keeps memory bounded, not time). Larger photos are not refused: the app
# restores a region of them or downscales them to fit (app.region).
MAX_SIDE = 1024
# Smallest input side: the networks pad to their window size (16), below 8 pixels the
# restoration is meaningless.
MIN_SIDE = 8
# Refuse decompression bombs before decoding (PIL's own limit is a warning only).
MAX_DECODED_PIXELS = 64_000_000


class ImageError(ValueError):
    """An upload the app cannot use; the message is shown to the user as is."""


def _to_uint8(arr: np.ndarray, full_scale: float | None = None) -> np.ndarray:
    """Scale integer/float pixel data of any depth to uint8 [0, 255].

    ``full_scale`` is the value that means white; by default it follows the dtype (255 for 8-bit,
    65535 for 16-bit), never the values, so a dark 16-bit image stays dark.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        if full_scale is None:
            if arr.dtype.itemsize <= 2:  # int8/uint16/int16: the dtype is the bit depth
                full_scale = 255.0 if arr.dtype.itemsize == 1 else 65535.0
            else:
                # Wider integers say nothing about the depth (numpy's default int): a caller's
                # 0..255 array stays 8-bit, anything above is taken as 16-bit.
                full_scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(np.round(arr.astype(np.float64) * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    # Float images ("F" mode): assume [0, 1] when they fit, else min-max scale.
    arr = arr.astype(np.float64)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if lo >= 0.0 and hi <= 1.0:
        return np.round(arr * 255.0).astype(np.uint8)
    scale = (hi - lo) or 1.0
    return np.round((arr - lo) * (255.0 / scale)).astype(np.uint8)


# PIL modes of high-bit-depth greyscale files, with the value that means white. PIL opens 16-bit
# PNG/TIFF as "I;16*" (or "I" in older versions): the file's depth, whatever values it holds.
_DEEP_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": None}


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """Any PIL image -> (H, W, 3) uint8: EXIF rotation applied, alpha over white, grey copied."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not block the image itself
        pass
    if im.mode in _DEEP_MODES:
        # High bit depth greyscale: scale to 8 bits ourselves (PIL's convert("L") clips).
        grey = _to_uint8(np.asarray(im), _DEEP_MODES[im.mode])
        return np.repeat(grey[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """A numpy image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3) uint8."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]  # (H, W) -> (H, W, 1)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an image array (H, W[, 1|3|4]), got shape {tuple(arr.shape)}")
    arr = _to_uint8(arr)
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float64) / 255.0
        arr = np.round(arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    return np.ascontiguousarray(arr)


def check_size(rgb: np.ndarray, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """Refuse images that are too small or (``max_side`` not None) too large; return the image unchanged."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if h * w > MAX_DECODED_PIXELS:
        raise ImageError(f"image is {w}x{h} pixels, too large to handle here")
    if max_side is not None and max(h, w) > max_side:
        raise ImageError(
            f"image is {w}x{h} pixels; the limit is {max_side} pixels per side on this machine. "
            "Crop or downscale it first.")
    return rgb


def load_image(source: Any, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """Path, PIL image or numpy array -> checked (H, W, 3) uint8 RGB array; ImageError otherwise.

    ``max_side=None`` accepts any size up to ``MAX_DECODED_PIXELS`` (the app then picks a region or
    downscales, ``app.region``); files beyond that are refused before they are decoded.
    """
    if source is None:
        raise ImageError("no image: upload one or pick an example")
    if isinstance(source, np.ndarray):
        return check_size(array_to_rgb(source), max_side)
    if isinstance(source, Image.Image):
        return check_size(pil_to_rgb(source), max_side)
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ImageError(f"file not found: {os.path.basename(path)}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_DECODED_PIXELS:
                raise ImageError(f"image is {w}x{h} pixels, too large to decode here")
            im.load()  # decode now, so truncated files fail here and not later
            rgb = pil_to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{os.path.basename(path)} is not an image file PIL can read") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{os.path.basename(path)} is corrupt or truncated ({exc})") from exc
    return check_size(rgb, max_side)
