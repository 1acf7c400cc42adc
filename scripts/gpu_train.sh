#!/usr/bin/env bash
# Trains FOMM on a GPU within a fixed time budget, for a GPU that is lent for minutes (such as
# this project's device machine) rather than owned. Needs no set-up of the project: it runs
# the package from this checkout with the machine's own python3 and PyTorch.
#
#   1. a short probe run measures seconds per step at the chosen batch size;
#   2. the real run gets as many whole epochs as fit the budget, on a cosine schedule, so that
#      the learning rate has come down when time is up;
#   3. the model, logs and a sample strip (with its motion diagnostics) go to the output folder.
#
# Usage: scripts/gpu_train.sh DATASET OUTPUT [extra `kp-motion train fomm` options]
#   e.g. scripts/gpu_train.sh out/datasets/synth-64 "$OUT" --set adversarial.generator_gan=1
#   or, the next run of the part-supervision study (docs/research/part-supervision.md: keypoints
#   supervised by the synthetic part poses, the ground kept on the background's motion):
#   TRAINER=research.part_supervision.train INIT=none scripts/gpu_train.sh \
#     out/datasets/synth-64 "$OUT" --term part_following=50 --term part_following_jacobian=10 \
#     --study-set part_following_match=slot --set data.augmentation.horizontal_flip=0 \
#     --term background_mask=1
# Environment (defaults): DEVICE (cuda), BUDGET_S (360: seconds of the real run's training),
#   BATCH (64), WORKERS (8: data loader processes), LR (2e-4), PYTHON (python3),
#   REPEATS (100: pairs per training video and epoch; at batch 64 the shipped 10 would make
#   epochs of a second or two, each paying for validation, a checkpoint and new workers),
#   INIT (models/fomm-compact-64: the weights to start from; "none" = from scratch),
#   TRAINER (kp_motion.cli.main train fomm: the python module, and its arguments, that trains).
# Where PyAV is not installed (it reads the dataset's mp4 files), wheels in .whl/ of the
# checkout are installed into a temporary folder first.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DATASET OUTPUT [train fomm options]" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dataset="$1" output="$2"
shift 2
device="${DEVICE:-cuda}" budget="${BUDGET_S:-360}" batch="${BATCH:-64}"
workers="${WORKERS:-8}" repeats="${REPEATS:-100}" lr="${LR:-2e-4}" python="${PYTHON:-python3}"
init="${INIT:-$root/models/fomm-compact-64}"
read -r -a trainer <<< "${TRAINER:-kp_motion.cli.main train fomm}"
[ -d "$dataset/train" ] || { echo "gpu_train: $dataset has no train/ folder" >&2; exit 2; }
mkdir -p "$output"
work="$(mktemp -d)"

if ! "$python" -c "import av" 2>/dev/null; then
  compgen -G "$root/.whl/*.whl" >/dev/null || { echo "gpu_train: no PyAV and no .whl/" >&2; exit 2; }
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target \
    "$work/site" "$root"/.whl/*.whl
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
kp_motion() { "$python" -m kp_motion.cli.main "$@"; }
train() { "$python" -m "${trainer[@]}" "$@"; }
"$python" -c "import torch; print('gpu_train: torch', torch.__version__, 'on',
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

common=(--device "$device" --no-progress --set "batch_size=$batch"
  --set "data.num_workers=$workers" --set "data.repeats=$repeats"
  --set "optimizer.lr_kp_detector=$lr" --set "optimizer.lr_generator=$lr"
  --set optimizer.schedule=cosine)
[ "$init" = none ] || common+=(--init-from "$init")

echo "gpu_train: probe (60 steps at batch $batch)"
train "$dataset" -o "$work/probe" "${common[@]}" --set max_steps=60 \
  --set log_every=20 --set validation.max_videos=1 "$@" >"$work/probe.log" 2>&1 ||
  { cat "$work/probe.log" >&2; exit 1; }
# The last interval's speed (the first includes warm-up); epochs from the dataset's size.
epochs="$("$python" - "$work/probe" "$dataset" "$budget" "$batch" <<'EOF'
import csv
import sys
from pathlib import Path

import yaml

probe, dataset, budget, batch = Path(sys.argv[1]), Path(sys.argv[2]), *map(float, sys.argv[3:])
with (probe / "train_log.csv").open() as log:
    seconds_per_step = float(list(csv.DictReader(log))[-1]["seconds_per_step"])
with (probe / "train_fomm.yaml").open() as settings:
    repeats = yaml.safe_load(settings)["data"]["repeats"]
steps_per_epoch = max(1, int(len(list((dataset / "train").iterdir())) * repeats // batch))
print(max(1, int(budget / seconds_per_step) // steps_per_epoch))
EOF
)"
echo "gpu_train: $epochs epochs in about $budget s"
started=$(date +%s)
train "$dataset" -o "$work/run" "${common[@]}" --set "epochs=$epochs" "$@" \
  2>&1 | tee "$work/run.log"
echo "gpu_train: trained in $(( $(date +%s) - started )) s"
kp_motion samples "$dataset" --checkpoint "$work/run/model" -o "$output/reconstructions.png" \
  --device "$device" 2>&1 | tee -a "$work/run.log"
# What the model card judges the arms by: per-kind numbers on 40 test videos, keypoints drawn;
# on a synthetic dataset also whether the keypoints follow its parts.
kp_motion samples "$dataset" --checkpoint "$work/run/model" -o "$output/keypoints40.png" \
  --videos 40 --max-frames 32 --keypoints --device "$device" 2>&1 | tee -a "$work/run.log"
if [ -f "$dataset/manifest.yaml" ]; then
  "$python" -m research.part_supervision.diagnostics "$dataset" --checkpoint "$work/run/model" \
    --device "$device" 2>&1 | tee -a "$work/run.log"
fi
cp "$work/run/model/model.yaml" "$work/run/model/weights.safetensors" "$work/run/train_log.csv" \
  "$work/run/validation.csv" "$work/run.log" "$output/"
echo "gpu_train: model, logs and samples in $output"
