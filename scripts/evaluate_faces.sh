#!/usr/bin/env bash
# The method's tables on real faces: the face model (models/fomm-face-128) and the face-128
# forecaster set on the held-out identity of the shared VoxCeleb clips.
#
# 1. links the clips into the first-order-model layout, split by identity (id10290 held out):
#    out/datasets/voxceleb-seed/{train,test} (links only; a rerun adds nothing);
# 2. runs `kp-motion evaluate --config config/evaluate-face.yaml` into out/evaluation/faces;
# 3. copies the report, the CSV/JSON results and the plots into docs/evaluation/faces/.
#
# Usage: scripts/evaluate_faces.sh [kp-motion evaluate options, e.g. --max-frames 25]
#   The clips are read from ../shared/data/voxceleb-seed/clips beside the checkout
#   (KP_MOTION_SHARED points to another copy of the shared folder).
#   KP_MOTION_DOCS=0 leaves docs/ untouched (a trial run).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${KP_MOTION_SHARED:-$root/../shared}"
clips="$shared/data/voxceleb-seed/clips"
dataset="out/datasets/voxceleb-seed"
output="out/evaluation/faces"
docs="docs/evaluation/faces"

if [ ! -d "$clips" ]; then
  echo "evaluate_faces: the shared clips are not at $clips (set KP_MOTION_SHARED)" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"

python -m kp_motion.cli.main dataset "$clips" "$dataset" --hold-out id10290
python -m kp_motion.cli.main evaluate --config config/evaluate-face.yaml \
  --dataset "$dataset" -o "$output" "$@"

if [ "${KP_MOTION_DOCS:-1}" != "0" ]; then
  mkdir -p "$docs"
  # Only the files the report writes: its own names, nothing else in docs/ is touched.
  cp "$output"/report.md "$output"/results.csv "$output"/results.json "$output"/*.png "$docs"/
  echo "copied the report and plots into $docs/"
fi
