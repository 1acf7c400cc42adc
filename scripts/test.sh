#!/usr/bin/env bash
# Sets up (idempotently, see setup.sh) and runs the whole test suite: ruff, then pytest with
# the ROS tests required (a missing ROS runtime fails instead of skipping).
# Extra arguments go to pytest, e.g. scripts/test.sh -k forecast -x
# KP_MOTION_TEST_JAZZY=1 (CI sets it) also runs the ROS-marked tests against the ROS 2 Jazzy
# wheels (KP_MOTION_ROS_DISTRO=jazzy in setup.sh: their own venv, build and install folders).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# One distribution's environment per subshell: the two must never share PATH or prefixes.
run_in() {  # run_in DISTRO COMMAND...
  (
    export KP_MOTION_ROS_DISTRO="$1"
    shift
    # shellcheck disable=SC1091
    source "$root/scripts/env.sh"
    cd "$root"
    "$@"
  )
}

"$root/scripts/setup.sh"
if [ -n "${KP_MOTION_TEST_JAZZY:-}" ]; then
  KP_MOTION_ROS_DISTRO=jazzy "$root/scripts/setup.sh"
fi
export KP_MOTION_REQUIRE_ROS=1 PYTHONUNBUFFERED=1
echo "[test] ruff check"
run_in kilted ruff check .
echo "[test] pytest (ROS 2 Kilted)"
status=0
run_in kilted python -m pytest -q -p no:cacheprovider --durations=10 "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
fi
if [ -n "${KP_MOTION_TEST_JAZZY:-}" ]; then
  echo "[test] pytest -m ros (ROS 2 Jazzy)"
  jazzy_status=0
  run_in jazzy python -m pytest -q -p no:cacheprovider -m ros "$@" || jazzy_status=$?
  [ "$status" -eq 0 ] && status=$jazzy_status
fi
exit "$status"
