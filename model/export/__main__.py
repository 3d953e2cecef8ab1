"""python -m model.export FILE --onnx OUT.onnx [--size H W] [--dynamic]: a verified ONNX file.

Loads any supported checkpoint (the network is detected from its tensors), exports it with the
deterministic options (argmax routing, stable sort), then runs the file in onnxruntime beside
PyTorch on a random and a real image and prints the largest difference; above 1e-4 the file is
removed and the command fails.
"""

from __future__ import annotations

import argparse

from model.archs import set_options
from model.cli import run_cli
from model.loading import load_checkpoint

from .onnx_export import TOLERANCE, export_onnx, file_sha256


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m model.export", description=__doc__.splitlines()[0])
    p.add_argument("file", help="checkpoint (.pth/.pt/.safetensors) of MambaIRv2, MambaIRv2-light or MambaIR")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="where to write the ONNX file")
    p.add_argument("--size", nargs=2, type=int, default=(64, 64), metavar=("H", "W"),
                   help="input size traced; the only size the file accepts unless --dynamic (default 64 64)")
    p.add_argument("--dynamic", action="store_true",
                   help="let the file accept any H x W (verified at two sizes)")
    p.add_argument("--routing", choices=("argmax", "gumbel"), default="argmax",
                   help="MambaIRv2 routing; only argmax has a faithful ONNX form (gumbel is refused)")
    p.add_argument("--prompt-order", choices=("official", "aligned"), default="official",
                   help="MambaIRv2 prompt order (see README); both export")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export, verify, print the report; ValueErrors become one-line errors through run_cli."""
    args = parse_args(argv)
    net = load_checkpoint(args.file)
    set_options(net, routing=args.routing, prompt_order=args.prompt_order)
    report = export_onnx(net, args.onnx, tuple(args.size), args.dynamic,
                         metadata={"source_sha256": file_sha256(args.file), "tolerance": f"{TOLERANCE:g}"},
                         log=print)
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    run_cli(main)
