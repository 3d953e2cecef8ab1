"""First look at the app: the lesson's default layer and pixel (app.lesson), the link state
(app.urlstate) and the tour's steps (app.tour). Pure functions; the browser side is in
tests/test_app_firstlook_browser.py."""

from __future__ import annotations

import os
from urllib.parse import parse_qs

import numpy as np
import pytest

from app import lesson, tour, urlstate
from app.handlers.common import MODE_AS_IS, MODE_GT
from app.region import LARGE_FIT


def _stats(mmp: list[float], ppl: list[float], t: int = 64) -> list[dict]:
    return [{"stage": i // 2, "block": i % 2, "mean_max_prob": m, "perplexity": p, "num_prompts": t}
            for i, (m, p) in enumerate(zip(mmp, ppl, strict=True))]


def test_lesson_opens_on_the_most_decided_layer_that_splits_the_picture():
    # Layer 1 is the most decided but sends every pixel to one prompt (perplexity 1, as layer 0.3 of the
    # demo weights on chelsea.png): the lesson takes layer 2, the most decided of those that split it.
    i, why = lesson.pick_layer(_stats([0.10, 0.61, 0.57, 0.02], [3.0, 1.0, 2.7, 8.0]))
    assert i == 2 and "0.57" in why and "most decided" in why and "0.02" in why
    # No layer splits the picture: the most decided of all, and the text says so.
    i, why = lesson.pick_layer(_stats([0.10, 0.61, 0.05], [1.2, 1.0, 1.9]))
    assert i == 1 and "no layer splits" in why
    with pytest.raises(ValueError):
        lesson.pick_layer([])


def test_auto_layer_values():
    assert lesson.is_auto("auto") and lesson.is_auto("") and lesson.is_auto(None)
    assert not lesson.is_auto("1.0")


def test_lesson_pixel_is_on_an_object_edge():
    img = np.full((48, 48, 3), 30, dtype=np.uint8)
    img[20:40, 10:30] = 220  # a bright square: its border is the only edge
    (r, c), why = lesson.pick_pixel(img)
    on_rows = r in (19, 20, 39, 40) and 9 <= c <= 30
    on_cols = c in (9, 10, 29, 30) and 19 <= r <= 40
    assert on_rows or on_cols, (r, c)
    assert "edge" in why and r >= lesson.EDGE_MARGIN and c >= lesson.EDGE_MARGIN


def test_lesson_pixel_avoids_a_label_of_a_few_pixels():
    img = np.full((48, 48, 3), 30, dtype=np.uint8)
    img[20:40, 10:30] = 120  # a grey square ...
    img[24:27, 24:27] = 255  # ... with a small bright spot: the strongest edge
    labels = np.zeros((48, 48), dtype=np.int64)
    labels[20:40, 10:30] = 1
    labels[23:28, 23:28] = 2  # the spot's label: 25 pixels, 1% of the picture
    (r, c), _ = lesson.pick_pixel(img)
    assert labels[r, c] == 2  # without labels: the spot
    (r, c), why = lesson.pick_pixel(img, labels)
    assert labels[r, c] in (0, 1) and "label group" in why
    window = img[max(0, r - 2):r + 3, max(0, c - 2):c + 3, 0]
    assert window.max() > window.min()  # still on an edge (here: the spot's halo inside the square's label)


EXAMPLES = {"coffee.png": "/x/assets/coffee.png", "path.png": "/x/assets/path.png"}
TASKS = ["SR x2", "SR x4"]


def test_query_round_trip():
    params = {"tab": "internals", "example": "coffee.png", "task": "SR x4", "mode": "gt", "large": "fit",
              "region": "10, 20", "layer": "1.2", "pixel": "5,7"}
    state, bad = urlstate.parse_query(params, EXAMPLES, TASKS)
    assert bad == []
    assert state == {"tab": "internals", "example": "/x/assets/coffee.png", "task": "SR x4", "mode": MODE_GT,
                     "large": LARGE_FIT, "region": "10,20", "layer": "1.2", "pixel": (5, 7)}
    back = {k: v[0] for k, v in parse_qs(urlstate.to_query(state)).items()}
    assert back == {**params, "region": "10,20"}
    assert urlstate.parse_query(back, EXAMPLES, TASKS)[0] == state


def test_query_skips_bad_values_and_leaves_defaults_out():
    params = {"tab": "nowhere", "example": "../../etc/passwd", "task": "SR x9", "mode": "fast",
              "region": "1,2,3", "layer": "top", "pixel": "-1,4", "other": "ignored"}
    state, bad = urlstate.parse_query(params, EXAMPLES, TASKS)
    assert state == {}
    skipped = sorted(b.split("=")[0] for b in bad)
    assert skipped == ["example", "layer", "mode", "pixel", "region", "tab", "task"]
    defaults = {"tab": "restore", "mode": MODE_AS_IS, "layer": "auto", "region": ""}
    assert urlstate.to_query(defaults) == "tab=restore"


def test_example_is_recognised_by_content_not_name(tmp_path):
    ex = tmp_path / "coffee.png"
    ex.write_bytes(b"example bytes")
    copy = tmp_path / "cache" / "renamed.png"
    copy.parent.mkdir()
    copy.write_bytes(b"example bytes")
    same_name = tmp_path / "upload" / "coffee.png"
    same_name.parent.mkdir()
    same_name.write_bytes(b"someone else's photo")
    assert urlstate.example_name(str(copy), [str(ex)]) == "coffee.png"
    assert urlstate.example_name(str(same_name), [str(ex)]) == ""
    assert urlstate.example_name(None, [str(ex)]) == ""


def test_tour_steps_target_existing_controls_across_the_tabs():
    from app import build_demo

    demo = build_demo()
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    tabs = {getattr(b, "label", None) for b in demo.blocks.values() if type(b).__name__ == "Tab"}
    assert 5 <= len(tour.STEPS) <= 7
    for step in tour.STEPS:
        assert step["target"] in ids and step["tab"] in tabs, step
        if "unless" in step:
            assert step["unless"] in ids, step
    assert [s["title"] for s in tour.STEPS] == ["Restore", "Route", "Sort", "Scan with the prompt", "Unsort",
                                                 "LAM", "Evidence"]
    assert "tour-btn" in ids and "example-name" in ids
    from app.layout import example_files

    assert tour.TOUR_EXAMPLE in {os.path.basename(p) for p in example_files()}
