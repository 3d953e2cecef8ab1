"""ONNX export (model.export): the chunked scan equals the reference; exported files of official-shaped
networks give PyTorch's output in onnxruntime (1e-4); a dynamic file at two sizes; refusals.

Each export of an official-shaped network takes about a minute here (torch.export of 20-24 layers),
so those tests are marked slow; the weights are random (official init, then perturbed so that the
router, prompts and residual scales all matter) at small spatial sizes, the architectures unchanged.
"""

from __future__ import annotations

import pytest
import torch

from model import PRESETS, MambaIRv2LightConfig, build
from model.archs import set_options
from model.export import ExportError, check_exportable, export_onnx, onnx_export, run_session, session
from model.scan import chunked
from model.scan.chunked import selective_scan_chunked
from model.scan.ref import selective_scan_ref

TOL = 1e-4


def _scan_args(b: int, d: int, l: int, n: int, g: int, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    B = r(b, g, n, l) if g > 1 else r(b, n, l)
    return [r(b, d, l), r(b, d, l), -5 * torch.rand(d, n, generator=gen), B, r(*B.shape),
            r(d), r(b, d, l), r(d)]


@pytest.mark.parametrize("b,d,l,n,g,k", [(1, 8, 100, 4, 1, 16), (2, 8, 130, 4, 2, 16),
                                         (1, 6, 5, 3, 1, 64), (1, 6, 64, 3, 1, 8)])
def test_chunked_scan_equals_reference_forward_and_backward(monkeypatch, b, d, l, n, g, k) -> None:
    monkeypatch.setattr(chunked, "CHUNK", k)  # l a multiple of k, not one, and shorter than one chunk
    u, delta, A, B, C, D, z, bias = _scan_args(b, d, l, n, g)
    ins = [u, delta, A, B, C, D]
    for t in ins:
        t.requires_grad_(True)
    want = selective_scan_ref(u, delta, A, B, C, D, z, bias, True)
    got = selective_scan_chunked(u, delta, A, B, C, D, z, bias, True)
    assert (got - want).abs().max() < 1e-5
    gw = torch.autograd.grad(want.square().sum(), ins)
    gg = torch.autograd.grad(got.square().sum(), ins)
    for a, e in zip(gg, gw, strict=True):
        assert ((a - e).abs().max() / e.abs().max()) < 1e-5


def _random_net(preset: str, seed: int = 0) -> torch.nn.Module:
    """Official-shaped network, official init plus noise on every weight (so routing varies per pixel)."""
    torch.manual_seed(seed)
    net = build(PRESETS[preset])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net.eval()


def _tiny_v2() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = MambaIRv2LightConfig(upscale=2, embed_dim=16, depths=(1,), num_heads=(2,), window_size=8,
                               inner_rank=8, num_tokens=8, d_state=4)
    return build(cfg)


def _max_diff(path, net, x) -> float:
    with torch.no_grad():
        return float((run_session(session(path), x) - net(x)).abs().max())


@pytest.mark.slow
def test_mambairv2_light_dynamic_file_matches_pytorch_at_several_sizes(tmp_path) -> None:
    net = _random_net("mambairv2_lightSR_x2")
    rep = export_onnx(net, tmp_path / "v2l.onnx", (32, 32), dynamic=True, verify_sizes=[(32, 32), (20, 45)])
    assert rep.dynamic and rep.path.exists()
    assert {c[1] for c in rep.checks} == {(32, 32), (20, 45)}
    assert len(rep.checks) == 4 and max(c[2] for c in rep.checks) < TOL  # random and real image per size
    # labels really tie (many pixels per prompt), so the stable sort is exercised
    x = torch.rand(1, 3, 17, 40)
    assert _max_diff(rep.path, net, x) < TOL


@pytest.mark.slow
def test_mambair_light_fixed_file_matches_pytorch_and_only_takes_its_size(tmp_path) -> None:
    net = _random_net("MambaIR_lightSR_x2")
    rep = export_onnx(net, tmp_path / "v1l.onnx", (24, 20))
    assert not rep.dynamic and max(c[2] for c in rep.checks) < TOL
    assert _max_diff(rep.path, net, torch.rand(1, 3, 24, 20)) < TOL
    with pytest.raises(Exception):  # a fixed-size file refuses other sizes  # noqa: B017
        run_session(session(rep.path), torch.rand(1, 3, 24, 28))


@pytest.mark.slow
def test_classic_mambairv2_small_matches_pytorch(tmp_path) -> None:
    # The classic SR preset "SRSmall" (embed 132, 6 groups x 4 layers, ConvFFN, pixelshuffle), full
    # architecture; only the input is small (16x16, one window).
    net = _random_net("mambairv2_SRSmall_x2")
    rep = export_onnx(net, tmp_path / "small.onnx", (16, 16))
    assert max(c[2] for c in rep.checks) < TOL


def test_gumbel_routing_is_refused_by_name_and_leaves_no_file(tmp_path) -> None:
    net = set_options(_tiny_v2(), routing="gumbel")
    with pytest.raises(ExportError, match="routing='gumbel'"):
        check_exportable(net)
    out = tmp_path / "g.onnx"
    with pytest.raises(ExportError, match="Gumbel"):
        export_onnx(net, out, (16, 16))
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_gumbel_with_one_line(tmp_path, capsys) -> None:
    from model.cli import run_cli
    from model.export.__main__ import main

    ckpt = tmp_path / "tiny.pth"
    torch.save({"params": _tiny_v2().state_dict()}, ckpt)
    out = tmp_path / "t.onnx"
    with pytest.raises(SystemExit) as exc:
        run_cli(lambda: main([str(ckpt), "--onnx", str(out), "--routing", "gumbel"]))
    assert str(exc.value.code).startswith("error: ASSM routing='gumbel'")
    assert not out.exists()


@pytest.mark.slow
def test_cli_exports_and_a_failed_check_removes_the_file(tmp_path, monkeypatch, capsys) -> None:
    import onnx

    from model.export.__main__ import main

    ckpt = tmp_path / "tiny.pth"
    torch.save({"params": _tiny_v2().state_dict()}, ckpt)
    out = tmp_path / "t.onnx"
    assert main([str(ckpt), "--onnx", str(out), "--size", "16", "12", "--dynamic"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime vs PyTorch, real 16x12: max abs diff" in text and "accepts any H x W" in text
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["arch"] == "MambaIRv2Light" and len(props["source_sha256"]) == 64
    # the onnxruntime backend tiles the file exactly as the network is tiled
    from model.export.runtime import OnnxNet
    from model.loading import load_checkpoint
    from model.tiling import tiled_forward

    net = load_checkpoint(ckpt)
    x = torch.rand(1, 3, 20, 30)
    with torch.no_grad():
        want = tiled_forward(net, x, tile=12, overlap=4)
        got = tiled_forward(OnnxNet(out, net.config), x, tile=12, overlap=4)
    assert got.shape == want.shape == (1, 3, 40, 60) and (got - want).abs().max() < TOL
    # the same export with an impossible limit: the file must not survive
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)
    out2 = tmp_path / "t2.onnx"
    with pytest.raises(ExportError, match="file removed"):
        main([str(ckpt), "--onnx", str(out2), "--size", "16", "12"])
    assert not out2.exists() and not (tmp_path / "t2.onnx.part").exists()
