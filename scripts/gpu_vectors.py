"""The official reference vectors (tests/data) on CUDA: forward error and input-gradient error.

Usage, from the repository root: python3 -m scripts.gpu_vectors [--backend NAME] [--no-tf32]
For device sessions (tests/test_vectors.py covers the CPU backends; --device cpu still works).
"""
import argparse

import torch

from model import load_checkpoint
from model.scan import last_backend, set_backend

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="auto", help="scan backend (auto: mamba_ssm, else torch)")
    ap.add_argument("--no-tf32", action="store_true", help="exact float32 convolutions and matmuls")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    set_backend(args.backend)
    for name in ("v2light_x2", "mambair_light_x2"):
        io = torch.load(f"tests/data/{name}.io.pt", weights_only=True)
        net = load_checkpoint(f"tests/data/{name}.pth", device=args.device)
        x = io["input"].to(args.device).requires_grad_(True)
        y = net(x)
        (y * io["grad_weight"].to(args.device)).sum().backward()
        err = (y.detach().cpu() - io["output"]).abs().max().item()
        rel = ((x.grad.cpu() - io["input_grad"]).norm() / io["input_grad"].norm()).item()
        print(f"TF32 {'off' if args.no_tf32 else 'on'}: {name}: backend {last_backend()}, "
              f"forward max abs err {err:.2e}, input-grad rel err {rel:.2e}")
