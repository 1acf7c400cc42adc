"""Node command lines as `ros2 run` would start them: executable, --ros-args, parameters.

The runner starts each node of a graph with the same arguments a launch file gives it
(`--ros-args -r __node:=NAME --params-file config/nodes.yaml -p node:name:=value -r ...`).
ROS-free: text in, text out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from kp_motion.paths import config_path, share_dir
from kp_motion.ros.graph import PACKAGE, NodeSpec
from kp_motion.ros.parameters import NODES_CONFIG


def find_executable(name: str) -> Path:
    """lib/kp_motion/<name> of an install prefix (as `ros2 run`), else scripts/nodes/<name>."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "lib" / PACKAGE / name if prefix else None
        if candidate is not None and candidate.is_file():
            return candidate
    candidate = share_dir() / "scripts" / "nodes" / name
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"node executable {name!r} not found (run scripts/setup.sh)")


def parameter_text(value: Any) -> str:
    """A parameter value as ROS reads `-p name:=value` (YAML), keeping its type.

    Floats always carry a decimal point (ROS refuses an integer for a double parameter) and
    strings that YAML would read as another type are quoted.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, int):
        return str(value)
    text = yaml.safe_dump(str(value), default_flow_style=True, width=10**9).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def ros_arguments(spec: NodeSpec, params_file: Path) -> list[str]:
    """--ros-args of a node: its name, config/nodes.yaml, then the graph's values.

    The values are node-scoped (`-p node:name:=value`, as launch_ros passes them): a plain
    `-p name:=value` applies to every node, and rcl lets a node's own section of a parameter
    file win over such global values, whatever their order.
    """
    arguments = ["--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]
    for name, value in spec.parameters.items():
        arguments += ["-p", f"{spec.name}:{name}:={parameter_text(value)}"]
    for source, target in spec.remappings:
        arguments += ["-r", f"{source}:={target}"]
    return arguments


def command_line(spec: NodeSpec, params_file: Path | None = None) -> list[str]:
    """The argv that starts one node of a graph."""
    params_file = params_file or config_path(NODES_CONFIG)
    executable = find_executable(spec.executable)
    return [sys.executable, str(executable), *ros_arguments(spec, params_file)]


def parse_ros_arguments(argv: list[str]) -> dict[str, Any]:
    """Inverse of ros_arguments (for checks): node name, params file, parameters, remappings."""
    if "--ros-args" not in argv:
        raise ValueError("no --ros-args in the command line")
    words = argv[argv.index("--ros-args") + 1 :]
    parsed: dict[str, Any] = {"name": None, "params_file": None, "parameters": {},
                              "remappings": []}
    for flag, value in zip(words[::2], words[1::2], strict=True):
        if flag == "--params-file":
            parsed["params_file"] = value
            continue
        key, _, text = value.partition(":=")
        if flag == "-p":
            node, _, name = key.rpartition(":")
            if node and parsed["name"] and node != parsed["name"]:
                raise ValueError(f"parameter {key} is scoped to another node")
            parsed["parameters"][name] = yaml.safe_load(text)
        elif flag == "-r" and key == "__node":
            parsed["name"] = text
        elif flag == "-r":
            parsed["remappings"].append((key, text))
        else:
            raise ValueError(f"unexpected ROS argument {flag} {value}")
    return parsed
