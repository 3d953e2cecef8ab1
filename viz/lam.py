"""Local attribution maps (LAM, Gu & Dong, CVPR 2021) with the diffusion index, plus IG and saliency.

LAM attributes one window of a super-resolved output to the pixels of the LR
input. The algorithm here is the one of LAM_Demo (X-Lowlevel-Vision/LAM_Demo,
``SaliencyModel``), re-implemented without cv2:

* objective ``attr_grad``: gradient magnitude of the output,
  sqrt((o[y,x]-o[y+1,x])^2 + (o[y,x]-o[y,x+1])^2) on the (Ho-1, Wo-1) grid,
  summed over channels and the window ``[h:h+window, w:w+window]`` (rows,
  then columns; a window reaching the last row/column is cut there, as there);
* path ``GaussianBlurPath``: ``steps + 1`` isotropic Gaussian kernels of size
  ``kernel_size`` with sigma going linearly from ``sigma`` to 0 (plus 1e-5);
  step i is the input blurred with kernel i+1 (reflect-101 borders, as
  cv2.filter2D), its path derivative is the input blurred with
  (kernel[i+1] - kernel[i]) * steps;
* attribution = mean over steps of d(objective)/d(step image) * derivative
  (NaN gradients set to 0); map = |sum over channels| / max;
  DI = (1 - Gini(map)) * 100, Gini as in LAM_Demo.

Extra methods, same objective and result type: a linear path from the blurred
image (``path="linear"``, the integrated-gradients variant, also what
``LAM_Demo.GaussianLinearPath`` does), captum's IntegratedGradients and
captum's Saliency.

Letters: S path steps, B a batch of path steps, C image channels, (H, W) the
LR input, (Ho, Wo) the model output, K the blur kernel size.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

ProgressFn = Callable[[int, int], None]

# LAM_Demo adds this to sigma so that sigma = 0 gives a (numerically) one-hot kernel.
SIGMA_EPS = 1e-5
LINEAR_METHODS = ("lam", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
                  "gausslegendre")
# LR pixels (B * H * W) per forward when batch_size is not given: 4 path images of 64x64 (LAM's
# crop), one of 128x128. Batches once cost time (5-25% at 64x64 x4, batch 5 vs 1, before), but
# since issue 21's kernels and thread settings the per-op overheads of a single image dominate:
# fast LAM (8 nodes, demo weights, 64x64 x4, 2-core Xeon, one-off script, two rounds) at batch
# 1 / 2 / 4 / 8: MambaIRv2-light 4.38 / 3.61-3.66 / 3.51-3.65 / 3.37-3.68 s, MambaIR-light
# 7.53-7.70 / 6.14-6.23 / 5.45-5.85 / 5.40-5.52 s; peak memory +0.9 / 1.6 / 2.9 / 4.5 GB
# (MambaIRv2-light; MambaIR-light 0.7 / 1.4 / 2.2 / 3.9 GB). Batch 4 keeps most of the gain at
# about 3 GB.
AUTO_BATCH_PIXELS = 16384
# fast=True: Gauss-Legendre nodes on the blur path (one forward + backward each) when steps is not
# given (see blur_path_gauss). On the demo MambaIRv2-light weights (64x64 photo crop, x4, window 16)
# 8 nodes were 7x closer to a 32-node map than LAM_Demo's 50 steps (L1 0.20% vs 1.48%, DI 0.0011
# vs 0.0038); 4 nodes already beat them on the map but not on the DI.
FAST_NODES = 8


@dataclass
class LAMResult:
    """An attribution of one output window to the LR input, with what its figure needs."""

    attribution: np.ndarray  # (C, H, W) float32, signed
    abs_norm: np.ndarray  # (H, W) float32 in [0, 1]: |sum over channels| / max
    diffusion_index: float  # (1 - Gini(abs_norm)) * 100
    gini: float
    method: str  # "lam", "lam-linear", "ig" or "saliency"
    h: int  # window top row in the output
    w: int  # window left column in the output
    window: int
    steps: int
    lr: np.ndarray  # (C, H, W) float32 input in [0, 1]
    sr: np.ndarray  # (C, Ho, Wo) float32 model output for the input (not clipped)
    objective: float  # attr_grad of the output for the input
    seconds: float = 0.0
    batch_size: int = 1
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- blur


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(size, sigma) for sigma > 0: exp(-x^2 / 2 sigma^2), x centred, sum 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """LAM_Demo's isotropic_gaussian_kernel: (size, size) Gaussian of sigma + 1e-5, sum 1."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    # A normalised 2-D isotropic Gaussian is the outer product of normalised 1-D ones.
    g = gaussian_kernel_1d(size, sigma + SIGMA_EPS)
    return np.outer(g, g)  # (K, K)


