"""LAM, diffusion index, IG and saliency (viz/lam.py) against LAM_Demo's reference and independent oracles."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, stats
from torch import nn

from viz import lam

DATA = Path(__file__).parent / "data"


def tiny_sr() -> nn.Module:
    """A small x2 conv net: fast, smooth, with non-trivial gradients everywhere."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 12, 3, padding=1),
                         nn.PixelShuffle(2)).eval()


def lr_image(size: int = 12, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g)


# ----------------------------------------------------------------------------- Gini / DI


def test_gini_uniform_map_gives_di_near_100():
    assert lam.diffusion_index(np.full((16, 16), 0.7)) == pytest.approx(100.0, abs=1e-6)


def test_gini_one_hot_gives_di_near_0():
    m = np.zeros((16, 16))
    m[5, 7] = 1.0
    # LAM_Demo's formula: one non-zero value among n gives Gini = (n - 1) / n (up to the +1e-7).
    n = m.size
    assert lam.gini(m) == pytest.approx((n - 1) / n, abs=1e-4)
    assert lam.diffusion_index(m) < 0.5


def test_gini_matches_mean_absolute_difference_definition():
    # Gini = sum_ij |x_i - x_j| / (2 n^2 mean): an independent formula for non-negative data.
    x = np.random.default_rng(0).random(50) + 0.1
    x_eps = x + 1e-7
    expected = np.abs(x_eps[:, None] - x_eps[None, :]).sum() / (2 * x.size**2 * x_eps.mean())
    assert lam.gini(x) == pytest.approx(expected, rel=1e-9)
    # Negative values are shifted as in LAM_Demo, so a shift does not change it.
    assert lam.gini(x - 5.0) == pytest.approx(lam.gini(x - x.min()), rel=1e-9)


def test_wider_map_has_larger_di():
    yy, xx = np.mgrid[0:32, 0:32]
    narrow = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / (2 * 2.0**2))
    wide = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / (2 * 6.0**2))
    assert lam.diffusion_index(wide) > lam.diffusion_index(narrow) + 10


# ----------------------------------------------------------------------------- blur (cv2 semantics)


def test_gaussian_kernel_1d_is_cv2_formula():
    # cv2.getGaussianKernel(k, s): alpha * exp(-(i - (k-1)/2)^2 / (2 s^2)), sum 1; via scipy's normal pdf.
    for k, s in [(9, 1.2), (5, 0.5), (7, 3.0)]:
        pdf = stats.norm.pdf(np.arange(k) - (k - 1) / 2, scale=s)
        np.testing.assert_allclose(lam.gaussian_kernel_1d(k, s), pdf / pdf.sum(), rtol=1e-12)


def test_gaussian_kernel_is_lam_isotropic_kernel():
    # LAM_Demo: exp(-(x^2 + y^2) / (2 (sigma + 1e-5)^2)) on a 9x9 grid centred at 0, normalised.
    ax = np.arange(-4, 5, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    ref = np.exp(-(xx**2 + yy**2) / (2 * (1.2 + 1e-5) ** 2))
    np.testing.assert_allclose(lam.gaussian_kernel(9, 1.2), ref / ref.sum(), rtol=1e-12)
    # sigma = 0 (the path's end) is the identity.
    delta = lam.gaussian_kernel(9, 0.0)
    assert delta[4, 4] == pytest.approx(1.0) and delta.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(3, 13, 17), (3, 5, 4)])
def test_filter_is_reflect101_like_cv2_filter2d(shape):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    kernel = np.random.default_rng(1).random((9, 9))  # asymmetric: checks correlation, not convolution
    ours = lam.filter_reflect101(img, kernel)[0]
    # scipy's "mirror" is cv2's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba).
    ref = np.stack([ndimage.correlate(c.astype(np.float64), kernel, mode="mirror") for c in img])
    if min(shape[1:]) > 4:  # scipy and cv2 agree only while the pad fits inside the image
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    # cv2 (LAM_Demo's own filter) is the reference in every case, also where the 9x9 kernel's pad is
    # wider than the image; opencv-python-headless is in requirements-dev.txt.
    import cv2

    ref_cv = np.moveaxis(cv2.filter2D(np.moveaxis(img, 0, 2), -1, kernel), 2, 0)
    np.testing.assert_allclose(ours, ref_cv, atol=1e-5)


