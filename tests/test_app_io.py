"""app.io: every kind of upload becomes (H, W, 3) uint8 RGB, or an ImageError with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.io import MAX_SIDE, ImageError, array_to_rgb, load_image


def _save(tmp_path, name: str, im: Image.Image, **kw) -> str:
    path = str(tmp_path / name)
    im.save(path, **kw)
    return path


def test_rgb_png_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = load_image(_save(tmp_path, "a.png", Image.fromarray(rgb)))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(16 * 24, dtype=np.uint8).reshape(16, 24)
    out = load_image(_save(tmp_path, "g.png", Image.fromarray(grey, mode="L")))
    assert out.shape == (16, 24, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((12, 12, 4), dtype=np.uint8)
    rgba[:, :6] = (200, 10, 10, 255)   # opaque red half
    rgba[:, 6:] = (0, 0, 0, 0)         # fully transparent half
    out = load_image(_save(tmp_path, "t.png", Image.fromarray(rgba, mode="RGBA")))
    np.testing.assert_array_equal(out[0, 0], [200, 10, 10])
    np.testing.assert_array_equal(out[0, 11], [255, 255, 255])


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    a = np.zeros((10, 10), dtype=np.uint16)
    a[0, 0], a[0, 1], a[0, 2] = 65535, 32896, 257  # -> 255, 128, 1
    path = _save(tmp_path, "d.png", Image.fromarray(a))
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    out = load_image(path)
    assert out.dtype == np.uint8
    assert list(out[0, :3, 0]) == [255, 128, 1]
    assert out[5, 5, 0] == 0


def test_dark_16bit_png_stays_dark(tmp_path):
    # All values <= 255 in a 16-bit file: still 16-bit (255/65535 of white), not taken for 8-bit.
    a = np.full((10, 10), 255, dtype=np.uint16)
    a[0, 0] = 0
    path = _save(tmp_path, "dark.png", Image.fromarray(a))
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    out = load_image(path)
    assert out[0, 0, 0] == 0 and out[5, 5, 0] == 1  # 255 * 255 / 65535 = 0.99 -> 1
    # The same for a uint16 array handed in directly: the dtype says 16-bit.
    np.testing.assert_array_equal(array_to_rgb(a)[..., 0], out[..., 0])
    # A plain int64 array of 0..255 (numpy's default integer) stays 8-bit.
    assert array_to_rgb(a.astype(np.int64))[5, 5, 0] == 255


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path, "r.jpg", Image.fromarray(img), exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (40, 20, 3)  # width and height swapped
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white half is now on top


def test_corrupt_and_truncated_files_raise_image_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    with pytest.raises(ImageError, match="bad.png"):
        load_image(str(bad))
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(str(text))
    good = _save(tmp_path, "full.jpg", Image.fromarray(
        np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)), quality=90)
    data = open(good, "rb").read()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(str(cut))


def test_size_limits(tmp_path):
    with pytest.raises(ImageError, match=f"limit is {MAX_SIDE}"):
        load_image(np.zeros((MAX_SIDE + 1, 16, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="at least"):
        load_image(np.zeros((4, 16, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="no image"):
        load_image(None)
    with pytest.raises(ImageError, match="not found"):
        load_image(str(tmp_path / "missing.png"))


def test_array_inputs_of_other_types():
    f = np.full((9, 9), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(array_to_rgb(f), np.full((9, 9, 3), 128, dtype=np.uint8))
    with pytest.raises(ImageError):
        array_to_rgb(np.zeros((9, 9, 2)))
