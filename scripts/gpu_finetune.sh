#!/usr/bin/env bash
# Third GPU session: both demo models from step 750 to $STEPS at half the learning rate
# (the BasicSR multistep schedule's first decay), same batch/patch/data for both.
set -u
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
OUT=${OUT:-out/gpu}; STEPS=${STEPS:-950}; PY=${PY:-python3}
mkdir -p "$OUT"
for p in mambairv2_lightSR_x4 MambaIR_lightSR_x4; do
  timeout 190 $PY -m model.training.train --preset "$p" --data data/photos --steps "$STEPS" --batch 8 --patch 48 \
    --lr 1e-4 --out "runs/$p" --device cuda --init nearest --schedule none --save-every 25 \
    --val-every 100 --log-every 25 --resume > "runs/$p.txt" 2>&1 &
done
wait
for p in mambairv2_lightSR_x4 MambaIR_lightSR_x4; do
  echo "-- $p"; tr '\r' '\n' < "runs/$p.txt" | grep -a -E "resumed|val PSNR|done|Error"
  cp "runs/$p/state.pt" "$OUT/$p.state.pt"; cp "runs/$p/log.jsonl" "$OUT/$p.log.jsonl"
  cp "runs/$p/train_info.json" "$OUT/$p.train_info.json" 2>/dev/null
done