def test_blur_path_ends_at_input_and_derivative_integrates_to_difference():
    img = lr_image(10)[0].numpy()
    points, weights = lam.blur_path(img, 1.2, 20, 9)
    assert points.shape == (20, 3, 10, 10)
    np.testing.assert_allclose(points[-1], img, atol=1e-6)  # sigma 0: the input itself
    np.testing.assert_allclose(points[0], lam.blur(img, 1.2 * 19 / 20, 9), atol=1e-6)
    # Telescoping: sum of derivative / steps = input - blur(sigma).
    np.testing.assert_allclose(weights.sum(0), img - lam.blur(img, 1.2, 9), atol=1e-5)


def test_kernel_sigma_derivative_is_exact():
    for sigma in (0.2, 0.7, 1.2):
        e = 1e-6
        fd = (lam.gaussian_kernel(9, sigma + e) - lam.gaussian_kernel(9, sigma - e)) / (2 * e)
        np.testing.assert_allclose(lam.gaussian_kernel_dsigma(9, sigma), fd, atol=1e-8)


def test_gauss_path_derivative_integrates_to_difference_geometrically():
    # The quadrature of the path derivative alone has a known answer, input - blur(sigma); in q the
    # path is analytic, so the error falls geometrically with the nodes.
    img = lr_image(10)[0].numpy()
    exact = img - lam.blur(img, 1.2, 9)
    errors = [np.abs(lam.blur_path_gauss(img, 1.2, n, 9)[1].sum(0) - exact).max() for n in (3, 5, 8)]
    assert errors[0] > 10 * errors[1] > 100 * errors[2]
    assert errors[2] < 1e-6
    points, _ = lam.blur_path_gauss(img, 1.2, 8, 9)
    assert points.shape == (8, 3, 10, 10)
    # Nodes run from the most blurred to the least, inside the path (sigma in (0, 1.2)).
    dist = [np.abs(p - img).mean() for p in points]
    assert all(a > b for a, b in zip(dist, dist[1:], strict=False)) and dist[-1] > 0
    assert dist[0] < np.abs(lam.blur(img, 1.2, 9) - img).mean()


def test_fast_lam_converges_to_the_integral_lam_demo_approximates():
    # LAM_Demo's rule is first order: 4000 steps are ~80x closer to the integral than 50.
    net, x = tiny_sr(), lr_image()
    kw = dict(h=4, w=6, window=8)
    limit = lam.local_attribution_map(net, x, steps=4000, batch_size=500, **kw).attribution
    demo = lam.local_attribution_map(net, x, **kw)  # LAM_Demo's 50 steps by default
    fast = lam.local_attribution_map(net, x, fast=True, **kw)
    assert demo.steps == 50 and fast.steps == lam.FAST_NODES and fast.extra["quadrature"] != "lam"

    def err(a: np.ndarray) -> float:
        return float(np.abs(a - limit).sum() / np.abs(limit).sum())

    # Kinks of the objective (sqrt near 0) keep Gauss-Legendre from its geometric rate here: measured
    # 0.83% for 50 steps, 0.60% / 0.35% / 0.11% for 4 / 8 / 16 nodes.
    assert err(fast.attribution) < err(demo.attribution)
    more = lam.local_attribution_map(net, x, fast=True, steps=16, **kw).attribution
    fewer = lam.local_attribution_map(net, x, fast=True, steps=4, **kw).attribution
    assert err(more) < err(demo.attribution) / 5 and err(fewer) > err(fast.attribution) > err(more)
    with pytest.raises(ValueError, match="blur path"):
        lam.local_attribution_map(net, x, fast=True, path="linear", **kw)


# ----------------------------------------------------------------------------- methods on a tiny model


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre"])
def test_linear_path_lam_equals_captum_ig(method):
    net, x = tiny_sr(), lr_image()
    ours = lam.local_attribution_map(net, x, h=4, w=6, window=8, steps=9, path="linear", method=method,
                                     batch_size=4)
    ig = lam.integrated_gradients(net, x, h=4, w=6, window=8, steps=9, method=method, batch_size=3)
    scale = np.abs(ig.attribution).max()
    assert scale > 0
    np.testing.assert_allclose(ours.attribution, ig.attribution, atol=1e-5 * scale)
    assert ours.diffusion_index == pytest.approx(ig.diffusion_index, abs=1e-3)


def test_trapezoid_differs_from_captum_by_its_step_size():
    # captum's riemann_trapezoid uses step 1/n where the trapezoid rule has 1/(n-1).
    net, x, n = tiny_sr(), lr_image(), 8
    ours = lam.local_attribution_map(net, x, h=4, w=6, window=8, steps=n, path="linear",
                                     method="riemann_trapezoid")
    ig = lam.integrated_gradients(net, x, h=4, w=6, window=8, steps=n, method="riemann_trapezoid")
    np.testing.assert_allclose(ig.attribution, ours.attribution * (n - 1) / n,
                               atol=1e-5 * np.abs(ig.attribution).max())


