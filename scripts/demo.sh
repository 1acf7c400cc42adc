#!/usr/bin/env bash
# The kp_motion demo: a face animated by the transfer graph end to end, every node its own
# process, over DDS, with the embedded face model (models/fomm-face-128).
#
# Its inputs are ones the project may distribute: scikit-image's public-domain astronaut
# photograph (skimage.data.astronaut(), NASA), cut to the face, and a driving clip that
# `kp-motion head-motion` renders from that face with a scripted nod, turn and tilt. The camera
# plays the clip; the detector sends the keypoints of m of every m + n frames; the forecaster
# (the default set's VRNN) predicts the withheld ones; the renderer animates the face; the
# stats node measures the network topic and the latency. The graph then runs a second time
# with predictive transmission over the compact wire (docs/bandwidth/README.md), and the report
# shows both policies side by side.
#
# Usage: scripts/demo.sh [OUTPUT_DIR] [kp-motion graph options, e.g. --forecaster hold-last]
#   OUTPUT_DIR defaults to out/demo. It receives inputs/ (face.png, driving.mp4), rendered.mp4,
#   overlay.mp4, report.md and report.json (payload and wire bytes/s, share of frames sent,
#   frames predicted and concealed, latency, for both policies), logs/ of every node, and
#   predictive/ (the second run).
# Environment: CAMERA=INDEX drives the face with a live camera (/dev/videoINDEX) instead of
#   the clip, for FRAMES frames (default 250, 10 s at 25 fps); one run, no policy comparison.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output="$root/out/demo"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  output="$1"
  shift
fi

"$root/scripts/setup.sh"
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"

# The astronaut's face: a fixed 192 px square centred on it in the 512 x 512 photograph (rows,
# columns), about twice the face's width, as the VoxCeleb crops the face model learned from.
inputs="$output/inputs"
mkdir -p "$inputs"
python -c "
import sys
from PIL import Image
from skimage import data
Image.fromarray(data.astronaut()[18:210, 129:321]).save(sys.argv[1])
" "$inputs/face.png"

if [ -n "${CAMERA:-}" ]; then
  python -m kp_motion.cli.main graph transfer --input "$CAMERA" --max-frames "${FRAMES:-250}" \
    --source-image "$inputs/face.png" --output "$output" "$@"
else
  python -m kp_motion.cli.main head-motion --source "$inputs/face.png" -o "$inputs/driving.mp4"
  # The graph command checks the embedded default models and says which one is missing before
  # starting anything.
  python -m kp_motion.cli.main graph transfer \
    --input "$inputs/driving.mp4" \
    --source-image "$inputs/face.png" \
    --output "$output" \
    --compare-policies \
    "$@"
fi
echo "demo: report in $output/report.md, videos $output/rendered.mp4 and $output/overlay.mp4"
