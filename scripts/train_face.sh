#!/usr/bin/env bash
# Trains the face model (models/fomm-face-128) the way the committed one was trained: the
# shared VoxCeleb clips in the first-order-model layout with identity id10290 held out (the
# test split), then config/train_face.yaml fine-tuning the synthetic-data model
# models/fomm-compact-64. Long (hours on a CPU); not part of the tests. The clips are not in
# the repository: they are read from CLIPS, and the dataset holds links to them, not copies.
#
# Usage: scripts/train_face.sh [OUT]   (default out/train-face-128; the model lands in OUT/model,
#        copy it to models/fomm-face-128 to make it the default)
# Environment: CLIPS (default ../shared/data/voxceleb-seed/clips beside the checkout),
#              DATASET (default out/datasets/voxceleb-seed), DEVICE (default auto)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-out/train-face-128}"
clips="${CLIPS:-../shared/data/voxceleb-seed/clips}"
dataset="${DATASET:-out/datasets/voxceleb-seed}"
cd "$root"
if [ ! -d "$clips" ]; then
  echo "train_face: no clips folder at $clips (set CLIPS to the VoxCeleb clips)" >&2
  exit 1
fi
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
source "$root/scripts/env.sh"

[ -d "$dataset/train" ] || kp-motion dataset "$clips" "$dataset" --hold-out id10290
# A new run starts from the synthetic-data model; a stopped one resumes where it was.
start=(--init-from models/fomm-compact-64)
[ -d "$out/checkpoints" ] && start=(--resume "$out")
kp-motion train fomm "$dataset" -o "$out" --config config/train_face.yaml \
  --device "${DEVICE:-auto}" "${start[@]}"
echo "train_face: model in $out/model"
