#!/usr/bin/env bash
# Fourth GPU session (about 6 minutes): (1) both demo models from step 950 (runs/gpu3) to
# $STEPS, same batch/patch/data: 1e-4 to $DECAY, then 5e-5; (2) meanwhile, mamba-ssm's
# selective_scan_cuda built from its sdist for this GPU, checked against the official
# vectors and the scan tests; (3) after training, GPU timings with mamba_ssm and the torch scan.
# Needs: data/photos, runs/gpu3, .gpu/mamba_ssm-2.3.2.post1 (the PyPI sdist, unpacked).
set -u
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
OUT=${OUT:-out/gpu}; STEPS=${STEPS:-1450}; DECAY=${DECAY:-1300}; PY=${PY:-python3}
SDIST=.gpu/mamba_ssm-2.3.2.post1; BUILD=/tmp/ssbuild
mkdir -p "$OUT" runs
nvidia-smi -L
train() {  # preset
  local p=$1
  mkdir -p "runs/$p"; cp "runs/gpu3/$p.state.pt" "runs/$p/state.pt"; cp "runs/gpu3/$p.log.jsonl" "runs/$p/log.jsonl"
  for leg in "$DECAY 1e-4" "$STEPS 5e-5"; do
    set -- $leg
    timeout 400 $PY -m model.training.train --preset "$p" --data data/photos --steps "$1" --batch 8 --patch 48 \
      --lr "$2" --out "runs/$p" --device cuda --init nearest --schedule none --save-every 50 \
      --val-every 50 --log-every 50 --resume --threads 2 2>&1 | tr '\r' '\n' | grep -a -E "resumed|val PSNR|done|Error" | sed "s/^/[$p] /"
  done
  cp "runs/$p/state.pt" "$OUT/$p.state.pt"; cp "runs/$p/log.jsonl" "$OUT/$p.log.jsonl"
  cp "runs/$p/train_info.json" "$OUT/$p.train_info.json"
}
train mambairv2_lightSR_x4 & T1=$!
train MambaIR_lightSR_x4 & T2=$!

echo "== building mamba-ssm selective_scan_cuda (sm_90) while training runs"
MAX_JOBS=10 timeout 330 $PY scripts/gpu_build_mamba_ssm.py "$SDIST" "$BUILD" 2>&1 | grep -v -E "^\s*$|warning" | tail -5
export PYTHONPATH="$PWD/$SDIST:$BUILD"
$PY -c "import mamba_ssm, selective_scan_cuda; print('mamba_ssm', mamba_ssm.__version__, 'imports')" 2>&1 | tail -2
echo "== official vectors with the mamba_ssm backend (TF32 off), scan tests on CUDA"
$PY -m scripts.gpu_vectors --backend mamba_ssm --no-tf32 2>&1 | grep -v Warning
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_scan.py -k "cuda or mamba" 2>&1 | tail -3
wait $T1 $T2
echo "== GPU timings after training (nothing else on the GPU)"
$PY - <<'PY' 2>&1 | grep -v Warning | tee "$OUT/timings.txt"
import time, torch
from model import build, PRESETS
from model.scan import set_backend, last_backend
print(torch.cuda.get_device_name(), "torch", torch.__version__)
print("preset, input, backend, forward ms (median of 5, no_grad), fwd+bwd ms, peak fwd GiB, peak fwd+bwd GiB")
rows = [("mambairv2_classicSR_x4", 256, "mamba_ssm", True), ("mambairv2_classicSR_x4", 256, "torch", False),
        ("mambairv2_lightSR_x4", 256, "mamba_ssm", True), ("mambairv2_lightSR_x4", 256, "torch", True),
        ("MambaIR_lightSR_x4", 256, "mamba_ssm", True), ("MambaIR_lightSR_x4", 256, "torch", True)]
for preset, size, backend, bwd in rows:
    set_backend(backend)
    net = build(PRESETS[preset]).cuda()
    x = torch.rand(1, 3, size, size, device="cuda")
    def fwd():
        with torch.no_grad():
            net(x)
    def fb():
        xg = x.clone().requires_grad_(True); net(xg).sum().backward()
    res, peaks = [], []
    for fn, on in ((fwd, True), (fb, bwd)):
        if not on:
            res.append(float("nan")); peaks.append(float("nan")); continue
        try:
            fn(); torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
            ts = []
            for _ in range(5):
                t = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
            res.append(sorted(ts)[2] * 1000); peaks.append(torch.cuda.max_memory_allocated() / 2**30)
        except torch.OutOfMemoryError:
            res.append(float("nan")); peaks.append(float("nan")); torch.cuda.empty_cache()
    print(f"{preset}, {size}x{size}, {last_backend()}, {res[0]:.1f}, {res[1]:.1f}, {peaks[0]:.2f}, {peaks[1]:.2f}")
    del net; torch.cuda.empty_cache()
PY
ls -la "$OUT"
