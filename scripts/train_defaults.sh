#!/usr/bin/env bash
# Rebuilds the embedded synthetic-data models from nothing, the way the committed ones were made:
#   synthetic dataset -> FOMM compact-64 -> sample strip -> keypoint extraction ->
#   VRNN / RNN / VAE forecasters -> evaluation report.
# Long (about 2.5 hours on 2 CPU cores, mostly FOMM training). Not part of the tests.
#
# Usage: scripts/train_defaults.sh [WORK_DIR]   (default out/defaults; models land in WORK_DIR,
#        copy them to models/ to make them the defaults)
# Environment: DEVICE (default auto), EVAL_VIDEOS (default 12)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$root/out/defaults}"
device="${DEVICE:-auto}"
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"
mkdir -p "$work"

[ -d "$work/synth-64" ] || kp-motion synth --out "$work/synth-64"
kp-motion train fomm "$work/synth-64" -o "$work/train-fomm" --device "$device" \
  $( [ -d "$work/train-fomm/checkpoints" ] && echo --resume "$work/train-fomm" )
fomm="$work/train-fomm/model"
kp-motion samples "$work/synth-64" --checkpoint "$fomm" -o "$work/reconstructions.png"
kp-motion extract "$work/synth-64" --checkpoint "$fomm" -o "$work/keypoints"
kp-motion train forecaster --data "$work/keypoints/train" --test-data "$work/keypoints/test" \
  --model all --out "$work/forecasters"
kp-motion evaluate --dataset "$work/synth-64" --split test --checkpoint "$fomm" \
  --forecasters "$work/forecasters/vrnn" "$work/forecasters/rnn" "$work/forecasters/vae" \
  hold-last constant-velocity --max-videos "${EVAL_VIDEOS:-12}" -o "$work/evaluation"
echo "train_defaults: models in $fomm and $work/forecasters; report $work/evaluation/report.md"
