#!/usr/bin/env bash
# The renderer's speed on a GPU, in one call, for a GPU that is lent for minutes: it runs the
# package from this checkout with the machine's own python3 and PyTorch (no set-up), prints the
# card's name and writes each table to OUTPUT (docs/rendering-performance.md says what the
# rows are). Every section runs even when one before it fails (a compile error, say).
#
# Usage: scripts/gpu_bench.sh OUTPUT
# Environment (defaults): DEVICE (cuda), PROFILES ("vox-256 face-128"), REPEATS (21),
#   PYTHON (python3).
# The Python packages the bench imports besides torch (numpy, PyYAML, safetensors, tqdm) must
# be installed, or their wheels be in .whl/ of the checkout (installed into a temporary folder).
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTPUT" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output="$1" device="${DEVICE:-cuda}" repeats="${REPEATS:-21}" python="${PYTHON:-python3}"
read -r -a profiles <<< "${PROFILES:-vox-256 face-128}"
mkdir -p "$output" || exit 2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! "$python" -c "import numpy, yaml, safetensors, tqdm" 2>/dev/null; then
  compgen -G "$root/.whl/*.whl" >/dev/null || {
    echo "gpu_bench: numpy, PyYAML, safetensors or tqdm missing, and no .whl/" >&2; exit 2; }
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target \
    "$work/site" "$root"/.whl/*.whl || exit 2
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$python" -c "import torch; print('gpu_bench: torch', torch.__version__, 'on',
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" \
  | tee "$output/device.txt"

failed=0
section() {  # section NAME bench-options...: one table, kept even when another fails
  local name="$1"
  shift
  echo "gpu_bench: $name"
  if ! "$python" -m kp_motion.cli.main bench --device "$device" --repeats "$repeats" "$@" \
      >"$output/$name.txt" 2>"$output/$name.err"; then
    echo "gpu_bench: $name failed: $(tail -n 1 "$output/$name.err")" >&2
    failed=1
  fi
  cat "$output/$name.txt"
}
section render --only render --profiles "${profiles[@]}"
section render-compiled --only render --profiles "${profiles[@]}" --compile
section models --only models --profiles "${profiles[@]}"
exit "$failed"
