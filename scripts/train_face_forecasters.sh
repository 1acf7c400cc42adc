#!/usr/bin/env bash
# Rebuilds the forecaster set `face-128` (models/forecasters-face128) from the shared VoxCeleb
# seed clips as the embedded face model sees them: its keypoints of every clip (one keypoint set
# file), then leave-one-identity-out cross-validation of every kind and the final models, on the
# face model's TRAINING identities only (the identity it was validated on, id10290, is left out
# of everything here so that the evaluation can use it). Not part of the tests.
#
# Usage: scripts/train_face_forecasters.sh [--ship] [--no-cross-validate] [CLIPS_DIR] [WORK_DIR]
#   (defaults: ../shared/data/voxceleb-seed/clips beside the checkout, out/face128)
#   --ship               copy the trained models over models/forecasters-face128/ when done
#   --no-cross-validate  only the final models (skips the report; for a quick rebuild)
# Environment: MODEL (detector checkpoint, default models/fomm-face-128), HELD_OUT (default
# id10290), OMP_NUM_THREADS (default 1).
# The keypoints land in WORK_DIR/keypoints.npz, the models in WORK_DIR/<kind>/, the
# cross-validation table, plot and JSON in WORK_DIR/report/. Without --ship, ship them with
#   cp -r WORK_DIR/{vrnn,rnn,vae,linear-ar,direct-linear} models/forecasters-face128/
# and update models/forecasters-face128/MODEL_CARD.md from WORK_DIR/report/crossval-table.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ship=0
cross_validate=(--cross-validate)
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --ship) ship=1 ;;
    --no-cross-validate) cross_validate=() ;;
    *) echo "train_face_forecasters.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
clips="${1:-$root/../shared/data/voxceleb-seed/clips}"
work="${2:-$root/out/face128}"
model="${MODEL:-$root/models/fomm-face-128}"
held_out="${HELD_OUT:-id10290}"
kinds=(vrnn rnn vae linear-ar direct-linear)
if [[ ! -d "$clips" ]]; then
  echo "train_face_forecasters.sh: clips folder not found: $clips" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"
mkdir -p "$work"
# One thread per process: the models are small, and the machine may be shared.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
kp-motion extract --set "$work/keypoints.npz" --checkpoint "$model" "$clips"
kp-motion train forecaster --keypoints "$work/keypoints.npz" --exclude-identity "$held_out" \
  --config config/forecaster-voxceleb.yaml --model all "${cross_validate[@]}" \
  --out "$work" --report "$work/report"
if [[ "$ship" == 1 ]]; then
  target="$root/models/forecasters-face128"
  mkdir -p "$target"
  for kind in "${kinds[@]}"; do
    # Overwrites each member's two files; nothing else in the set's folder is touched.
    mkdir -p "$target/$kind"
    cp "$work/$kind/forecaster.yaml" "$work/$kind/weights.safetensors" "$target/$kind/"
  done
  echo "shipped ${kinds[*]} to $target (update its MODEL_CARD.md from $work/report)"
fi