def filter_reflect101(image: np.ndarray | Tensor, kernels: np.ndarray) -> np.ndarray:
    """Correlate a (C, H, W) image with each of (S, K, K) kernels, reflect-101 borders -> (S, C, H, W).

    Same semantics as cv2.filter2D(image, -1, kernel) (BORDER_REFLECT_101) and
    scipy.ndimage.correlate(mode="mirror"); computed in float64.
    """
    img = torch.as_tensor(np.asarray(image, dtype=np.float64))
    kern = torch.as_tensor(np.asarray(kernels, dtype=np.float64))
    if kern.ndim == 2:
        kern = kern[None]
    s, k, _ = kern.shape
    c, hh, ww = img.shape
    p = k // 2
    # numpy's "reflect" is reflect-101 (edge pixel not repeated) and allows pads >= size.
    padded = np.pad(img.numpy(), ((0, 0), (p, p), (p, p)), mode="reflect")  # (C, H+K-1, W+K-1)
    x = torch.from_numpy(padded)[:, None]  # (C, 1, H+K-1, W+K-1): channels as batch
    out = F.conv2d(x, kern[:, None])  # (C, S, H, W); conv2d is a correlation, like cv2
    return out.permute(1, 0, 2, 3).numpy()  # (S, C, H, W)


def blur(image: np.ndarray | Tensor, sigma: float, kernel_size: int = 9) -> np.ndarray:
    """The (C, H, W) image blurred with LAM's Gaussian kernel, reflect-101 borders (float32)."""
    return filter_reflect101(image, gaussian_kernel(kernel_size, sigma))[0].astype(np.float32)


# ----------------------------------------------------------------------------- paths
# A path is (points (S, C, H, W), weights (S, C, H, W)) with
# attribution = sum_i grad(objective)(points[i]) * weights[i].


def blur_path(image: np.ndarray, sigma: float, steps: int, kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """LAM_Demo's GaussianBlurPath: blurred images and derivative / steps (so the sum is the mean)."""
    sigmas = np.linspace(sigma, 0.0, steps + 1)
    kernels = np.stack([gaussian_kernel(kernel_size, s) for s in sigmas])  # (S+1, K, K)
    points = filter_reflect101(image, kernels[1:])  # (S, C, H, W)
    # Derivative of the path w.r.t. alpha in [0, 1] (alpha step 1/steps), by finite differences.
    derivs = filter_reflect101(image, (kernels[1:] - kernels[:-1]) * steps)  # (S, C, H, W)
    # LAM_Demo holds both in float32 before multiplying by the gradient.
    return points.astype(np.float32), derivs.astype(np.float32) / np.float32(steps)


def gaussian_kernel_dsigma(size: int, sigma: float) -> np.ndarray:
    """Exact derivative of ``gaussian_kernel(size, sigma)`` with respect to sigma, (K, K)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    s = sigma + SIGMA_EPS
    g = gaussian_kernel_1d(size, s)
    x2 = (np.arange(size, dtype=np.float64) - (size - 1) / 2) ** 2
    # d/ds of exp(-x^2 / 2s^2) / Z is g (x^2 - sum(g x^2)) / s^3 (the second term from Z).
    dg = g * (x2 - np.sum(g * x2)) / s**3
    return np.outer(dg, g) + np.outer(g, dg)  # (K, K): product rule on the outer product


def blur_path_gauss(image: np.ndarray, sigma: float, nodes: int,
                    kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """LAM_Demo's blur path integrated with ``nodes``-point Gauss-Legendre and the exact path derivative.

    The path is image * kernel(sigma(alpha)), sigma(alpha) = sigma (1 - alpha); the attribution
    is int_0^1 grad(x(alpha)) x'(alpha) d alpha = -int_0^sigma grad(x(s)) (dkernel/ds * image) ds,
    which LAM_Demo's ``steps``-point rule approximates to first order (finite differences, right
    end points). The nodes are placed in q = exp(-1 / 2 s^2) instead of s: the kernel is
    q^(i^2 + j^2) / sum, a rational function of q without poles near [0, q(sigma)], so the path is
    analytic in q (in s it stands still near 0, where all its s-derivatives vanish) and
    Gauss-Legendre converges geometrically on the path's part of the integrand.
    """
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    q_top = np.exp(-1.0 / (2.0 * (sigma + SIGMA_EPS) ** 2))
    t, wq = np.polynomial.legendre.leggauss(nodes)  # on [-1, 1], increasing
    q = (t[::-1] + 1.0) * q_top / 2.0  # (S,) from the most blurred down, like LAM_Demo's steps
    wq = wq[::-1] * q_top / 2.0
    s_eff = np.sqrt(-1.0 / (2.0 * np.log(q)))  # sigma + SIGMA_EPS at each node
    ws = wq * s_eff**3 / q  # dq = q / s^3 ds, so the weight in s is w_q ds/dq
    sig = s_eff - SIGMA_EPS
    points = filter_reflect101(image, np.stack([gaussian_kernel(kernel_size, v) for v in sig]))  # (S,C,H,W)
    dk = np.stack([-w * gaussian_kernel_dsigma(kernel_size, v) for v, w in zip(sig, ws, strict=True)])
    weights = filter_reflect101(image, dk)  # (S, C, H, W): weight times the path's derivative
    return points.astype(np.float32), weights.astype(np.float32)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) on [0, 1] for a linear path; ``lam`` = LAM_Demo (linspace, equal weights)."""
    n = steps
    if method == "lam":
        return np.linspace(0.0, 1.0, n), np.full(n, 1.0 / n)
    if method == "gausslegendre":
        x, wts = np.polynomial.legendre.leggauss(n)
        return (x + 1.0) / 2.0, wts / 2.0
    if method not in LINEAR_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(LINEAR_METHODS)}")
    if n < 2:
        raise ValueError(f"{method} needs at least 2 steps, got {n}")
    if method == "riemann_trapezoid":
        # A true trapezoid rule (weights sum to 1). captum's riemann_trapezoid uses 1/n instead of
        # 1/(n-1), i.e. its attributions are ours times (n-1)/n.
        wts = np.full(n, 1.0 / (n - 1))
        wts[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n), wts
    wts = np.full(n, 1.0 / n)
    if method == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / n, n), wts
    if method == "riemann_right":
        return np.linspace(1.0 / n, 1.0, n), wts
    return np.linspace(0.5 / n, 1.0 - 0.5 / n, n), wts  # riemann_middle


