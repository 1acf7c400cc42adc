#!/usr/bin/env bash
# Rebuilds the forecaster set `vox-256` (models/forecasters-vox256) and its cross-validation
# report (docs/forecasting/) from the shared VoxCeleb keypoints, the way the committed ones were
# made: leave-one-identity-out cross-validation of every kind, then the final models on all 33
# clips. About 10 min on 2 CPU cores. Not part of the tests.
#
# Usage: scripts/train_vox256_forecasters.sh [KEYPOINTS.npz] [WORK_DIR]
#        (defaults: ../shared/data/voxceleb-seed/keypoints.npz beside the checkout, out/vox256)
# The models and report land in WORK_DIR; copy them over the committed ones to ship them:
#   cp -r WORK_DIR/{vrnn,rnn,vae,linear-ar,direct-linear} models/forecasters-vox256/
#   cp WORK_DIR/report/crossval.json WORK_DIR/report/crossval-per-step.png docs/forecasting/
#   (and the table of WORK_DIR/report/crossval-table.md into docs/forecasting/real-keypoints.md)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keypoints="${1:-$root/../shared/data/voxceleb-seed/keypoints.npz}"
work="${2:-$root/out/vox256}"
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"
# One thread per process: the models are small, and the machine may be shared.
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" kp-motion train forecaster --keypoints "$keypoints" \
  --config config/forecaster-voxceleb.yaml --model all --cross-validate --detector vox-256 \
  --out "$work" --report "$work/report"
