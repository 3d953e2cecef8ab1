"""Build mamba-ssm's ``selective_scan_cuda`` extension from its sdist for the GPU in hand.

Device sessions only: the GPU image has nvcc and ninja but no mamba-ssm, PyPI has only
its sdist, and a full ``pip install`` compiles every kernel for nine GPU generations
(too long for a 15-minute device lease). This compiles the same ten source files with
mamba-ssm's own nvcc flags for one architecture (``TORCH_CUDA_ARCH_LIST``, default the
GPU's), into a folder that then goes on PYTHONPATH beside the sdist's Python package.

Usage: python3 scripts/gpu_build_mamba_ssm.py SDIST_DIR BUILD_DIR
"""
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.cpp_extension import load


def main() -> None:
    """Compile and import the extension once; print where it is and how long it took."""
    if len(sys.argv) != 3 or not (Path(sys.argv[1]) / "csrc" / "selective_scan").is_dir():
        sys.exit("usage: python3 scripts/gpu_build_mamba_ssm.py SDIST_DIR BUILD_DIR "
                 "(SDIST_DIR: mamba-ssm's unpacked source archive, with csrc/selective_scan)")
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: the kernel is built for the GPU in hand")
    sdist, build = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    build.mkdir(parents=True, exist_ok=True)
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        major, minor = torch.cuda.get_device_capability()
        os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    csrc = sdist / "csrc" / "selective_scan"
    sources = ["selective_scan.cpp"]
    sources += [f"selective_scan_fwd_{t}.cu" for t in ("fp32", "fp16", "bf16")]
    sources += [f"selective_scan_bwd_{t}_{k}.cu"
                for t in ("fp32", "fp16", "bf16") for k in ("real", "complex")]
    # The nvcc flags of mamba-ssm 2.3.2's setup.py, less its per-architecture -gencode list.
    nvcc = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
            "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo",
            "--threads", "4"]
    t0 = time.perf_counter()
    load(name="selective_scan_cuda", sources=[str(csrc / s) for s in sources],
         extra_cflags=["-O3", "-std=c++17"], extra_cuda_cflags=nvcc, extra_include_paths=[str(csrc)],
         build_directory=str(build), verbose=False)
    print(f"built selective_scan_cuda for sm_{os.environ['TORCH_CUDA_ARCH_LIST']} in "
          f"{time.perf_counter() - t0:.0f} s -> {build}", flush=True)


if __name__ == "__main__":
    main()
