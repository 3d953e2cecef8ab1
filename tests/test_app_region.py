"""app.region: which part of a large photo the networks see, and at what size."""

from __future__ import annotations

import numpy as np
import pytest

from app.io import MAX_SIDE, ImageError
from app.region import LARGE_FIT, REGION_SIDE, apply_plan, choose_box, describe, parse_region, plan_input


def test_parse_region_forms_and_errors():
    assert parse_region("") is None and parse_region(None) is None
    assert parse_region("10, 20") == (10, 20)
    assert parse_region("1,2,30.4,40") == (1, 2, 30, 40)
    for bad in ("1", "1,2,3", "a,b", "-1,5"):
        with pytest.raises(ImageError, match="region"):
            parse_region(bad)


def test_photo_that_fits_is_used_whole():
    plan = plan_input((600, 800))
    assert plan.how == "whole" and plan.box == (0, 0, 600, 800) and plan.net_hw == (600, 800)


def test_default_region_is_the_centre():
    plan = plan_input((1600, 2560))
    assert plan.how == "region" and plan.net_hw == (REGION_SIDE, REGION_SIDE)
    t, left, b, r = plan.box
    assert (t + b) / 2 == 800 and (left + r) / 2 == 1280


def test_click_moves_the_window_and_it_stays_inside():
    t, left, b, r = choose_box((1600, 2560), (2550, 10), 512, MAX_SIDE)  # near the top-right corner
    assert (t, b) == (0, 512) and (left, r) == (2560 - 512, 2560)
    t, left, b, r = choose_box((1600, 2560), (1000, 700), 512, MAX_SIDE)
    assert (left + r) // 2 == 1000 and (t + b) // 2 == 700
    with pytest.raises(ImageError, match="outside"):
        choose_box((1600, 2560), (3000, 10), 512, MAX_SIDE)


def test_drawn_box_is_sorted_clipped_and_capped():
    assert choose_box((1600, 2560), (300, 200, 100, 50), 512, MAX_SIDE) == (50, 100, 200, 300)
    t, left, b, r = choose_box((1600, 2560), (0, 0, 2560, 1600), 512, MAX_SIDE)  # whole photo drawn
    assert (r - left, b - t) == (MAX_SIDE, MAX_SIDE)
    assert (left + r) // 2 == 1280 and (t + b) // 2 == 800


def test_tiny_box_is_refused_with_a_message():
    with pytest.raises(ImageError, match="at least"):
        plan_input((1600, 2560), "10,10,13,40")


def test_downscale_to_fit_keeps_the_aspect_ratio():
    plan = plan_input((1600, 2560), large=LARGE_FIT)
    assert plan.how == "downscaled" and plan.net_hw == (640, MAX_SIDE)
    rgb = np.zeros((1600, 2560, 3), dtype=np.uint8)
    rgb[:, 1280:] = 255
    out = apply_plan(rgb, plan)
    assert out.shape == (640, MAX_SIDE, 3) and out[:, :500].max() == 0 and out[:, 530:].min() == 255


def test_ground_truth_mode_applies_the_limit_after_downscaling():
    # x4: a 2560x1600 photo is a 640x400 LR input: all of it is used.
    plan = plan_input((1600, 2560), factor=1 / 4)
    assert plan.how == "whole" and plan.net_hw == (400, 640)
    # x2: 1280x800 is over the limit: a region of REGION_SIDE network pixels = 2 * REGION_SIDE photo pixels.
    plan = plan_input((1600, 2560), factor=1 / 2)
    assert plan.how == "region" and plan.net_hw == (REGION_SIDE, REGION_SIDE)
    assert plan.box[3] - plan.box[1] == 2 * REGION_SIDE


def test_crop_is_the_box_and_describe_says_sizes():
    rgb = np.arange(40 * 50 * 3, dtype=np.uint32).reshape(40, 50, 3).astype(np.uint8)
    plan = plan_input((40, 50), "5,6,25,30", max_side=16, side=16)
    np.testing.assert_array_equal(apply_plan(rgb, plan), rgb[10:26, 7:23])  # capped about its centre
    text = describe(plan, 4, 95.0)
    assert "Output 64x64" in text and "about 2 min" in text and "x 7–22, y 10–25" in text


