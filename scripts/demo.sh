#!/usr/bin/env bash
# The kp_motion demo: the transfer graph end to end, every node its own process, over DDS.
#
# The camera plays the bundled driving video (assets/demo_driving.mp4); the detector sends the
# keypoints of m of every m + n frames; the forecaster (the embedded VRNN by default) predicts
# the withheld ones; the renderer animates the bundled source image (assets/demo_source.png);
# the stats node measures the network topic and the latency. The graph then runs a second time
# with predictive transmission over the compact wire (docs/bandwidth/README.md), and the report
# shows both policies side by side.
#
# Usage: scripts/demo.sh [OUTPUT_DIR] [kp-motion graph options, e.g. --forecaster hold-last]
#   OUTPUT_DIR defaults to out/demo. It receives rendered.mp4, overlay.mp4, report.md and
#   report.json (payload and wire bytes/s, share of frames sent, frames predicted and
#   concealed, latency, for both policies), logs/ of every node, and predictive/ (the second
#   run). `kp-motion graph --compare-without-prediction` compares with sending every frame.
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

for asset in demo_driving.mp4 demo_source.png; do
  if [ ! -f "$root/assets/$asset" ]; then
    echo "demo: the bundled demo media assets/$asset is missing (see assets/README.md)" >&2
    exit 1
  fi
done

# The graph command checks the embedded default models (models/fomm-compact-64,
# models/forecasters/vrnn) and says which one is missing before starting anything.
cd "$root"
python -m kp_motion.cli.main graph transfer \
  --input "$root/assets/demo_driving.mp4" \
  --source-image "$root/assets/demo_source.png" \
  --output "$output" \
  --compare-policies \
  "$@"
echo "demo: report in $output/report.md, videos $output/rendered.mp4 and $output/overlay.mp4"
