#!/bin/bash
# Router experiments of issue 13 (weights/README.md): fine-tunes of the shipped MambaIRv2 demo weights
# on the CPU, 1 torch thread each, in the background; resumable (add --steps N --resume).
# usage: scripts/router_experiments.sh NAME [extra model.training.train options]
#   e.g. scripts/router_experiments.sh eps_lr100 --router-eps 1e-16 --router-lr-mult 100
set -e
name=$1; shift
cd "$(dirname "$0")/.."
mkdir -p runs
OMP_NUM_THREADS=1 nohup nice -n 10 timeout 7200 python -m model.training.train --preset mambairv2_lightSR_x4 \
  --data data/photos --weights weights/mambairv2_lightSR_x4_demo.pth --steps 40 --batch 4 --patch 24 \
  --lr 1e-4 --val-every 10 --save-every 10 --val-size 32 --log-every 5 --threads 1 --keep-checkpoints \
  --out "runs/$name" "$@" > "runs/$name.log" 2>&1 &
echo "started runs/$name (pid $!; log runs/$name.log)"
