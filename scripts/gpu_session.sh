#!/usr/bin/env bash
# One GPU session (about 8 minutes): CUDA checks, GPU timings, and the demo weights.
# Usage: OUT=out/gpu bash scripts/gpu_session.sh   (data/photos from `python -m model.training.data prepare`)
# Trains mambairv2_lightSR_x4 and MambaIR_lightSR_x4 side by side with the same recipe, batch,
# patch and wall-clock budget (steps differ: the slower network does fewer).
set -u
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
OUT=${OUT:-out/gpu}
TRAIN_SECONDS=${TRAIN_SECONDS:-330}
mkdir -p "$OUT" runs
PY=${PY:-python3}

echo "== device"; nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
$PY -c "import mamba_ssm" 2>&1 | tail -1

echo "== official vectors on CUDA (torch scan), and the CUDA scan tests"
$PY -m scripts.gpu_vectors
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_scan.py -k "cuda or gpu" 2>&1 | tail -3

echo "== GPU timings"
timeout 150 $PY -m model.evaluation.bench --device cuda --presets mambairv2_classicSR_x4 mambairv2_lightSR_x4 MambaIR_lightSR_x4 \
  --sizes 256 --backends torch --repeats 5 2>&1 | tail -12

echo "== training demo weights for ${TRAIN_SECONDS}s each, concurrently"
for p in mambairv2_lightSR_x4 MambaIR_lightSR_x4; do
  timeout "$TRAIN_SECONDS" $PY -m model.training.train --preset "$p" --data data/photos --steps 100000 --batch 8 \
    --patch 48 --out "runs/$p" --device cuda --init nearest --schedule none --save-every 50 \
    --val-every 250 --log-every 50 > "runs/$p.txt" 2>&1 &
done
wait
for p in mambairv2_lightSR_x4 MambaIR_lightSR_x4; do
  echo "-- $p"; grep -a "val PSNR" "runs/$p.txt" | tail -4
  # state.pt holds the weights, the step reached and the history (the run is stopped by timeout)
  cp "runs/$p/state.pt" "$OUT/$p.state.pt"; cp "runs/$p/log.jsonl" "$OUT/$p.log.jsonl"
done
ls -la "$OUT"
