#!/usr/bin/env bash
# Regenerates what the face model's card shows (models/fomm-face-128/MODEL_CARD.md), from the
# model itself, on the held-out identity (the dataset's test split):
#   docs/face-model/strip.png    keypoints (no frame shown), reconstructions with PSNR and the
#                                still source's, transfers (another held-out clip; the astronaut
#                                of scikit-image when it is installed)
#   docs/face-model/held-out.md  reconstruction vs still source: PSNR, SSIM, L1 over every
#                                frame but each clip's first, at the model's size
# About 6 min on 2 CPU cores. Not part of the tests.
#
# Usage: scripts/face_model_docs.sh [DATASET] [MODEL]
#        (defaults: out/datasets/voxceleb-seed, the shared clips in the first-order-model layout
#         split by identity, which `kp-motion dataset` builds; models/fomm-face-128)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dataset="${1:-$root/out/datasets/voxceleb-seed}"
model="${2:-fomm-face-128}"
if [ ! -d "$dataset/test" ]; then
  echo "face_model_docs: no $dataset/test (build the dataset with kp-motion dataset first)" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"
mkdir -p docs/face-model
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" kp-motion samples "$dataset" --split test \
  --checkpoint "$model" --card --frames 6 --zoom 1 \
  -o docs/face-model/strip.png --table docs/face-model/held-out.md
