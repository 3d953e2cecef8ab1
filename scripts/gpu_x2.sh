#!/usr/bin/env bash
# Fifth GPU session (about 6 minutes): both light models at x2 from scratch, side by side, with
# the x4 recipe (same batch, patch, steps for both: 2e-4 to $DECAY, then 1e-4 to $STEPS), then
# PSNR-Y on the held-out photos on the GPU. Needs data/photos.
set -u
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
OUT=${OUT:-out/gpu}; STEPS=${STEPS:-500}; DECAY=${DECAY:-400}; PY=${PY:-python3}
mkdir -p "$OUT" runs
train() {  # preset
  local p=$1
  for leg in "$DECAY 2e-4" "$STEPS 1e-4"; do
    set -- $leg
    timeout 330 $PY -m model.training.train --preset "$p" --data data/photos --steps "$1" --batch 8 --patch 48 \
      --lr "$2" --out "runs/$p" --device cuda --init nearest --schedule none --save-every 50 \
      --val-every 100 --log-every 50 --resume --threads 2 2>&1 | tr '\r' '\n' | grep -a -E "val PSNR|done|Error" | sed "s/^/[$p] /"
  done
  $PY -m model.evaluation.evaluate "runs/$p/model.pth" --data data/photos --split test --device cuda 2>&1 | tail -1 | sed "s/^/[$p] /"
  cp "runs/$p/state.pt" "$OUT/$p.state.pt"; cp "runs/$p/log.jsonl" "$OUT/$p.log.jsonl"
  cp "runs/$p/train_info.json" "$OUT/$p.train_info.json"
}
train mambairv2_lightSR_x2 &
train MambaIR_lightSR_x2 &
wait
ls -la "$OUT"