def test_ig_completeness_with_many_steps():
    # IG's defining property: attributions sum to f(input) - f(baseline).
    net, x = tiny_sr(), lr_image()
    res = lam.integrated_gradients(net, x, h=4, w=6, window=8, steps=64)
    base = torch.from_numpy(lam.blur(x[0].numpy(), 1.2, 9))[None]
    with torch.no_grad():
        gap = float(lam.attr_grad(net(x), 4, 6, 8) - lam.attr_grad(net(base), 4, 6, 8))
    assert res.attribution.sum() == pytest.approx(gap, rel=1e-3)


def test_saliency_is_plain_autograd_gradient():
    net, x = tiny_sr(), lr_image()
    res = lam.saliency(net, x, h=2, w=3, window=10)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(lam.attr_grad(net(xx), 2, 3, 10).sum(), xx)
    np.testing.assert_allclose(res.attribution, g[0].numpy(), rtol=1e-6, atol=1e-8)
    assert res.abs_norm.max() == pytest.approx(1.0)


def test_lam_blur_path_matches_unbatched_loop_and_result_fields():
    # LAM_Demo's Path_gradient loop written out plainly, one image per forward.
    net, x, steps = tiny_sr(), lr_image(), 7
    points, derivs = lam.blur_path(x[0].numpy(), 1.2, steps, 9)
    terms = []
    for p, d in zip(points, derivs * steps, strict=True):  # ours are divided by steps
        t = torch.from_numpy(p)[None].requires_grad_(True)
        lam.attr_grad(net(t), 3, 5, 8).sum().backward()
        terms.append(t.grad[0].numpy() * d)
    expected = np.mean(terms, axis=0)
    res = lam.local_attribution_map(net, x, h=3, w=5, window=8, steps=steps, batch_size=3)
    np.testing.assert_allclose(res.attribution, expected, atol=1e-6 * np.abs(expected).max())
    assert res.attribution.shape == (3, 12, 12) and res.abs_norm.shape == (12, 12)
    assert res.sr.shape == (3, 24, 24) and res.batch_size == 3 and res.steps == steps
    assert res.diffusion_index == pytest.approx(lam.diffusion_index(lam.grad_abs_norm(expected)))


def test_progress_called_once_per_step():
    net, x = tiny_sr(), lr_image()
    calls: list[tuple[int, int]] = []
    lam.local_attribution_map(net, x, h=0, w=0, window=8, steps=11, batch_size=4,
                              progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 11) for i in range(1, 12)]


@pytest.mark.parametrize("h,w,window", [(-1, 0, 8), (20, 0, 8), (0, 17, 8), (0, 0, 0), (0, 0, 25)])
def test_bad_window_raises_clear_error(h, w, window):
    net, x = tiny_sr(), lr_image()  # output 24x24
    with pytest.raises(ValueError, match="outside the 24x24 output|window must be"):
        lam.local_attribution_map(net, x, h=h, w=w, window=window, steps=2)
    with pytest.raises(ValueError, match="outside the 24x24 output|window must be"):
        lam.saliency(net, x, h=h, w=w, window=window)


def test_bad_window_raises_before_forward_when_scale_is_known():
    net = tiny_sr()
    net.upscale = 2
    calls = []
    net.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match="outside the 24x24 output"):
        lam.local_attribution_map(net, lr_image(), h=0, w=20, window=8)
    assert calls == []


# ----------------------------------------------------------------------------- figures


def test_kde_map_equals_scipy_gaussian_kde():
    m = np.random.default_rng(0).random((9, 11)) ** 3
    ys, xs = np.mgrid[0:9, 0:11]
    pos = np.vstack([xs.ravel(), ys.ravel()])
    ref = stats.gaussian_kde(pos, weights=m.ravel())(pos).reshape(m.shape)
    np.testing.assert_allclose(lam.kde_map(m), ref / ref.max(), rtol=1e-5, atol=1e-6)


def test_seismic_matches_matplotlib():
    mpl = pytest.importorskip("matplotlib")
    v = np.linspace(0, 1, 101)
    ref = (255 * mpl.colormaps["seismic"](v)[:, :3]).astype(np.uint8)
    # matplotlib builds its table with another float formula: off by at most one level.
    assert np.abs(lam.seismic(v).astype(int) - ref.astype(int)).max() <= 1