def linear_path(image: np.ndarray, baseline: np.ndarray, steps: int,
                method: str) -> tuple[np.ndarray, np.ndarray]:
    """Straight line from ``baseline`` to ``image`` (integrated gradients), with quadrature weights."""
    alphas, wts = quadrature(method, steps)
    img = image.astype(np.float32)
    base = baseline.astype(np.float32)
    diff = img - base  # (C, H, W)
    a = alphas.astype(np.float32)[:, None, None, None]  # (S, 1, 1, 1)
    points = base[None] + a * diff[None]  # (S, C, H, W)
    weights = wts.astype(np.float32)[:, None, None, None] * diff[None]  # (S, C, H, W)
    return points, weights


# ----------------------------------------------------------------------------- objective & scores


def attr_grad(out: Tensor, h: int, w: int, window: int) -> Tensor:
    """LAM_Demo's attr_grad per image: (B, C, Ho, Wo) -> (B,) window sum of the gradient magnitude."""
    dy = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2  # (B, C, Ho-1, Wo)
    dx = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2  # (B, C, Ho, Wo-1)
    mag = torch.sqrt(dy[:, :, :, :-1] + dx[:, :, :-1, :])  # (B, C, Ho-1, Wo-1)
    return mag[:, :, h : h + window, w : w + window].sum(dim=(1, 2, 3))  # (B,)


def grad_abs_norm(attribution: np.ndarray) -> np.ndarray:
    """LAM_Demo's grad_abs_norm: |sum over channels| / its max, (C, H, W) -> (H, W)."""
    a = np.abs(np.asarray(attribution).sum(axis=0))
    top = a.max()
    return (a / top if top > 0 else a).astype(np.float32)


def gini(values: np.ndarray) -> float:
    """LAM_Demo's Gini coefficient: shift to >= 0, add 1e-7, sort, sum((2i - n - 1) x_i) / (n sum x)."""
    x = np.asarray(values, dtype=np.float64).flatten()
    if x.min() < 0:
        x = x - x.min()
    x = np.sort(x + 1e-7)
    n = x.size
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * np.sum(x)))


def diffusion_index(abs_norm: np.ndarray) -> float:
    """DI = (1 - Gini) * 100: high when the attribution is spread over many pixels."""
    return (1.0 - gini(abs_norm)) * 100.0


# ----------------------------------------------------------------------------- running the model


