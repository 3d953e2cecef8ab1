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