def test_figures_are_uint8_and_show_the_box():
    net, x = tiny_sr(), lr_image()
    a = lam.local_attribution_map(net, x, h=4, w=6, window=8, steps=3)
    b = lam.saliency(net, x, h=4, w=6, window=8)
    panels = lam.lam_panels(a)
    assert set(panels) == {"output", "attribution", "blend", "kde"}
    assert all(p.shape == (24, 24, 3) and p.dtype == np.uint8 for p in panels.values())
    box = panels["output"]
    assert tuple(box[4, 6]) == (255, 0, 0) and tuple(box[11, 13]) == (255, 0, 0)  # corners of the box
    fig = lam.lam_figure(a)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    both = lam.lam_side_by_side({"MambaIRv2": a, "MambaIR": b})
    assert both.shape[0] == 2 * fig.shape[0] and both.shape[1] == fig.shape[1]


# ----------------------------------------------------------------------------- LAM_Demo reference


def test_lam_matches_lam_demo_reference_on_v2light():
    from model import load_checkpoint

    ref = torch.load(DATA / "lam_reference.pt", weights_only=True)["v2light_x2"]
    net = load_checkpoint(DATA / "v2light_x2.pth", routing="argmax")
    t0 = time.perf_counter()
    res = lam.local_attribution_map(net, ref["image"][None], h=int(ref["h"]), w=int(ref["w"]),
                                    window=int(ref["window"]), sigma=float(ref["sigma"]),
                                    steps=int(ref["fold"]), kernel_size=int(ref["kernel"]))
    seconds = time.perf_counter() - t0
    assert np.abs(res.abs_norm - ref["abs_norm"].numpy()).max() <= 1e-3
    assert res.diffusion_index == pytest.approx(float(ref["di"]), abs=0.05)
    attr = ref["attribution"].numpy()
    assert np.abs(res.attribution - attr).max() <= 1e-3 * np.abs(attr).max()
    print(f"LAM 50 steps on 32x32 v2light_x2: {seconds:.1f} s, batch {res.batch_size}")


@pytest.mark.slow
def test_fast_lam_is_close_to_lam_demo_reference_on_v2light():
    """Fast LAM (8 Gauss-Legendre nodes) on the Mamba model of the reference, at its setting.

    Tolerances from one measurement (relative L1 error of the attribution; Pearson correlation of
    abs_norm): fast 0.134 / 0.9935 against the reference. Argmax routing makes the path integrand jump
    where labels change, so quadrature converges slowly on a MambaIRv2: the 50-step reference itself is
    0.056 from 200 LAM_Demo steps and 0.067 from 64 nodes, fast 0.121 / 0.126 from them, so 0.2 bounds
    the two errors together. A wrong setting is far outside: sigma 2.4 instead of 1.2 gives 0.318 / 0.964,
    the window moved by 2 px 0.53-0.55 / 0.89-0.90.
    """
    from model import load_checkpoint

    ref = torch.load(DATA / "lam_reference.pt", weights_only=True)["v2light_x2"]
    net = load_checkpoint(DATA / "v2light_x2.pth", routing="argmax")
    res = lam.local_attribution_map(net, ref["image"][None], h=int(ref["h"]), w=int(ref["w"]),
                                    window=int(ref["window"]), sigma=float(ref["sigma"]),
                                    kernel_size=int(ref["kernel"]), fast=True)
    assert res.steps == lam.FAST_NODES == 8
    attr = ref["attribution"].numpy()
    assert np.abs(res.attribution - attr).sum() / np.abs(attr).sum() <= 0.2
    assert np.corrcoef(res.abs_norm.ravel(), ref["abs_norm"].numpy().ravel())[0, 1] >= 0.98
    assert res.diffusion_index == pytest.approx(float(ref["di"]), abs=1.5)  # measured 18.998 vs 18.038


def test_parameters_untouched():
    # LAM needs input gradients only: parameters keep requires_grad and get no .grad.
    net, x = tiny_sr(), lr_image()
    net[0].weight.requires_grad_(False)
    lam.local_attribution_map(net, x, h=0, w=0, window=8, steps=2)
    lam.integrated_gradients(net, x, h=0, w=0, window=8, steps=2)
    assert [p.requires_grad for p in net.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in net.parameters())


def test_nan_gradients_become_zero_like_lam_demo():
    # A flat output makes sqrt's derivative infinite at 0, and the chain rule gives NaN.
    net = nn.Conv2d(3, 3, 1)
    nn.init.zeros_(net.weight)
    nn.init.constant_(net.bias, 0.5)
    res = lam.local_attribution_map(net, lr_image(), h=0, w=0, window=4, steps=3)
    assert np.all(res.attribution == 0) and np.all(np.isfinite(res.abs_norm))