def _check_window(h: int, w: int, window: int, out_hw: tuple[int, int]) -> None:
    ho, wo = out_hw
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if h < 0 or w < 0 or h + window > ho or w + window > wo:
        raise ValueError(
            f"window [{h}:{h + window}, {w}:{w + window}] (rows, cols) is outside the "
            f"{ho}x{wo} output; need 0 <= h <= {ho - window} and 0 <= w <= {wo - window}")


def _known_scale(model: nn.Module) -> int | None:
    """The model's upscale factor if it says (config or attribute), else None."""
    cfg = getattr(model, "config", None)
    scale = getattr(cfg, "upscale", None) or getattr(model, "upscale", None)
    return int(scale) if isinstance(scale, (int, np.integer)) else None


def _prepare(model: nn.Module, lr: Tensor | np.ndarray, h: int, w: int, window: int) -> Tensor:
    """Validate inputs; return the (1, C, H, W) float32 input on the model's device."""
    x = torch.as_tensor(lr, dtype=torch.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"lr must be (1, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    scale = _known_scale(model)
    if scale is not None:  # fail before any forward pass when we can
        _check_window(h, w, window, (x.shape[2] * scale, x.shape[3] * scale))
    param = next(model.parameters(), None)
    return x.to(param.device) if param is not None else x


def _auto_batch(batch_size: int | None, steps: int, hw: int) -> int:
    if batch_size is None:
        batch_size = max(1, AUTO_BATCH_PIXELS // max(hw, 1))
    return int(max(1, min(batch_size, steps)))


@contextlib.contextmanager
def input_grad_only(model: nn.Module) -> Iterator[nn.Module]:
    """Turn off requires_grad on the parameters meanwhile: autograd then keeps less (~10% memory)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


def path_attribution(model: nn.Module, points: np.ndarray, weights: np.ndarray, *, h: int, w: int,
                     window: int, batch_size: int, progress: ProgressFn | None = None) -> np.ndarray:
    """sum_i grad(attr_grad)(points[i]) * weights[i], running ``batch_size`` points per forward."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    total = points.shape[0]
    acc = torch.zeros(points.shape[1:], dtype=torch.float64)  # (C, H, W)
    done = 0
    for start in range(0, total, batch_size):
        x = torch.from_numpy(points[start : start + batch_size]).to(device).requires_grad_(True)  # (B,C,H,W)
        with torch.enable_grad(), input_grad_only(model):
            out = model(x)  # (B, C, Ho, Wo)
            if start == 0:
                _check_window(h, w, window, tuple(out.shape[-2:]))
            # Images of a batch are independent, so the gradient of the sum is each one's own.
            (grad,) = torch.autograd.grad(attr_grad(out, h, w, window).sum(), x)
        grad = _zero_nan(grad.detach().cpu())
        wgt = torch.from_numpy(weights[start : start + batch_size])  # (B, C, H, W)
        acc += (grad * wgt).double().sum(dim=0)
        for _ in range(x.shape[0]):
            done += 1
            if progress is not None:
                progress(done, total)
    return acc.float().numpy()


def _zero_nan(t: Tensor) -> Tensor:
    """LAM_Demo sets NaN gradients to 0 (sqrt at a flat spot of the output); infinities stay."""
    return torch.where(torch.isnan(t), torch.zeros_like(t), t)


def _output(model: nn.Module, x: Tensor) -> tuple[np.ndarray, Tensor]:
    with torch.no_grad():
        out = model(x)  # (1, C, Ho, Wo)
    return out[0].float().cpu().numpy(), out


def _result(model: nn.Module, x: Tensor, attribution: np.ndarray, method: str, h: int, w: int,
            window: int, steps: int, t0: float, batch_size: int, **extra) -> LAMResult:
    sr, out = _output(model, x)
    _check_window(h, w, window, tuple(out.shape[-2:]))
    norm = grad_abs_norm(attribution)
    g = gini(norm)
    return LAMResult(attribution=attribution.astype(np.float32), abs_norm=norm,
                     diffusion_index=(1.0 - g) * 100.0, gini=g, method=method, h=h, w=w,
                     window=window, steps=steps, lr=x[0].float().cpu().numpy(), sr=sr,
                     objective=float(attr_grad(out.float(), h, w, window)[0]),
                     seconds=time.perf_counter() - t0, batch_size=batch_size, extra=dict(extra))


def local_attribution_map(model: nn.Module, lr: Tensor | np.ndarray, *, h: int, w: int, window: int = 16,
                          sigma: float = 1.2, steps: int | None = None, kernel_size: int = 9,
                          path: str = "blur", method: str = "lam", fast: bool = False,
                          batch_size: int | None = None, progress: ProgressFn | None = None) -> LAMResult:
    """LAM of the output window at (row h, col w) of size ``window`` for the (1, C, H, W) input in [0, 1].

    ``path="blur"`` is LAM_Demo's progressive-blur path (``method`` must be ``lam``);
    ``path="linear"`` goes straight from the blurred image (sigma, kernel_size) to
    the input with quadrature ``method`` (``lam`` = LAM_Demo's GaussianLinearPath,
    or captum's names). ``fast=True`` (blur path only) integrates the same path with
    ``steps`` Gauss-Legendre nodes and the exact path derivative (``blur_path_gauss``):
    the same integral that LAM_Demo's steps approximate, to the accuracy of its 50 steps
    with far fewer passes. ``steps`` defaults to 50 (LAM_Demo), or ``FAST_NODES`` with
    ``fast``. ``batch_size`` path images per forward (default: about AUTO_BATCH_PIXELS LR pixels per
    batch). ``progress(done, total)`` is called once per step.
    """
    t0 = time.perf_counter()
    if steps is None:
        steps = FAST_NODES if fast else 50
    if fast and path != "blur":
        raise ValueError("fast=True is for the blur path; the linear path has its quadrature methods")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = _prepare(model, lr, h, w, window)
    image = x[0].detach().cpu().numpy()  # (C, H, W)
    if path == "blur":
        if method != "lam":
            raise ValueError("the blur path has only LAM_Demo's scheme: use method='lam'")
        if fast:
            points, weights = blur_path_gauss(image, sigma, steps, kernel_size)
        else:
            points, weights = blur_path(image, sigma, steps, kernel_size)
        name = "lam"
    elif path == "linear":
        points, weights = linear_path(image, blur(image, sigma, kernel_size), steps, method)
        name = "lam-linear"
    else:
        raise ValueError(f"unknown path {path!r}; choose 'blur' or 'linear'")
    bs = _auto_batch(batch_size, steps, image.shape[1] * image.shape[2])
    attribution = path_attribution(model, points, weights, h=h, w=w, window=window, batch_size=bs,
                                   progress=progress)
    return _result(model, x, attribution, name, h, w, window, steps, t0, bs, path=path, sigma=sigma,
                   kernel_size=kernel_size, quadrature="gauss-legendre in q" if fast else method)


class _Objective(nn.Module):
    """model followed by attr_grad: (B, C, H, W) -> (B,), the forward function captum needs."""

    def __init__(self, model: nn.Module, h: int, w: int, window: int, progress: ProgressFn | None = None,
                 total: int = 0) -> None:
        super().__init__()
        self.model, self.h, self.w, self.window = model, h, w, window
        self.progress, self.total, self.done = progress, total, 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)  # (B, C, Ho, Wo)
        _check_window(self.h, self.w, self.window, tuple(out.shape[-2:]))
        if self.progress is not None:
            for _ in range(x.shape[0]):
                self.done = min(self.done + 1, self.total)
                self.progress(self.done, self.total)
        return attr_grad(out, self.h, self.w, self.window)


def integrated_gradients(model: nn.Module, lr: Tensor | np.ndarray, *, h: int, w: int, window: int = 16,
                         steps: int = 50, baseline: str | np.ndarray | Tensor = "blur", sigma: float = 1.2,
                         kernel_size: int = 9, method: str = "gausslegendre", batch_size: int | None = None,
                         progress: ProgressFn | None = None) -> LAMResult:
    """captum IntegratedGradients of the LAM objective from a ``blur`` (LAM kernel) or ``black`` baseline."""
    from captum.attr import IntegratedGradients

    t0 = time.perf_counter()
    x = _prepare(model, lr, h, w, window)
    if isinstance(baseline, str):
        if baseline == "blur":
            base = torch.from_numpy(blur(x[0].detach().cpu().numpy(), sigma, kernel_size))[None]
        elif baseline == "black":
            base = torch.zeros_like(x)
        else:
            raise ValueError(f"unknown baseline {baseline!r}; choose 'blur', 'black' or pass an image")
    else:
        base = torch.as_tensor(baseline, dtype=torch.float32).reshape(x.shape)
    bs = _auto_batch(batch_size, steps, x.shape[2] * x.shape[3])
    objective = _Objective(model, h, w, window, progress, steps)
    with torch.enable_grad(), input_grad_only(model):
        attr = IntegratedGradients(objective).attribute(x, baselines=base.to(x.device), n_steps=steps,
                                                        method=method, internal_batch_size=bs)
    attribution = _zero_nan(attr.detach()[0].float().cpu()).numpy()
    return _result(model, x, attribution, "ig", h, w, window, steps, t0, bs, baseline=baseline
                   if isinstance(baseline, str) else "image", quadrature=method)


def saliency(model: nn.Module, lr: Tensor | np.ndarray, *, h: int, w: int, window: int = 16,
             progress: ProgressFn | None = None) -> LAMResult:
    """captum Saliency (plain signed gradient) of the LAM objective at the input."""
    from captum.attr import Saliency

    t0 = time.perf_counter()
    x = _prepare(model, lr, h, w, window)
    objective = _Objective(model, h, w, window, progress, 1)
    with torch.enable_grad(), input_grad_only(model):
        attr = Saliency(objective).attribute(x.clone().requires_grad_(True), abs=False)
    attribution = _zero_nan(attr.detach()[0].float().cpu()).numpy()
    return _result(model, x, attribution, "saliency", h, w, window, 1, t0, 1)


# ----------------------------------------------------------------------------- figures

# matplotlib's "seismic" anchors (dark blue, blue, white, red, dark red), 256-entry table.
_SEISMIC = np.array([(0.0, 0.0, 0.3), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0), (0.5, 0.0, 0.0)])
_SEISMIC_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, 5), _SEISMIC[:, c])
                         for c in range(3)], axis=1)  # (256, 3)


