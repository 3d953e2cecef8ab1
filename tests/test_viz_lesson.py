"""The lesson view's marks: every picture given ``pixel=`` marks the same pixel, and what it says about
that pixel (label group, sorted position, prompt, ASE values, preceding pixels) is checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from test_viz_internals import make_record  # tests/ is on sys.path (pytest's rootdir-less import)

from viz.arrays import PIXEL_COLOR, PIXEL_RGB, box_pixel, pixel_rc
from viz.ase import added_prompt_raster, ase_figure, c_raster, prompt_indices
from viz.attention import attention_figure
from viz.prompts import prompt_projection
from viz.sequence import scan_orders_figure, scan_sequence, sequence_distance_figure, sequence_ribbon
from viz.sgn import label_map_figure, label_overlay, same_label_mask

# 6x6 grid, 5x6 image; labels chosen so that pixel (1, 4) has label 2 shared with 4 other pixels.
LABELS = np.array([0, 0, 1, 1, 2, 0,
                   0, 1, 1, 3, 2, 0,
                   3, 3, 1, 2, 2, 0,
                   1, 1, 1, 0, 0, 0,
                   3, 0, 2, 1, 1, 0,
                   1, 1, 1, 1, 1, 1])
PIXEL = (1, 4)
HW = (5, 6)


def _marks(fig) -> list[tuple[float, float]]:
    """(x, y) of every cyan cross in a figure."""
    return [(t.x[0], t.y[0]) for t in fig.data
            if t.type == "scatter" and t.marker is not None and t.marker.color == PIXEL_COLOR
            and t.x and t.x[0] is not None]


@pytest.fixture(params=["official", "aligned"])
def rec(request) -> dict:
    return make_record(LABELS, 6, 6, T=4, N=3, seed=1, order=request.param)


def test_pixel_marks_are_checked():
    assert pixel_rc(None, HW) is None and pixel_rc((4, 5), HW) == (4, 5)
    with pytest.raises(ValueError, match="outside"):
        pixel_rc((5, 0), HW)
    img = np.zeros((20, 20, 3), np.uint8)
    boxed = box_pixel(img, (2, 3), zoom=4)  # cell rows 8..11, cols 12..15, outline one pixel outside
    assert tuple(boxed[7, 12]) == PIXEL_RGB and tuple(boxed[12, 16]) == PIXEL_RGB
    assert boxed[9:11, 13:15].max() == 0  # the cell itself is not painted over


def test_sgn_same_label_group(rec):
    mask = same_label_mask(rec, PIXEL, HW)
    np.testing.assert_array_equal(mask, LABELS.reshape(6, 6)[:5] == 2)
    assert mask.sum() == 5
    fig = label_map_figure(rec, np.full(HW + (3,), 100, np.uint8), pixel=PIXEL)
    assert _marks(fig) == [(4, 1), (4, 1)]  # (col, row) on the input and on the label map
    shown = fig.data[0].z  # the input with the other labels faded towards white
    assert (np.asarray(shown)[mask] == 100).all() and (np.asarray(shown)[~mask] > 200).all()
    assert "label 2, shared by 5 pixels" in fig.layout.title.text
    over = label_overlay(np.full((15, 18, 3), 100, np.uint8), rec, image_hw=HW, pixel=PIXEL)
    # zoom 3 < 4: the 3x3 cells around the pixel are boxed (rows 0-2, cols 3-5 -> picture 0..9, 8..17).
    assert tuple(over[0, 10]) == PIXEL_RGB and tuple(over[9, 8]) == PIXEL_RGB
    assert tuple(over[4, 13]) != PIXEL_RGB  # the pixel's own cell is not painted


def test_sequence_marks_the_sorted_position(rec):
    rc, labels = scan_sequence(rec, HW)
    at = int(np.flatnonzero((rc[:, 0] == 1) & (rc[:, 1] == 4))[0])
    # Stable sort: label 0 (11 pixels in the image), label 1 (10), then label 2 in raster order: (0,4) first.
    assert at == 11 + 10 + 1
    fig = sequence_distance_figure(rec, HW, pixel=PIXEL)
    assert _marks(fig) == [(at, 1 * 6 + 4)]
    rib = sequence_ribbon(rec, np.full(HW + (3,), 100, np.uint8), bar=1, zoom=4, pixel=PIXEL)
    r, c = (at // 6) * 2 * 4, (at % 6) * 4  # ribbon row block (pixels + 1 bar row), zoom 4
    assert tuple(rib[r - 1, c]) == PIXEL_RGB  # the box's top edge just above the cell
    same = labels == 2
    row_px = rib[2::8, 2::4].reshape(-1, 3)[: len(labels)]  # the centre of each pixel cell
    assert (row_px[same] == 100).all() and (row_px[~same] > 200).all()


def test_raster_scans_show_what_precedes_the_pixel():
    fig = scan_orders_figure((6, 6), image_hw=HW, pixel=PIXEL)
    titles = [a.text for a in fig.layout.annotations]
    # row-major: 1*6+4 = 10 before it; column-major: 4 columns of 5 + 1 = 21; reversed: the rest.
    assert [int(t.split("<br>")[1].split()[0]) for t in titles] == [10, 21, 30 - 1 - 10, 30 - 1 - 21]
    assert _marks(fig) == [(4, 1)] * 4


def test_prompt_pool_marks_own_and_added_prompt(rec):
    own, added = prompt_indices(rec, PIXEL)
    assert own == 2
    j = 1 * 6 + 4
    inv = rec["inv_perm"][0].numpy()
    assert added == (2 if rec["prompt_order"] == "aligned" else int(LABELS[inv[j]]))
    fig = prompt_projection(rec, pixel=PIXEL)
    rings = [t for t in fig.data if t.marker.color == PIXEL_COLOR]
    assert len(rings) == (1 if own == added else 2)
    assert f"prompt {own}" in fig.layout.title.text


def test_ase_panel_shows_the_pixel_query(rec):
    fig = ase_figure(rec, image_hw=HW, pixel=PIXEL)
    bars = [t for t in fig.data if t.type == "bar"]
    j = 1 * 6 + 4
    np.testing.assert_allclose(bars[0].y, c_raster(rec)[j])
    np.testing.assert_allclose(bars[1].y, added_prompt_raster(rec)[j])
    np.testing.assert_allclose(bars[2].y, c_raster(rec)[j] + added_prompt_raster(rec)[j])
    assert _marks(fig) == [(4, 1), (4, 1)]


def test_attention_marks_the_query_pixel():
    fig = attention_figure(np.ones(HW), image=np.zeros(HW + (3,), np.uint8), pixel=PIXEL)
    assert _marks(fig) == [(4, 1), (4, 1)]