# --- the default region of a large photo: its most detailed window -------------------------------------


def _smooth_photo_with_patch(h: int = 1600, w: int = 2560,
                             patch: tuple[int, int, int, int] = (300, 1800, 500, 2000), seed: int = 0
                             ) -> np.ndarray:
    """A smooth colour ramp with faint sensor noise, and one checkerboard patch (top, left, bottom, right)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([60 + xx * 0.05, 120 + yy * 0.05, np.full(xx.shape, 80.0)], axis=-1)
    rgb += rng.normal(0, 1.0, rgb.shape)
    t, left, b, r = patch
    checker = ((yy[t:b, left:r] // 6 + xx[t:b, left:r] // 6) % 2)[..., None]
    rgb[t:b, left:r] = np.where(checker == 0, 30.0, 220.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_window_means_equal_the_brute_force_means():
    from app.region import window_means

    v = np.random.default_rng(1).random((13, 17))
    got = window_means(v, 4, 5)
    assert got.shape == (10, 13)
    want = np.array([[v[i:i + 4, j:j + 5].mean() for j in range(13)] for i in range(10)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_default_region_of_a_large_photo_is_its_most_detailed_window():
    """Measure: mean gradient magnitude of the luma; the only textured patch of the photo must be inside."""
    from app.region import DETAIL_MEASURE, box_detail

    rgb = _smooth_photo_with_patch()
    plan = plan_input(rgb.shape[:2], "", photo=rgb)
    t, left, b, r = plan.box
    assert plan.how == "region" and (b - t, r - left) == (REGION_SIDE, REGION_SIDE)
    assert t <= 300 and b >= 500 and left <= 1800 and r >= 2000  # the 200x200 patch is all inside
    assert "most detailed" in plan.why and DETAIL_MEASURE in plan.why
    centre = plan_input(rgb.shape[:2], "").box  # without the pixels: the centre, as before
    assert box_detail(rgb, plan.box) > 20 * box_detail(rgb, centre)
    assert "most detailed" in describe(plan, 2, None)
    # A click still moves it: a point is a window around the point, whatever the detail.
    moved = plan_input(rgb.shape[:2], "100,100", photo=rgb)
    assert moved.box == (0, 0, REGION_SIDE, REGION_SIDE) and moved.why == ""


def test_ground_truth_mode_picks_the_detail_at_the_photo_scale():
    rgb = _smooth_photo_with_patch(patch=(1100, 300, 1300, 500))
    plan = plan_input(rgb.shape[:2], "", factor=1 / 2, photo=rgb)
    t, left, b, r = plan.box
    assert plan.net_hw == (REGION_SIDE, REGION_SIDE) and (b - t, r - left) == (2 * REGION_SIDE,) * 2
    assert t <= 1100 and b >= 1300 and left <= 300 and r >= 500


def test_evenly_textured_photo_keeps_the_centre():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)  # the same noise everywhere
    plan = plan_input(rgb.shape[:2], "", photo=rgb)
    assert plan.box == plan_input(rgb.shape[:2], "").box and plan.why.startswith("the centre")


def test_edge_pixel_is_on_the_edge_and_away_from_the_border():
    from app.region import edge_pixel

    img = np.zeros((40, 50, 3), dtype=np.uint8)
    img[:, 30:] = 200  # one vertical edge between columns 29 and 30
    img[0, 0] = 255     # a bright corner pixel: in the border margin, never chosen
    r, c = edge_pixel(img, margin=4)
    assert c in (29, 30) and 4 <= r < 36
    img2 = np.zeros((40, 50, 3), dtype=np.uint8)
    img2[:, 2:] = 200  # an edge only inside the margin: the pixel stays at least 4 from the border
    assert edge_pixel(img2, margin=4)[1] >= 4
