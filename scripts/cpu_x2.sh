#!/bin/bash
# x2 demo weights of issue 13 on the CPU, both networks side by side with the same budget (steps,
# batch, patch, lr), 1 torch thread each, in the background, resumable: run it again with a larger
# STEPS to go on from runs/x2_*/state.pt. Each starts from its network's x4 demo (body copied,
# upsampler derived: model.train --weights with another scale). Needs data/photos.
# usage: STEPS=600 scripts/cpu_x2.sh
set -e
cd "$(dirname "$0")/.."
STEPS=${STEPS:-600}; LR=${LR:-1e-4}
mkdir -p runs
start() {  # name preset x4-weights [extra options]
  local name=$1 preset=$2 w=$3; shift 3
  OMP_NUM_THREADS=1 nohup python -m model.train --preset "$preset" --data data/photos --weights "$w" \
    --steps "$STEPS" --batch 8 --patch 32 --lr "$LR" --val-every 50 --save-every 25 --val-size 32 \
    --log-every 5 --threads 1 --keep-checkpoints --resume --out "runs/$name" "$@" >> "runs/$name.log" 2>&1 &
  echo "started runs/$name (pid $!; log runs/$name.log)"
}
start x2_v2light mambairv2_lightSR_x2 weights/mambairv2_lightSR_x4_demo.pth --router-eps 1e-16 --router-lr-mult 10
start x2_mambair MambaIR_lightSR_x2 weights/MambaIR_lightSR_x4_demo.pth
