"""The project runner: starts a graph of kp_motion.ros.graph as separate node processes.

`kp-motion graph reconstruction|transfer` comes here. For machines without `ros2 launch`
(launch_ros is not on PyPI), the runner starts the same executables a launch file would, with
the same arguments (`--ros-args -r __node:=NAME --params-file config/nodes.yaml -p ... -r ...`),
and also:

  * starts all nodes and waits for their ready lines (READY_MARKER); no node publishes before
    its consumers are matched (the graph's wait_for_subscribers);
  * records the receiver's outputs in this process (a small rclpy "sink" node): rendered and
    overlay videos, the full-rate keypoint stream and the capture stamps (frames.json);
  * notices the end of the clip (the camera exits with status 0), waits until the rendered
    stream has been quiet for `settle_s`, then stops the nodes with SIGINT, upstream first
    (SIGTERM, then SIGKILL, for a node that does not stop); Ctrl-C / SIGTERM stop it the same
    way;
  * fails with the node's name, status and last log lines when a node dies;
  * writes report.json and report.md (bytes/s on the network topic, frames by origin,
    end-to-end latency), and can compare a run with prediction against one without.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kp_motion.paths import config_path, share_dir
from kp_motion.ros.graph import (
    PACKAGE,
    READY_MARKER,
    TOPICS,
    GraphOptions,
    NodeSpec,
    build_graph,
)

NODES_CONFIG = "nodes.yaml"
LOG_TAIL_LINES = 30
GROUP_STOP_WAIT_S = 3.0  # after Ctrl-C: time the nodes get to stop on their own signal


class RunnerError(Exception):
    """The graph could not be run to the end (a node died, a timeout)."""


# --------------------------------------------------------------------------------------------
# Command lines
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Node processes
# --------------------------------------------------------------------------------------------


class NodeProcess:
    """A running node: its process, its log file, its ready flag and its last log lines."""

    def __init__(self, spec: NodeSpec, argv: list[str], log_path: Path, echo: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.argv = argv
        self.ready = threading.Event()
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.echo = echo
        env = dict(os.environ if env is None else env)
        env.update(PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
                   RCUTILS_COLORIZED_OUTPUT="0")
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, bufsize=1, env=env, preexec_fn=_default_sigint,
        )
        self._interrupted = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def name(self) -> str:
        return self.spec.name

    def _read(self) -> None:
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            self.tail.append(line.rstrip())
            if READY_MARKER in line:
                self.ready.set()
            if self.echo or "[ERROR]" in line or "[WARN]" in line:
                print(f"[{self.name}] {line.rstrip()}", file=sys.stderr, flush=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def failure(self, what: str) -> RunnerError:
        lines = "\n".join(f"    {line}" for line in self.tail)
        return RunnerError(f"node {self.name} {what}; its last log lines:\n{lines}")

    def interrupt(self) -> None:
        """Ask the node to stop (SIGINT, as Ctrl-C); stop() waits for it."""
        if self.alive() and not self._interrupted:
            self.process.send_signal(signal.SIGINT)
            self._interrupted = True

    def stop(self, timeout_s: float) -> int:
        """SIGINT, then SIGTERM, then SIGKILL; returns the exit status."""
        for stop_signal, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0),
                                    (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            if stop_signal != signal.SIGINT or not self._interrupted:
                self.process.send_signal(stop_signal)
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.close()
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is not None:
            self._reader.join(timeout=5.0)
            self._log.close()


# --------------------------------------------------------------------------------------------
# The sink: records what the graph produced
# --------------------------------------------------------------------------------------------


class Sink:
    """An rclpy node in the runner process that writes the graph's outputs as they arrive."""

    def __init__(self, output_dir: Path, fps: float, record_receiver: bool,
                 record_sender: bool) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from kp_motion.data.video_io import VideoWriter
        from kp_motion.msg import Keypoint60
        from kp_motion.ros.common import RECORDER_QOS

        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context,
                   signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("kp_motion_runner_sink", context=self.context)
        self.lock = threading.Lock()
        self.captured: list[int] = []
        self.keypoints: list[dict[str, int]] = []
        self.rendered: list[int] = []
        self.overlays = 0
        self.last_output = time.monotonic()
        self.errors: list[str] = []
        self.writers = {}
        if record_receiver:
            self.writers = {
                "rendered": VideoWriter(output_dir / "rendered.mp4", fps),
                "overlay": VideoWriter(output_dir / "overlay.mp4", fps),
            }
            self.node.create_subscription(Image, TOPICS["rendered"], self._on_rendered,
                                          RECORDER_QOS)
            self.node.create_subscription(Image, TOPICS["overlay"], self._on_overlay,
                                          RECORDER_QOS)
            self.node.create_subscription(Keypoint60, TOPICS["keypoints_full"],
                                          self._on_keypoints, RECORDER_QOS)
        if record_sender:
            self.node.create_subscription(Image, TOPICS["image"], self._on_capture,
                                          RECORDER_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from kp_motion.ros.common import spin_once

        while spin_once(self.executor, self.context):  # until close() shuts the context down
            pass

    def _write(self, which: str, message) -> None:
        from kp_motion.ros.conversions import image_to_array

        try:
            self.writers[which].write(image_to_array(message))
        except ValueError as error:
            self.errors.append(f"{which}: {error}")

    def _on_rendered(self, message) -> None:
        from kp_motion.ros.conversions import stamp_to_ns

        self._write("rendered", message)
        with self.lock:
            self.rendered.append(stamp_to_ns(message.header.stamp))
            self.last_output = time.monotonic()

    def _on_overlay(self, message) -> None:
        self._write("overlay", message)
        with self.lock:
            self.overlays += 1

    def _on_keypoints(self, message) -> None:
        from kp_motion.ros.conversions import stamp_to_ns

        with self.lock:
            self.keypoints.append({"frame_index": int(message.frame_index),
                                   "origin": int(message.origin),
                                   "stamp_ns": stamp_to_ns(message.header.stamp)})
            self.last_output = time.monotonic()

    def _on_capture(self, message) -> None:
        from kp_motion.ros.conversions import stamp_to_ns

        with self.lock:
            self.captured.append(stamp_to_ns(message.header.stamp))
            self.last_output = time.monotonic()

    def quiet_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_output

    def close(self, output_dir: Path) -> dict[str, Any]:
        import rclpy

        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        for writer in self.writers.values():
            writer.close()
        record = {
            "captured_stamps_ns": self.captured,
            "keypoints": self.keypoints,
            "rendered_stamps_ns": self.rendered,
            "overlay_frames": self.overlays,
            "errors": self.errors,
        }
        (output_dir / "frames.json").write_text(json.dumps(record) + "\n")
        for name, writer in self.writers.items():
            if writer.count == 0:  # nothing arrived: leave no empty file behind
                (output_dir / f"{name}.mp4").unlink(missing_ok=True)
        return record


# --------------------------------------------------------------------------------------------
# Running a graph
# --------------------------------------------------------------------------------------------


@dataclass
class RunSettings:
    ready_timeout_s: float = 180.0  # per node, from its start to its ready line
    settle_s: float = 3.0  # quiet time after the clip ends before stopping
    timeout_s: float | None = None  # the whole run
    stop_timeout_s: float = 10.0  # per node, from SIGINT to SIGTERM
    echo: bool = False  # print every node log line (errors and warnings always are)


@dataclass
class RunResult:
    graph: str
    output_dir: Path
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    wall_s: float = 0.0


def _stream_fps(options: GraphOptions) -> float:
    if options.fps is not None:
        return float(options.fps)
    from kp_motion.ros.common import node_defaults  # the YAML default

    return float(node_defaults("camera")["fps"])


class GraphRunner:
    def __init__(self, graph: str, options: GraphOptions, output_dir: str | Path,
                 settings: RunSettings | None = None) -> None:
        self.graph = graph
        self.output_dir = Path(output_dir)
        self.settings = settings or RunSettings()
        summary = str(self.output_dir / "stats.json")
        self.options = replace(
            options,
            summary_path=options.summary_path or summary,
            exit_at_end=True if options.exit_at_end is None else options.exit_at_end,
            recorder=True,
        )
        self.specs = build_graph(graph, self.options)
        self.processes: list[NodeProcess] = []

    def command_lines(self) -> list[tuple[NodeSpec, list[str]]]:
        params_file = config_path(NODES_CONFIG)
        return [(spec, command_line(spec, params_file)) for spec in self.specs]

    def _log(self, text: str) -> None:
        print(f"[kp-motion graph] {text}", file=sys.stderr, flush=True)

    def _start_all(self, commands: list[tuple[NodeSpec, list[str]]], deadline: float) -> None:
        """Start every node at once and wait for all their ready lines.

        Starting them together is safe: no producer sends before all of its consumers are
        matched (the graph's wait_for_subscribers), and a node subscribes to its input only
        once it is ready, so the graph comes up from its downstream end by itself.
        """
        logs = self.output_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for spec, argv in commands:
            process = NodeProcess(spec, argv, logs / f"{spec.name}.log", self.settings.echo)
            self.processes.append(process)
        ready_by = min(deadline, time.monotonic() + self.settings.ready_timeout_s)
        waiting = list(self.processes)
        while waiting:
            time.sleep(0.05)
            for process in list(waiting):
                if process.ready.is_set():
                    waiting.remove(process)
                    self._log(f"{process.name} ready")
                elif not process.alive():
                    raise process.failure(f"exited with status {process.process.returncode} "
                                          "during start-up")
            if waiting and time.monotonic() > ready_by:
                raise waiting[0].failure("did not report ready in time")

    def _check_alive(self, camera: NodeProcess | None) -> None:
        for process in self.processes:
            if process is camera or process.alive():
                continue
            raise process.failure(f"exited with status {process.process.returncode}")

    def _wait_for_end(self, sink: Sink | None, deadline: float) -> None:
        camera = next((p for p in self.processes if p.name == "camera"), None)
        clip_ended_at: float | None = None
        while True:
            time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RunnerError(f"the graph did not finish within {self.settings.timeout_s} s")
            if camera is not None and not camera.alive():
                if camera.process.returncode != 0:
                    raise camera.failure(f"exited with status {camera.process.returncode}")
                if clip_ended_at is None:
                    clip_ended_at = time.monotonic()
                    self._log("end of clip; waiting for the last frames")
            self._check_alive(camera)
            if clip_ended_at is None:
                continue
            quiet = sink.quiet_for() if sink is not None else time.monotonic() - clip_ended_at
            if quiet >= self.settings.settle_s and time.monotonic() - clip_ended_at >= 0.5:
                return

    def _stop_all(self, interrupted: bool) -> dict[str, int | None]:
        """Stop the nodes upstream first; after a Ctrl-C (which every node of the terminal's
        process group got too) first give them time to stop by themselves."""
        order = {spec.name: i for i, spec in enumerate(self.specs)}
        processes = sorted(self.processes, key=lambda p: order[p.name])
        if interrupted:
            deadline = time.monotonic() + min(self.settings.stop_timeout_s, GROUP_STOP_WAIT_S)
            while any(p.alive() for p in processes) and time.monotonic() < deadline:
                time.sleep(0.1)
        for process in processes:  # all at once: the stream has drained, order is enough
            process.interrupt()
        return {p.name: p.stop(self.settings.stop_timeout_s) for p in processes}

    def run(self) -> RunResult:
        """Run the graph to the end of the clip (or Ctrl-C); RunnerError when it fails."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        commands = self.command_lines()
        (self.output_dir / "commands.json").write_text(
            json.dumps([{"node": s.name, "argv": argv} for s, argv in commands], indent=2) + "\n"
        )
        started = time.monotonic()
        timeout = self.settings.timeout_s
        deadline = started + timeout if timeout else float("inf")
        roles = {spec.role for spec in self.specs}
        sink = Sink(self.output_dir, _stream_fps(self.options), "receiver" in roles,
                    "sender" in roles)
        result = RunResult(self.graph, self.output_dir)
        previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        interrupted = False
        try:
            self._start_all(commands, deadline)
            self._log(f"running the {self.graph} graph ({', '.join(s.name for s in self.specs)})")
            self._wait_for_end(sink, deadline)
        except KeyboardInterrupt as stop:
            interrupted = not isinstance(stop, TerminatedError)  # SIGTERM: only we got it
            self._log("interrupted; stopping the nodes")
        finally:
            result.exit_codes = self._stop_all(interrupted)
            result.frames = sink.close(self.output_dir)
            signal.signal(signal.SIGTERM, previous_term)
            result.wall_s = time.monotonic() - started
        stats_path = Path(self.options.summary_path)
        if stats_path.is_file():
            result.stats = json.loads(stats_path.read_text())
        write_report(result, self.options, self.output_dir)
        return result


def _default_sigint() -> None:
    """In a node's process before exec: the runner stops nodes with SIGINT, so a node must not
    inherit an ignored SIGINT (background jobs of a non-interactive shell, nohup, some CI
    runners start with SIGINT ignored, and an ignored signal survives exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class TerminatedError(KeyboardInterrupt):
    """SIGTERM to the runner: stop like Ctrl-C (the nodes did not get the signal)."""


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise TerminatedError


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def run_summary(result: RunResult, options: GraphOptions) -> dict[str, Any]:
    """The numbers of one run that a report shows."""
    stats = result.stats or {}
    network = stats.get("network", {})
    full = stats.get("keypoints_full", {})
    latency = stats.get("rendered", {}).get("latency", {})
    return {
        "graph": result.graph,
        "options": {k: v for k, v in asdict(options).items() if v is not None},
        "schedule": stats.get("schedule"),
        "frames_captured": len(result.frames.get("captured_stamps_ns", [])),
        "frames_rendered": len(result.frames.get("rendered_stamps_ns", [])),
        "frames_detected": full.get("detected"),
        "frames_predicted": full.get("predicted"),
        "frames_concealed": full.get("concealed"),
        "network_messages": network.get("messages"),
        "network_frames_lost": network.get("frames_lost"),
        "network_bytes_per_second": network.get("bytes_per_second"),
        "network_bytes_per_stream_second": network.get("bytes_per_stream_second"),
        "network_mean_message_bytes": network.get("mean_message_bytes"),
        "latency_ms": latency,
        "exit_codes": result.exit_codes,
        "wall_s": result.wall_s,
    }


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _markdown_rows(summary: dict[str, Any]) -> list[str]:
    latency = summary.get("latency_ms", {})
    detected = latency.get("detected", {})
    every = latency.get("all", {})
    return [
        f"| frames captured / rendered | {summary['frames_captured']} / "
        f"{summary['frames_rendered']} |",
        f"| frames detected / predicted / concealed | {_number(summary['frames_detected'])} / "
        f"{_number(summary['frames_predicted'])} / {_number(summary['frames_concealed'])} |",
        f"| network messages (frames lost) | {_number(summary['network_messages'])} "
        f"({_number(summary['network_frames_lost'])}) |",
        f"| network bytes/s (wall clock) | {_number(summary['network_bytes_per_second'])} |",
        f"| network bytes per second of video | "
        f"{_number(summary['network_bytes_per_stream_second'])} |",
        f"| mean message size (bytes) | {_number(summary['network_mean_message_bytes'])} |",
        f"| latency, detected frames: mean / p95 (ms) | {_number(detected.get('mean_ms'))} / "
        f"{_number(detected.get('p95_ms'))} |",
        f"| latency, all frames: mean / p95 (ms) | {_number(every.get('mean_ms'))} / "
        f"{_number(every.get('p95_ms'))} |",
    ]


def write_report(result: RunResult, options: GraphOptions, output_dir: Path) -> dict[str, Any]:
    summary = run_summary(result, options)
    (output_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    schedule = summary.get("schedule") or {}
    lines = [
        f"# kp_motion {result.graph} graph",
        "",
        f"Schedule: m={schedule.get('m')} transmitted, n={schedule.get('n')} withheld per cycle; "
        f"forecaster {options.forecaster or 'default (config/nodes.yaml)'}.",
        "",
        "| | |",
        "|---|---|",
        *_markdown_rows(summary),
        "",
        "Latency is the rendered frame's arrival at the stats node minus its header stamp (the "
        "capture time for detected frames; forecast frames carry an extrapolated stamp).",
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines))
    return summary


def write_comparison(with_prediction: dict[str, Any], without: dict[str, Any],
                     output_dir: Path) -> dict[str, Any]:
    """report.json / report.md comparing a run with prediction to one that sends every frame."""
    def ratio(key: str) -> float | None:
        a, b = with_prediction.get(key), without.get(key)
        return a / b if a and b else None

    comparison = {
        "with_prediction": with_prediction,
        "without_prediction": without,
        "bytes_per_second_ratio": ratio("network_bytes_per_second"),
        "bytes_per_stream_second_ratio": ratio("network_bytes_per_stream_second"),
    }
    (output_dir / "report.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
    schedule = with_prediction.get("schedule") or {}
    rows_with = _markdown_rows(with_prediction)
    rows_without = _markdown_rows(without)
    table = ["| | with prediction | without prediction |", "|---|---|---|"]
    for row_with, row_without in zip(rows_with, rows_without, strict=True):
        label, value_with = row_with.strip("|").split("|", 1)
        _, value_without = row_without.strip("|").split("|", 1)
        table.append(f"|{label}|{value_with.strip()} |{value_without.strip()} |")
    lines = [
        f"# kp_motion {with_prediction['graph']} graph: with and without prediction",
        "",
        f"With prediction the sender transmits m={schedule.get('m')} of every "
        f"m+n={_sum_schedule(schedule)} frames and the receiver forecasts the rest; without "
        "prediction it transmits every frame (n=0).",
        "",
        *table,
        "",
        f"Network bytes/s with / without prediction: "
        f"{_number(comparison['bytes_per_second_ratio'], 3)} (wall clock), "
        f"{_number(comparison['bytes_per_stream_second_ratio'], 3)} (per second of video).",
        "",
        "Videos: rendered.mp4 (the animated source) and overlay.mp4 (driving keypoints; border "
        "green = detected, amber = predicted, red = concealed), from the run with prediction.",
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines))
    return comparison


def _sum_schedule(schedule: dict[str, Any]) -> str:
    m, n = schedule.get("m"), schedule.get("n")
    return str(m + n) if isinstance(m, int) and isinstance(n, int) else "?"


def run_graph(graph: str, options: GraphOptions, output_dir: str | Path,
              settings: RunSettings | None = None) -> RunResult:
    return GraphRunner(graph, options, output_dir, settings).run()


def run_comparison(graph: str, options: GraphOptions, output_dir: str | Path,
                   settings: RunSettings | None = None) -> dict[str, Any]:
    """Run the graph with prediction (into output_dir) and with n=0 (output_dir/no_prediction)."""
    output_dir = Path(output_dir)
    with_prediction = run_graph(graph, options, output_dir, settings)
    baseline_options = replace(options, n=0, summary_path=None)
    without = run_graph(graph, baseline_options, output_dir / "no_prediction", settings)
    return write_comparison(
        run_summary(with_prediction, options), run_summary(without, baseline_options), output_dir
    )
