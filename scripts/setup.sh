#!/usr/bin/env bash
# Idempotent set-up of a development/run environment for kp_motion on a machine without a
# ROS 2 install: a virtual environment with the pinned dependencies (PyTorch CPU, the ROS 2
# Kilted wheels from PyPI, colcon, ...) and a colcon build of the package (the Keypoint60
# message and the Python sources) into ./install. A second run reinstalls nothing.
#
# Usage: scripts/setup.sh            (then: source scripts/env.sh)
# Environment: KP_MOTION_PYTHON      interpreter for the venv (default python3.11)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamps="$root/.setup-stamps"
python_bin="${KP_MOTION_PYTHON:-python3.11}"
mkdir -p "$stamps" "$root/log"

say() { printf '[setup] %s\n' "$*"; }

fingerprint() {  # a hash of the given files' contents (missing files hash as empty)
  cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# 1. Virtual environment with pinned dependencies.
if [ ! -x "$venv/bin/python" ]; then
  command -v "$python_bin" >/dev/null || { echo "setup: $python_bin not found (set KP_MOTION_PYTHON)" >&2; exit 1; }
  say "creating virtual environment .venv ($("$python_bin" --version))"
  "$python_bin" -m venv "$venv"
  touch "$venv/COLCON_IGNORE"  # colcon must never crawl the wheels' share/ folders
fi
deps_hash="$(fingerprint "$root/requirements/lock.txt" "$root/pyproject.toml")"
if [ "$(cat "$stamps/deps" 2>/dev/null)" != "$deps_hash" ]; then
  say "installing pinned dependencies (requirements/lock.txt)"
  pip_log="$root/log/pip-last.txt"
  {
    "$venv/bin/python" -m pip install --disable-pip-version-check -r "$root/requirements/lock.txt" &&
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e "$root"
  } > "$pip_log" 2>&1 || { tail -n 40 "$pip_log" >&2; echo "setup: pip install failed (full log: $pip_log)" >&2; exit 1; }
  echo "$deps_hash" > "$stamps/deps"
fi

# 2. The ROS wheels' exported CMake targets name include directories of the machine that
# built them (/opt/python/cp311-cp311/...). CMake refuses targets whose include paths do not
# exist, so point those paths at this interpreter's headers and numpy's headers.
py_include="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"
grep -rhoE '/opt/python/[^;" ]*/include(/python3\.[0-9]+)?' "$venv/share" 2>/dev/null | sort -u |
while read -r wanted; do
  [ -e "$wanted" ] && continue
  case "$wanted" in
    */numpy/_core/include) target="$np_include" ;;
    */include/python3.*) target="$py_include" ;;
    *) continue ;;
  esac
  if ! mkdir -p "$(dirname "$wanted")" 2>/dev/null || ! ln -sfn "$target" "$wanted" 2>/dev/null; then
    echo "setup: cannot create $wanted (needed by the ROS wheels' CMake files); run as root once:" >&2
    echo "  sudo mkdir -p $(dirname "$wanted") && sudo ln -sfn $target $wanted" >&2
    exit 1
  fi
  say "linked $wanted -> $target"
done

# 3. colcon build of the package. With --symlink-install, edits to existing sources need no
# rebuild; new files, the message, CMake and package.xml do, so those are what we fingerprint.
build_inputs_hash="$(cd "$root" && {
  cat CMakeLists.txt package.xml msg/*.msg
  for dir in kp_motion config launch scripts/nodes models assets; do
    if [ -d "$dir" ]; then find "$dir" -type f -not -path '*/__pycache__/*'; fi
  done | sort
} | sha256sum | cut -d' ' -f1)"
# The venv lives inside the source tree, and CMake refuses an exported include directory under
# the source or build tree: numpy's headers are reached through a link outside the tree. One
# link per checkout (several checkouts may share a home), refreshed on every run.
np_link="${XDG_CACHE_HOME:-$HOME/.cache}/kp_motion/numpy-include-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
mkdir -p "$(dirname "$np_link")"
ln -sfn "$np_include" "$np_link"
if [ "$(cat "$stamps/colcon" 2>/dev/null)" != "$build_inputs_hash" ] ||
   [ ! -f "$root/install/local_setup.bash" ]; then
  say "colcon build (message generation + install)"
  (
    cd "$root"
    export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
    export PATH="$venv/bin:$PATH"
    # --cmake-force-configure: CMakeLists.txt lists scripts/nodes/* with file(GLOB) at configure
    # time, so a new node executable is installed only when CMake configures again.
    "$venv/bin/colcon" --log-base log build --paths . --symlink-install \
      --build-base build --install-base install --cmake-force-configure \
      --event-handlers console_cohesion- status- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
      -DPython3_NumPy_INCLUDE_DIR="$np_link" > log/colcon-last.txt 2>&1 ||
      { cat log/colcon-last.txt >&2; echo "setup: colcon build failed (log above)" >&2; exit 1; }
  )
  echo "$build_inputs_hash" > "$stamps/colcon"
fi
say "ready: source scripts/env.sh"