def seismic(values: np.ndarray) -> np.ndarray:
    """matplotlib's 'seismic' colormap of values in [0, 1] -> uint8 (..., 3)."""
    idx = np.clip((np.asarray(values, dtype=np.float64) * 256).astype(np.int64), 0, 255)
    return (255 * _SEISMIC_LUT[idx]).astype(np.uint8)


def kde_map(abs_norm: np.ndarray) -> np.ndarray:
    """LAM_Demo's KDE of the map: scipy gaussian_kde over pixel positions weighted by the map, / max.

    Evaluated on the pixel grid as one FFT convolution of the weights with the
    KDE's Gaussian (same numbers as gaussian_kde, without its O(pixels^2) cost).
    """
    from scipy.signal import fftconvolve

    m = np.asarray(abs_norm, dtype=np.float64)
    hh, ww = m.shape
    wts = m.flatten()
    if wts.sum() <= 0:
        return np.zeros_like(m, dtype=np.float32)
    wts = wts / wts.sum()
    ys, xs = np.mgrid[0:hh, 0:ww]
    pts = np.vstack([xs.ravel(), ys.ravel()]).astype(np.float64)  # (2, HW) as (x, y), like LAM_Demo
    neff = 1.0 / np.sum(wts**2)
    factor = neff ** (-1.0 / 6.0)  # Scott's rule, d = 2
    cov = np.atleast_2d(np.cov(pts, rowvar=True, bias=False, aweights=wts)) * factor**2  # (2, 2)
    if not np.all(np.isfinite(cov)) or np.linalg.det(cov) <= 1e-12:
        return (m / m.max()).astype(np.float32)  # all mass on one row/column: no 2-D density
    inv = np.linalg.inv(cov)
    dy, dx = np.mgrid[-(hh - 1) : hh, -(ww - 1) : ww]  # (2H-1, 2W-1) offsets
    q = inv[0, 0] * dx**2 + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy**2
    kern = np.exp(-0.5 * q)  # (2H-1, 2W-1), centred
    dens = fftconvolve(m / m.sum(), kern, mode="same")  # (H, W)
    dens = np.clip(dens, 0, None)
    return (dens / dens.max()).astype(np.float32)


