#!/bin/bash
# Demo weights of issue 13 on the CPU: both light networks side by side with the same budget (steps,
# batch, patch, learning rates), 1 torch thread each, in the background, resumable (every leg runs
# with --resume: run the script again, with the same or later legs, to go on from runs/xS_*/state.pt).
# Each network starts from its x4 demo in weights/: at x2 its body with the upsampler derived
# (model.training.train --weights with another scale), at x4 a continuation. MambaIRv2's router + prompt pool
# get their own Adam group (lr x10, eps 1e-16) so the router keeps learning.
# LEGS: "steps:lr ...", each leg trains up to that step at that constant lr. Needs data/photos.
# The shipped files came from the weights/ of their day (sha256 in the manifest's training facts):
# x2 from the x4 demos before their continuation, the x4 continuation from the 1450(+160)-step demos.
# usage: scripts/cpu_demo_weights.sh 2     (x2: LEGS="600:1e-4 750:5e-5", fixed before the run)
#        LEGS="2100:1e-4 2800:5e-5 4500:5e-5" scripts/cpu_demo_weights.sh 4   (x4: the shipped
#        continuation ran LEGS="2000:5e-5" to step 400, LEGS="1000:1e-4 1400:5e-5" to 1450,
#        LEGS="2100:1e-4 2800:5e-5" to 2650, then these legs to 3750, each resumed; the shipped x4
#        files are the mean of checkpoints 3250..3750: python -m model.training.average
#        runs/x4_v2light/models/net_g_{3250..3750..25}.pth --out weights/... --force)
set -e
cd "$(dirname "$0")/.."
S=${1:?usage: scripts/cpu_demo_weights.sh SCALE}
LEGS=${LEGS:-"600:1e-4 750:5e-5"}
mkdir -p runs
start() {  # name preset [extra options]
  local name=$1 preset=$2; shift 2
  (for leg in $LEGS; do
     OMP_NUM_THREADS=1 python -m model.training.train --preset "$preset" --data data/photos \
       --steps "${leg%%:*}" --batch 8 --patch 32 --lr "${leg##*:}" --val-every 50 --save-every 25 \
       --val-size 32 --log-every 5 --threads 1 --keep-checkpoints --resume --out "runs/$name" "$@" \
       >> "runs/$name.log" 2>&1 || exit 1
   done) &
  echo "started runs/$name (pid $!; log runs/$name.log)"
}
start "x${S}_v2light" "mambairv2_lightSR_x$S" --weights weights/mambairv2_lightSR_x4_demo.pth \
  --router-eps 1e-16 --router-lr-mult 10
start "x${S}_mambair" "MambaIR_lightSR_x$S" --weights weights/MambaIR_lightSR_x4_demo.pth
