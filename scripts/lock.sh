#!/usr/bin/env bash
# Rebuilds requirements/lock.txt from requirements/base.txt in a throw-away venv.
# The ROS wheels install extra distributions under their package names (e.g. `rclpy` inside
# `ros-rclpy`); those are not on any index, so they are left out of the lock.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"${KP_MOTION_PYTHON:-python3.11}" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet -r "$root/requirements/base.txt"
"$scratch/venv/bin/python" - "$root/requirements/lock.txt" <<'PY'
import importlib.metadata as metadata
import re
import sys

installed = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        installed[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
pins = [
    f"{name}=={version}"
    for name, version in sorted(installed.items())
    if name != "pip" and not (not name.startswith("ros-") and f"ros-{name}" in installed)
]
header = (
    "# Pinned environment for scripts/setup.sh (torch: the CPU wheel; ROS 2 Kilted wheels from PyPI).\n"
    "# Regenerate with scripts/lock.sh after changing requirements/base.txt.\n"
)
open(sys.argv[1], "w").write(header + "\n".join(pins) + "\n")
print(f"wrote {len(pins)} pins to {sys.argv[1]}")
PY