def _to_hwc_uint8(image: np.ndarray | Tensor) -> np.ndarray:
    a = np.asarray(image.detach().cpu() if isinstance(image, Tensor) else image)
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # old Pillow without scalable default font
        return ImageFont.load_default()


def lam_panels(result: LAMResult, lr_image: np.ndarray | Tensor | None = None,
               sr_image: np.ndarray | Tensor | None = None, box: tuple[int, int, int] | None = None,
               alpha: float = 0.5, zoom: int = 1) -> dict[str, np.ndarray]:
    """LAM_Demo's four pictures, uint8 (Ho*zoom, Wo*zoom, 3): output with the box, map, two blends.

    ``box`` is (h, w, window) in output pixels (default: the result's window).
    """
    lr = _to_hwc_uint8(result.lr if lr_image is None else lr_image)
    sr = _to_hwc_uint8(result.sr if sr_image is None else sr_image)
    h, w, win = (result.h, result.w, result.window) if box is None else box
    size = (sr.shape[1], sr.shape[0])  # PIL (width, height)
    # As LAM_Demo: map * 0.5 + 0.5 on 'seismic' (white -> dark red), nearest zoom; KDE bicubic zoom;
    # blends with the input upscaled (bicubic) to the output size, half and half.
    plain = np.asarray(Image.fromarray(seismic(result.abs_norm * 0.5 + 0.5)).resize(size, Image.NEAREST))
    kde_rgb = seismic(kde_map(result.abs_norm) * 0.5 + 0.5)
    kde = np.asarray(Image.fromarray(kde_rgb).resize(size, Image.BICUBIC))
    up = np.asarray(Image.fromarray(lr).resize(size, Image.BICUBIC)).astype(np.float64)

    def mix(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float64) * (1 - alpha) + up * alpha).astype(np.uint8)

    panels = {"output": sr, "attribution": plain, "blend": mix(plain), "kde": mix(kde)}
    if zoom > 1:  # nearest, so that pixels stay visible on small crops
        big = (size[0] * zoom, size[1] * zoom)
        panels = {k: np.asarray(Image.fromarray(v).resize(big, Image.NEAREST)) for k, v in panels.items()}
    boxed = Image.fromarray(panels["output"])
    # The box is drawn after zooming so that its line stays thin; it covers output pixels
    # [h, h + window) x [w, w + window).
    ImageDraw.Draw(boxed).rectangle((w * zoom, h * zoom, (w + win) * zoom - 1, (h + win) * zoom - 1),
                                    outline=(255, 0, 0), width=max(2, sr.shape[0] * zoom // 128))
    panels["output"] = np.asarray(boxed)
    return panels


def lam_figure(result: LAMResult, lr_image: np.ndarray | Tensor | None = None,
               sr_image: np.ndarray | Tensor | None = None, box: tuple[int, int, int] | None = None,
               title: str | None = None, min_panel: int = 192) -> np.ndarray:
    """One row: output with the window box | attribution | blend with input | KDE blend; DI in the title."""
    ho, wo = result.sr.shape[-2:] if sr_image is None else _to_hwc_uint8(sr_image).shape[:2]
    zoom = max(1, int(np.ceil(min_panel / max(min(ho, wo), 1))))
    tiles = list(lam_panels(result, lr_image, sr_image, box, zoom=zoom).values())
    ph, pw = tiles[0].shape[:2]
    gap, head = 4, 28
    width = len(tiles) * pw + (len(tiles) - 1) * gap
    canvas = Image.new("RGB", (width, head + ph), (255, 255, 255))
    for i, t in enumerate(tiles):
        canvas.paste(Image.fromarray(t), (i * (pw + gap), head))
    if title is None:
        title = f"{result.method.upper()}  DI {result.diffusion_index:.2f}"
    title = f"{title}   window ({result.h}, {result.w}) size {result.window}, {result.steps} steps"
    ImageDraw.Draw(canvas).text((4, 4), title, fill=(0, 0, 0), font=_font(16))
    return np.asarray(canvas)


def lam_side_by_side(results: dict[str, LAMResult], **kwargs) -> np.ndarray:
    """Stack one ``lam_figure`` row per model (e.g. MambaIRv2 vs MambaIR), titled with name and DI."""
    if not results:
        raise ValueError("no results to show")
    rows = [lam_figure(r, title=f"{name}  DI {r.diffusion_index:.2f}", **kwargs)
            for name, r in results.items()]
    width = max(r.shape[1] for r in rows)
    canvas = Image.new("RGB", (width, sum(r.shape[0] for r in rows)), (255, 255, 255))
    top = 0
    for r in rows:
        canvas.paste(Image.fromarray(r), (0, top))
        top += r.shape[0]
    return np.asarray(canvas)


# ----------------------------------------------------------------------------- benchmark


def map_error(result: LAMResult, reference: LAMResult) -> tuple[float, float]:
    """(L1 distance of the abs-norm maps relative to the reference's L1 norm, |DI difference|)."""
    l1 = float(np.abs(result.abs_norm - reference.abs_norm).sum() / np.abs(reference.abs_norm).sum())
    return l1, abs(result.diffusion_index - reference.diffusion_index)


def _bench_model(name: str, folder: str) -> tuple[nn.Module, str]:
    """The network of a preset with trained weights from ``folder`` when there are some, else random."""
    from model import PRESETS, build, load_checkpoint
    from model.hub.weights import scan_weights

    entries = [e for e in scan_weights(folder)[0] if e["preset"] == name]
    entries.sort(key=lambda e: e.get("source") != "trained here")  # the demo weights first
    if entries:
        return load_checkpoint(entries[0]["path"]), entries[0]["file"]
    torch.manual_seed(0)
    return build(PRESETS[name]), "random weights (no trained file in weights/)"


def _bench(presets: list[str], size: int, steps: int, fast_steps: int, reference_steps: int,
           image: str, folder: str, batch_size: int | None) -> None:
    """Time LAM_Demo's steps and fast=True on a photo crop; errors of both against a converged map."""
    from model.scan import last_backend
    from model.training.data import load_image

    photo = load_image(image)  # (H, W, 3)
    ph, pw = photo.shape[:2]
    if min(ph, pw) < size:
        raise ValueError(f"{image} is {pw}x{ph}, smaller than the {size}x{size} crop")
    r0, c0 = (ph - size) // 2, (pw - size) // 2
    lr = torch.from_numpy(np.ascontiguousarray(photo[r0 : r0 + size, c0 : c0 + size].transpose(2, 0, 1)))
    print(f"input: {size}x{size} centre crop of {image}; window 16 at the output's centre; torch threads "
          f"{torch.get_num_threads()}; reference = fast rule with {reference_steps} Gauss-Legendre nodes",
          flush=True)
    for name in presets:
        net, source = _bench_model(name, folder)
        scale = _known_scale(net) or 1
        h = w = size * scale // 2 - 8
        kw = dict(h=h, w=w, window=16, batch_size=batch_size)
        local_attribution_map(net, lr, steps=1, **kw)  # warm-up: compile the scan, fill caches
        # The warm-up ran batch 1, so the first run at the batches' shapes may pay for them once
        # (new shapes' kernels, first large allocations; 0.1-0.4 s here): timed and shown apart,
        # so that the timed runs below, each after another at the same shapes, compare alike.
        first = local_attribution_map(net, lr, fast=True, steps=fast_steps, **kw).seconds
        runs = {}
        for label, extra in (("fast", dict(fast=True, steps=fast_steps)), ("lam", dict(steps=steps)),
                             ("ref", dict(fast=True, steps=reference_steps))):
            cpu0 = time.process_time()
            res = local_attribution_map(net, lr, **extra, **kw)
            runs[label] = (res, time.process_time() - cpu0)
        ref = runs["ref"][0]
        print(f"{name} ({source}), {size}x{size} x{scale}, scan {last_backend()}: reference DI "
              f"{ref.diffusion_index:.4f}", flush=True)
        for label, what in (("lam", f"LAM_Demo {steps} steps"), ("fast", f"fast=True {fast_steps} nodes")):
            res, cpu = runs[label]
            l1, ddi = map_error(res, ref)
            print(f"  {what:>24}: {res.seconds:6.1f} s wall, {cpu:6.1f} s CPU; map L1 error {100 * l1:.3f}%, "
                  f"|DI error| {ddi:.4f} (DI {res.diffusion_index:.4f})", flush=True)
        print(f"  {'first fast run':>24}: {first:6.1f} s wall (the batches' shapes seen for the first time)",
              flush=True)
        (lam_res, lam_cpu), (fast_res, fast_cpu) = runs["lam"], runs["fast"]
        print(f"  fast / LAM_Demo: {lam_res.seconds / fast_res.seconds:.1f}x faster (wall), "
              f"{lam_cpu / fast_cpu:.1f}x (CPU)", flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m viz.lam --bench``: LAM_Demo's 50 steps vs fast=True on the light SR x4 models."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", action="store_true", help="time LAM (default when nothing else is asked)")
    ap.add_argument("--presets", nargs="+", default=["mambairv2_lightSR_x4", "MambaIR_lightSR_x4"])
    ap.add_argument("--size", type=int, default=64, help="LR side in pixels")
    ap.add_argument("--steps", type=int, default=50, help="LAM_Demo's steps")
    ap.add_argument("--fast-steps", type=int, default=FAST_NODES, help="Gauss-Legendre nodes of fast=True")
    ap.add_argument("--reference-steps", type=int, default=32,
                    help="nodes of the converged reference (the fast rule, many nodes)")
    ap.add_argument("--image", default="assets/chelsea.png", help="photo to crop the LR input from")
    ap.add_argument("--weights", default="weights", help="folder with trained weights (else random)")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args(argv)
    _bench(args.presets, args.size, args.steps, args.fast_steps, args.reference_steps, args.image,
           args.weights, args.batch_size)


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
