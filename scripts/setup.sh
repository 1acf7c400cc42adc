#!/usr/bin/env bash
# Idempotent set-up of a development/run environment for kp_motion on a machine without a
# ROS 2 install: a virtual environment with the pinned dependencies (PyTorch CPU, the ROS 2
# Kilted wheels from PyPI, colcon, ...) and a colcon build of the package (the Keypoint60
# message and the Python sources) into ./install. A second run reinstalls nothing.
#
# Usage: scripts/setup.sh            (then: source scripts/env.sh)
# Environment: KP_MOTION_PYTHON      interpreter for the venv (default python3.11)
#              KP_MOTION_ROS_DISTRO  kilted (default) or jazzy: the ROS 2 wheels to build and
#                                    run against. Jazzy gets its own lock file
#                                    (requirements/lock-jazzy.txt) and its own .venv-jazzy,
#                                    build-jazzy, install-jazzy and log-jazzy folders, since both
#                                    distributions install under the same distribution names.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${KP_MOTION_ROS_DISTRO:-kilted}" in
  kilted) suffix="" lock="$root/requirements/lock.txt" ;;
  jazzy) suffix="-jazzy" lock="$root/requirements/lock-jazzy.txt" ;;
  *) echo "setup: KP_MOTION_ROS_DISTRO must be kilted or jazzy, got '$KP_MOTION_ROS_DISTRO'" >&2
     exit 1 ;;
esac
venv="$root/.venv$suffix"
stamps="$root/.setup-stamps$suffix"
logs="log$suffix"
python_bin="${KP_MOTION_PYTHON:-python3.11}"
mkdir -p "$stamps" "$root/$logs"

say() { printf '[setup] %s\n' "$*"; }

fingerprint() {  # a hash of the given files' contents (missing files hash as empty)
  cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# 1. Virtual environment with pinned dependencies.
if [ ! -x "$venv/bin/python" ]; then
  command -v "$python_bin" >/dev/null || { echo "setup: $python_bin not found (set KP_MOTION_PYTHON)" >&2; exit 1; }
  say "creating virtual environment .venv$suffix ($("$python_bin" --version))"
  "$python_bin" -m venv "$venv"
  touch "$venv/COLCON_IGNORE"  # colcon must never crawl the wheels' share/ folders
fi
deps_hash="$(fingerprint "$lock" "$root/pyproject.toml")"
if [ "$(cat "$stamps/deps" 2>/dev/null)" != "$deps_hash" ]; then
  say "installing pinned dependencies (${lock#"$root/"})"
  pip_log="$root/$logs/pip-last.txt"
  {
    "$venv/bin/python" -m pip install --disable-pip-version-check -r "$lock" &&
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
np_link="${XDG_CACHE_HOME:-$HOME/.cache}/kp_motion/numpy-include-$(printf '%s' "$root" | sha256sum | cut -c1-12)$suffix"
mkdir -p "$(dirname "$np_link")"
ln -sfn "$np_include" "$np_link"
if [ "$(cat "$stamps/colcon" 2>/dev/null)" != "$build_inputs_hash" ] ||
   [ ! -f "$root/install$suffix/local_setup.bash" ]; then
  say "colcon build (message generation + install${suffix:+, $suffix})"
  (
    cd "$root"
    export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
    export PATH="$venv/bin:$PATH"
    # --cmake-force-configure: CMakeLists.txt lists scripts/nodes/* with file(GLOB) at configure
    # time, so a new node executable is installed only when CMake configures again.
    "$venv/bin/colcon" --log-base "$logs" build --paths . --symlink-install \
      --build-base "build$suffix" --install-base "install$suffix" --cmake-force-configure \
      --event-handlers console_cohesion- status- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
      -DPython3_NumPy_INCLUDE_DIR="$np_link" > "$logs/colcon-last.txt" 2>&1 ||
      { cat "$logs/colcon-last.txt" >&2; echo "setup: colcon build failed (log above)" >&2
        exit 1; }
  )
  echo "$build_inputs_hash" > "$stamps/colcon"
fi
say "ready: ${KP_MOTION_ROS_DISTRO:+KP_MOTION_ROS_DISTRO=$KP_MOTION_ROS_DISTRO }source scripts/env.sh"
