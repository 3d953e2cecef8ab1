"""The step-through data (viz.stepscan) from real captures of tiny random MambaIRv2-light / MambaIR.

The split of each output into "from earlier positions" and "own" must equal the implicit attention
row of viz.attention (an independent, exact computation) and add up to the captured output; the
visit orders must be the label sort and the raster scan; the still frames must show t read pixels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.capture import capture
from viz import sequence, stepscan
from viz.ase import prompt_indices
from viz.attention import implicit_attention_row

pytestmark = pytest.mark.usefixtures("ref_scan")
HW = (10, 12)  # not a multiple of the window (8): the grid is padded, padded pixels must be dropped


@pytest.fixture(scope="module")
def records(v2net, v1net):
    """(MambaIRv2 ASSM record, MambaIR SS2D record, image) of one 10x12 input."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, *HW, generator=g)
    out = []
    for net in (v2net, v1net):
        with torch.no_grad(), capture(net) as rec:
            net(x)
        out.append(rec.assm[0] if rec.assm else rec.ss2d[0])
    img = (x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return out[0], out[1], img


def _earlier_from_rows(scan: dict, i: int, channels: slice | None = None, group: int = 0) -> np.ndarray:
    """(D',) sum_{j<i} alpha[d, i, j] u[d, j] from viz.attention's exact row."""
    row = implicit_attention_row(scan, i, channels=channels, group=group, include_skip=False)  # (D', i+1)
    u = torch.as_tensor(scan["u"])[0].double()
    u = u[channels] if channels is not None else u
    return (row[:, :i] * u[:, :i]).sum(dim=1).numpy()


def test_output_split_matches_the_implicit_attention_rows(records):
    v2, v1, _ = records
    earlier, own = stepscan.output_split(v2)
    np.testing.assert_allclose(earlier + own, v2["scan_out"][0].double().numpy(), rtol=0, atol=1e-12)
    L = earlier.shape[1]
    for i in (0, 1, 7, L // 2, L - 1):
        np.testing.assert_allclose(earlier[:, i], _earlier_from_rows(v2["scan"], i), rtol=1e-4, atol=1e-6)
    # Nothing was read before the first position (up to float32 rounding of the captured output).
    assert np.abs(earlier[:, 0]).max() <= 1e-5 * np.abs(own).max()
    # MambaIR: scan k reads its own channel block and B/C group.
    dk = v1["scan"]["u"].shape[1] // 4
    for k in (0, 2):
        ch = slice(k * dk, (k + 1) * dk)
        e1, _ = stepscan.output_split(v1, channels=ch, group=k)
        for i in (3, e1.shape[1] - 2):
            np.testing.assert_allclose(e1[:, i], _earlier_from_rows(v1["scan"], i, ch, k), rtol=1e-4,
                                       atol=1e-6)


def test_step_data_orders_prompts_and_shares(records):
    v2, v1, img = records
    px = (4, 9)
    data = json.loads(json.dumps(stepscan.step_data(v2, v1, img, HW, pixel=px)))  # JSON round trip
    n = HW[0] * HW[1]
    assert np.array_equal(stepscan.image_of(data), img)
    o2, o1 = np.asarray(data["v2"]["order"]), np.asarray(data["v1"]["order"])
    assert sorted(o2.tolist()) == list(range(n)) and o1.tolist() == list(range(n))  # row-major scan
    labels = np.asarray(data["labels"])
    assert np.all(np.diff(labels[o2]) >= 0)  # SGN: grouped by label...
    for k in np.unique(labels):  # ...raster order inside a group (stable sort)
        assert np.all(np.diff(o2[labels[o2] == k]) > 0)
    rc, _ = sequence.scan_sequence(v2, HW)
    assert np.array_equal(o2, rc[:, 0] * HW[1] + rc[:, 1])
    at = int(np.flatnonzero(o2 == px[0] * HW[1] + px[1])[0])
    assert data["v2"]["prompt"][at] == prompt_indices(v2, px)[1]  # the prompt the layer added there
    for net in ("v2", "v1"):
        s = np.asarray(data[net]["share"])
        assert s.shape == (n,) and s.min() >= 0 and s.max() <= 1
        assert s[0] < 1e-3 and s[1:].max() > 0  # the first output has nothing earlier to read from
    assert data["pixel"] == list(px) and len(data["colors"]) >= labels.max() + 1


def test_frames_show_t_read_pixels(records):
    v2, v1, img = records
    img = img.copy()
    img[np.all(img == stepscan.UNREAD_RGB, axis=-1)] = 0  # no photo pixel looks unread
    data = stepscan.step_data(v2, v1, img, HW)
    zoom = 4
    for t in (0, 1, 37, HW[0] * HW[1]):
        for net in ("v2", "v1"):
            pic = stepscan.panel(data, net, t, zoom)
            centres = pic[zoom // 2::zoom, zoom // 2::zoom]  # (H, W, 3): one sample per cell
            read = ~np.all(centres == stepscan.UNREAD_RGB, axis=-1)
            assert read.sum() == t, (net, t)
            assert np.array_equal(read, stepscan.read_mask(data[net]["order"], t, HW))
    # Step 37: the pixel just read is boxed (cyan edge around its cell).
    p = data["v1"]["order"][36]
    pic = stepscan.panel(data, "v1", 37, zoom)
    r, c = (p // HW[1]) * zoom, (p % HW[1]) * zoom
    assert tuple(pic[r - 1, c + 1]) == (0, 255, 255) or r == 0
    frame = stepscan.step_frame(data, 37, zoom)
    assert frame.dtype == np.uint8 and frame.shape[1] == 2 * HW[1] * zoom + 8
    strip = stepscan.frame_strip(data, [0, 60, 120], zoom=2)
    assert strip.shape[0] > 3 * HW[0] * 2


def test_step_data_with_one_network(records):
    v2, v1, img = records
    only_v1 = stepscan.step_data(None, v1, img, HW)
    assert only_v1["v2"] is None and only_v1["labels"] is None
    assert stepscan.step_frame(only_v1, 5).shape[1] == HW[1] * 4
    with pytest.raises(ValueError):
        stepscan.step_data(None, None, img, HW)


def test_lesson_figures_hover_in_plain_words(records):
    """Every hoverable trace of the lesson figures has a hover text; the image-shaped ones name the pixel
    as (x, y) and, for MambaIRv2, its label, the prompt added there and its step (checked against the
    step-through's data)."""
    from viz import ase, attention, hover, prompts, routing, sgn

    v2, v1, img = records
    px = (4, 9)
    facts = hover.pixel_facts(v2, HW)
    data = stepscan.step_data(v2, v1, img, HW, pixel=px)
    pos = data["v2"]["order"].index(px[0] * HW[1] + px[1])
    labels = np.asarray(data["labels"]).reshape(HW)
    group = (labels == labels[px]).sum()
    assert facts[px].tolist() == [labels[px], data["v2"]["prompt"][pos], pos + 1, group]
    amap = attention.implicit_attention_map(v2, px, image_hw=HW)
    pixel_figs = [sgn.label_map_figure(v2, image=img, image_hw=HW, pixel=px),
                  ase.ase_figure(v2, image=img, image_hw=HW, pixel=px),
                  attention.attention_figure(amap, image=img, pixel=px, record=v2),
                  sequence.scan_orders_figure(v1, image_hw=HW, pixel=px)]
    other_figs = [sequence.sequence_distance_figure(v2, image_hw=HW, pixel=px),
                  routing.routing_histogram(v2, HW), routing.usage_heatmap([v2], HW),
                  prompts.prompt_projection(v2, image_hw=HW, pixel=px),
                  prompts.prompt_similarity(v2, image_hw=HW)]
    pixel_maps = 0
    for fig in pixel_figs + other_figs:
        for tr in fig.data:
            x = getattr(tr, "x", None)
            if tr.hoverinfo == "skip" or tr.type == "histogram" or (x is not None and x[0] is None):
                continue
            text = tr.hovertemplate or ""
            assert text and "row %{y}, col" not in text, (tr.type, text)
            if tr.type in ("heatmap", "image") and any(fig is f for f in pixel_figs):
                pixel_maps += 1
                assert text.startswith("pixel (x %{x}, y %{y})"), text
                if "label %{customdata" in text:
                    cd = np.asarray(tr.customdata)
                    assert cd[px][-4:].tolist() == facts[px].tolist()
    assert pixel_maps >= 8


def test_captions_say_what_this_image_shows(records):
    """Two lines per step, with the numbers of this image: the largest label group, the pixel's step in
    SGN order and in the row-major scan, its share from earlier pixels, the attention's reach."""
    from viz import attention, captions

    v2, v1, img = records
    px = (4, 9)
    data = stepscan.step_data(v2, v1, img, HW, pixel=px)
    amaps = [attention.implicit_attention_map(r, px, image_hw=HW) for r in (v2, v1)]
    caps = captions.lesson_captions(v2, v1, HW, px, data, *amaps)
    assert set(caps) == set(captions.STEPS)
    for step, text in caps.items():
        assert text.count(captions.BREAK) == 1, (step, text)
    labels = np.asarray(data["labels"])
    counts = np.bincount(labels)
    top = int(np.argmax(counts))
    assert f"Label {top} holds {counts[top]} pixels" in caps["route"]
    assert f"got label {labels[px[0] * HW[1] + px[1]]}" in caps["pick"] and "(x 9, y 4)" in caps["pick"]
    pos = data["v2"]["order"].index(px[0] * HW[1] + px[1])
    assert f"read at step {pos + 1} of {HW[0] * HW[1]}" in caps["sort"]
    assert f"reads it at step {px[0] * HW[1] + px[1] + 1}" in caps["sort"]
    assert f"{100 * data['v2']['share'][pos]:.1f}% of your pixel's MambaIRv2 output" in caps["scan"]
    assert "MambaIRv2's output at your pixel reads" in caps["unsort"]
    # Another pixel, other words: the captions are computed, not fixed.
    other = captions.lesson_captions(v2, v1, HW, (0, 0), stepscan.step_data(v2, v1, img, HW, (0, 0)))
    assert other["sort"] != caps["sort"] and other["unsort"] == ""
