"""Our networks against the official code's outputs and input gradients (tests/data/*.io.pt).

Every registered scan backend is tried (one whose dependency does not load is skipped).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import model.scan as scan
from model.archs import build
from model.archs.common import WindowAttention, _rows_kernel
from model.config import config_from_dict

DATA = Path(__file__).parent / "data"
CASES = ["v2light_x2", "mambair_light_x2"]


@pytest.fixture
def backend(request):
    """Force one scan backend for the test, restoring the previous choice afterwards."""
    name = request.param
    if scan._load(name) is None:
        pytest.skip(f"scan backend {name!r} does not load here")
    previous = scan._forced
    scan.set_backend(name)
    yield name
    scan.set_backend(previous)


def _load_case(case: str):
    io = torch.load(DATA / f"{case}.io.pt", weights_only=True)
    ckpt = torch.load(DATA / f"{case}.pth", weights_only=True)
    net = build(config_from_dict({"arch": io["arch"], **io["config"]}))
    net.load_state_dict(ckpt["params"], strict=True)
    return net, io


# Backend is the outer loop so the Python-loop reference runs before compiled backends start
# their worker threads (which otherwise compete with it for the 2 cores).
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", scan.available_backends(), indirect=True)
def test_official_vectors(case: str, backend: str) -> None:
    net, io = _load_case(case)
    assert type(net).__name__ == io["arch"]
    x = io["input"].clone().requires_grad_(True)
    y = net(x)
    assert scan.last_backend() == backend
    assert y.shape == io["output"].shape
    err = (y.detach() - io["output"]).abs().max().item()
    assert err <= 1e-4, f"max abs output error {err:.3g}"
    with torch.no_grad():  # a restore: the paths taken only without gradients (routing, kept biases)
        err_restore = (net(io["input"]) - io["output"]).abs().max().item()
    assert err_restore <= 1e-4, f"max abs output error without gradients {err_restore:.3g}"
    ran = {m.last_kernel for m in net.modules() if isinstance(m, WindowAttention)}
    if ran and _rows_kernel() is not None:  # MambaIRv2-light's 12-wide heads: the compiled forward ran
        assert ran == {"numba"}
    (y * io["grad_weight"]).sum().backward()
    g_ref = io["input_grad"]
    rel = ((x.grad - g_ref).norm() / g_ref.norm()).item()
    assert rel <= 1e-3, f"input-gradient relative error {rel:.3g}"


@pytest.mark.parametrize("case", CASES)
def test_official_vectors_frozen_input_gradient(case: str) -> None:
    """LAM's setting: parameters frozen, gradient w.r.t. the input only. MambaIRv2-light's window
    attention then runs the compiled forward and backward (model/attention/cpu.py), and the input
    gradient still matches the official one."""
    net, io = _load_case(case)
    net.requires_grad_(False)
    x = io["input"].clone().requires_grad_(True)
    y = net(x)
    assert (y.detach() - io["output"]).abs().max().item() <= 1e-4
    ran = {m.last_kernel for m in net.modules() if isinstance(m, WindowAttention)}
    if ran and _rows_kernel() is not None:
        assert ran == {"numba"}
    (g,) = torch.autograd.grad((y * io["grad_weight"]).sum(), x)
    g_ref = io["input_grad"]
    rel = ((g - g_ref).norm() / g_ref.norm()).item()
    assert rel <= 1e-3, f"input-gradient relative error {rel:.3g}"


def test_mean_is_not_in_state_dict() -> None:
    net, _ = _load_case("v2light_x2")
    assert not any("mean" in k for k in net.state_dict())
    assert "relative_position_index_SA" in net.state_dict()


def test_flip_pad_matches_official_and_handles_tiny_images() -> None:
    from model.archs.common import flip_pad

    x = torch.rand(1, 3, 11, 13)
    # The official one-step padding (append the flipped image, crop) for 11x13 -> 16x16.
    ref = torch.cat([x, torch.flip(x, [2])], 2)[:, :, :16, :]
    ref = torch.cat([ref, torch.flip(ref, [3])], 3)[:, :, :, :16]
    assert torch.equal(flip_pad(x, 8), ref)
    tiny = torch.rand(1, 3, 3, 2)  # smaller than half a window: padding repeats the mirror
    padded = flip_pad(tiny, 8)
    assert padded.shape == (1, 3, 8, 8)
    assert torch.equal(padded[:, :, :3, :2], tiny) and torch.equal(padded[:, :, 3:6, :2], tiny.flip(2))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", scan.available_backends(), indirect=True)
def test_capture_gives_the_same_bits(case: str, backend: str) -> None:
    """A captured forward (its scans return each group's rows for the record, summed afterwards)
    equals a plain one (MambaIR's scan adds its four outputs inside the kernel) bit for bit."""
    from model.capture import capture

    net, io = _load_case(case)
    with torch.no_grad():
        net(io["input"])  # warm-up: torch's first CPU forward may pick other kernels
        plain = net(io["input"])
        with capture(net) as rec:
            captured = net(io["input"])
    assert rec.ss2d or rec.assm
    assert torch.equal(plain, captured)
