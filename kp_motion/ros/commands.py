"""Node command lines as `ros2 run` would start them: executable, --ros-args, parameters.

The runner starts each node of a graph with the same arguments a launch file gives it
(`--ros-args -r __node:=NAME [-r __ns:=/NS] --params-file config/nodes.yaml --params-file
VALUES.yaml -r topic:=kp_motion/topic ...`), where VALUES.yaml holds the graph's values for
that node under its fully qualified name (as launch_ros writes a node's parameter dict).
ROS-free.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from kp_motion.graph_config.parameters import NODES_CONFIG
from kp_motion.paths import config_path, share_dir
from kp_motion.ros.graph import PACKAGE, NodeSpec


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


def fully_qualified_name(spec: NodeSpec) -> str:
    return f"{spec.namespace}/{spec.name}"


def write_values_file(spec: NodeSpec, folder: Path) -> Path:
    """The graph's values for one node as a ROS parameter file, <folder>/<node>.yaml.

    One section named by the node's fully qualified name: given after config/nodes.yaml, it
    wins over that file's sections in any namespace (rcl applies the later file). Command-line
    `-p` values cannot do this: a node-scoped `-p camera:x:=v` reads `camera` as `/camera`,
    which a node in /robot1 does not match, and a plain `-p x:=v` loses to the file's
    /**/camera section (measured with rclpy 9.1.2, Kilted).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.name}.yaml"
    text = "\n".join(f"    {name}: {parameter_text(value)}"
                     for name, value in spec.parameters.items())
    path.write_text(f"{fully_qualified_name(spec)}:\n  ros__parameters:\n{text}\n"
                    if text else "{}\n")
    return path


def ros_arguments(spec: NodeSpec, params_file: Path, values_file: Path) -> list[str]:
    """--ros-args of a node: its name and namespace, config/nodes.yaml, then the graph's
    values (write_values_file), then its topic remappings."""
    arguments = ["--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        arguments += ["-r", f"__ns:={spec.namespace}"]
    arguments += ["--params-file", str(params_file), "--params-file", str(values_file)]
    for source, target in spec.remappings:
        arguments += ["-r", f"{source}:={target}"]
    return arguments


def command_line(spec: NodeSpec, values_folder: Path, params_file: Path | None = None) -> list[str]:
    """The argv that starts one node of a graph; writes its values file into values_folder."""
    params_file = params_file or config_path(NODES_CONFIG)
    executable = find_executable(spec.executable)
    values_file = write_values_file(spec, values_folder)
    return [sys.executable, str(executable), *ros_arguments(spec, params_file, values_file)]


def parse_ros_arguments(argv: list[str]) -> dict[str, Any]:
    """Inverse of ros_arguments (for checks): node name, namespace, parameter files, the values
    the last file sets for this node, remappings."""
    if "--ros-args" not in argv:
        raise ValueError("no --ros-args in the command line")
    words = argv[argv.index("--ros-args") + 1 :]
    parsed: dict[str, Any] = {"name": None, "namespace": "", "params_files": [],
                              "parameters": {}, "remappings": []}
    for flag, value in zip(words[::2], words[1::2], strict=True):
        key, _, text = value.partition(":=")
        if flag == "--params-file":
            parsed["params_files"].append(value)
        elif flag == "-r" and key == "__node":
            parsed["name"] = text
        elif flag == "-r" and key == "__ns":
            parsed["namespace"] = text
        elif flag == "-r":
            parsed["remappings"].append((key, text))
        else:
            raise ValueError(f"unexpected ROS argument {flag} {value}")
    if len(parsed["params_files"]) > 1:
        sections = yaml.safe_load(Path(parsed["params_files"][-1]).read_text()) or {}
        own = sections.get(f"{parsed['namespace']}/{parsed['name']}", {})
        parsed["parameters"] = own.get("ros__parameters", {})
    return parsed
