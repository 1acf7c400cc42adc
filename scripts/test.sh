#!/usr/bin/env bash
# Sets up (idempotently, see setup.sh) and runs the whole test suite: ruff, then pytest with
# the ROS tests required (a missing ROS runtime fails instead of skipping).
# Extra arguments go to pytest, e.g. scripts/test.sh -k forecast -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
cd "$root"
echo "[test] ruff check"
ruff check .
echo "[test] pytest"
export KP_MOTION_REQUIRE_ROS=1 PYTHONUNBUFFERED=1
status=0
python -m pytest -q -p no:cacheprovider --durations=10 "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
fi
exit "$status"
