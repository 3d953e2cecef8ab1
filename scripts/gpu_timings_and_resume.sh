#!/usr/bin/env bash
# Second GPU session: bring MambaIR-light to the same step count as MambaIRv2-light (resume),
# then time the models on the GPU (forward only for the classic model: the torch scan's
# backward at 256x256 does not fit in 80 GB) and check the vectors with TF32 off.
set -u
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
OUT=${OUT:-out/gpu}; STEPS=${STEPS:-750}; PY=${PY:-python3}
mkdir -p "$OUT"
$PY -m model.training.train --preset MambaIR_lightSR_x4 --data data/photos --steps "$STEPS" --batch 8 --patch 48 \
  --out runs/MambaIR_lightSR_x4 --device cuda --init nearest --schedule none --save-every 50 \
  --val-every 150 --log-every 50 --resume 2>&1 | tr '\r' '\n' | grep -a -E "resumed|val PSNR|done|Error|error" 
cp runs/MambaIR_lightSR_x4/state.pt "$OUT/MambaIR_lightSR_x4.state.pt"
cp runs/MambaIR_lightSR_x4/log.jsonl "$OUT/MambaIR_lightSR_x4.log.jsonl"
cp runs/MambaIR_lightSR_x4/train_info.json "$OUT/MambaIR_lightSR_x4.train_info.json"
$PY -m scripts.gpu_vectors --backend torch --no-tf32
$PY - <<'PY'
import time, torch
from model import build, PRESETS
from model.scan import set_backend, last_backend
set_backend("torch")
print("preset, input, backend, forward ms (median of 5, no_grad), fwd+bwd ms, peak fwd GiB")
for preset, size, bwd in (("mambairv2_classicSR_x4", 256, False), ("mambairv2_classicSR_x4", 128, True),
                          ("mambairv2_lightSR_x4", 256, True), ("MambaIR_lightSR_x4", 256, True)):
    net = build(PRESETS[preset]).cuda()
    x = torch.rand(1, 3, size, size, device="cuda")
    def fwd():
        with torch.no_grad():
            net(x)
    def fb():
        xg = x.clone().requires_grad_(True); net(xg).sum().backward()
    res = []
    for fn, on in ((fwd, True), (fb, bwd)):
        if not on:
            res.append(float("nan")); continue
        fn(); torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        ts = []
        for _ in range(5):
            t = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
        res.append(sorted(ts)[2] * 1000)
        if fn is fwd:
            peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"{preset}, {size}x{size}, {last_backend()}, {res[0]:.1f}, {res[1]:.1f}, {peak:.2f}")
    del net; torch.cuda.empty_cache()
PY
ls -la "$OUT"
