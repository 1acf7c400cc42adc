"""The project runner: starts a graph of kp_motion.ros.graph as separate node processes.

`kp-motion graph reconstruction|transfer` comes here. For machines without `ros2 launch`
(launch_ros is not on PyPI), the runner starts the same executables a launch file would, with
the same arguments (kp_motion.ros.commands), and also:

  * runs in a private DDS domain with discovery on this machine unless the user set them
    (kp_motion.ros.discovery);
  * starts every node but the capture node (camera or sender), waits for their ready lines
    (READY_MARKER), then starts the capture node: nobody waits for subscribers, the graph is
    up before the first frame, and a clip's frames are kept for late readers (kp_motion.ros.qos);
    the run counts as started once every recorded stream has delivered a frame;
  * records the receiver's outputs in this process (a small rclpy "sink" node): rendered and
    overlay videos, the full-rate keypoint stream and the capture stamps (frames.json);
  * notices the end of the clip (END_OF_CLIP_MARKER in the capture node's log; the node stays
    alive, keeping its frames for late readers), waits until the rendered stream has been
    quiet for `settle_s`, then stops the nodes with SIGINT, upstream first
    (SIGTERM, then SIGKILL, for a node that does not stop); Ctrl-C / SIGTERM stop it the same
    way;
  * fails with the node's name, status and last log lines when a node dies;
  * writes report.json and report.md (bytes/s on the network topic, frames by origin,
    end-to-end latency), and can compare a run with prediction against one without.

This module is the supervision loop; its parts live by job: kp_motion.ros.commands (node
command lines), kp_motion.ros.processes (one node process), kp_motion.ros.recorder (the sink
node) and kp_motion.ros.reports (report.json / report.md).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kp_motion.graph_config.parameters import NODES_CONFIG, node_defaults
from kp_motion.names import COMPACT, FIXED, PREDICTIVE, RECEIVER
from kp_motion.paths import config_path
from kp_motion.ros import discovery
from kp_motion.ros.commands import command_line
from kp_motion.ros.graph import (
    CAPTURE_NODES,
    SETTLE_S,
    GraphOptions,
    NodeSpec,
    build_graph,
    is_recorded_input,
)
from kp_motion.ros.processes import NodeProcess, RunnerError
from kp_motion.ros.recorder import Sink
from kp_motion.ros.reports import (
    RunResult,
    run_summary,
    write_comparison,
    write_policy_comparison,
    write_report,
)

GROUP_STOP_WAIT_S = 3.0  # after Ctrl-C: time the nodes get to stop on their own signal

__all__ = ["GraphRunner", "RunResult", "RunSettings", "RunnerError", "run_comparison",
           "run_graph", "run_summary"]


@dataclass
class RunSettings:
    ready_timeout_s: float = 180.0  # per node, from its start to its ready line
    settle_s: float = SETTLE_S  # quiet time after the clip ends before stopping
    timeout_s: float | None = None  # the whole run
    stop_timeout_s: float = 10.0  # per node, from SIGINT to SIGTERM
    echo: bool = False  # print every node log line (errors and warnings always are)


def _stream_fps(options: GraphOptions) -> float:
    if options.fps is not None:
        return float(options.fps)
    return float(node_defaults("camera")["fps"])  # the YAML default


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
            # The capture node stays alive at the end of the clip, keeping its frames for a
            # reader that matches late; the runner notices the end in its log and stops it.
            exit_at_end=False,
        )
        self.specs = build_graph(graph, self.options)
        self.processes: list[NodeProcess] = []

    def command_lines(self) -> list[tuple[NodeSpec, list[str]]]:
        """Each node's argv; writes the parameter files they name into OUTPUT/parameters."""
        params_file = config_path(NODES_CONFIG)
        folder = self.output_dir / "parameters"
        return [(spec, command_line(spec, folder, params_file)) for spec in self.specs]

    def _log(self, text: str) -> None:
        print(f"[kp-motion graph] {text}", file=sys.stderr, flush=True)

    def _start_all(self, commands: list[tuple[NodeSpec, list[str]]], deadline: float) -> None:
        """Start every node but the capture node at once, wait for their ready lines, then
        start the capture node and wait for it. Nobody waits for a subscriber count; this only
        orders the start so that the graph stands before the first frame, and the QoS keeps
        what a later match needs (discovery can take seconds on a busy machine)."""
        logs = self.output_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        capture = [(spec, argv) for spec, argv in commands if spec.name in CAPTURE_NODES]
        rest = [(spec, argv) for spec, argv in commands if spec.name not in CAPTURE_NODES]
        for group in (rest, capture):
            started = [NodeProcess(spec, argv, logs / f"{spec.name}.log", self.settings.echo)
                       for spec, argv in group]
            self.processes += started
            self._wait_ready(started, deadline)

    def _wait_ready(self, waiting: list[NodeProcess], deadline: float) -> None:
        ready_by = min(deadline, time.monotonic() + self.settings.ready_timeout_s)
        waiting = list(waiting)
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

    def _wait_for_first_frame(self, sink: Sink, deadline: float) -> None:
        """Until the first frame has come through the graph to the recorder: a supervisor's
        observation, not a gate (the nodes never wait). Discovery of the capture node can take
        seconds on a busy machine; the frames it captured meanwhile are kept for the readers
        (kp_motion.ros.qos) and flow once they match."""
        if not sink.expects_output:
            return
        first_by = min(deadline, time.monotonic() + self.settings.ready_timeout_s)
        while not sink.has_output():
            if time.monotonic() > first_by:
                raise RunnerError("no frame came through the graph within "
                                  f"{self.settings.ready_timeout_s:g} s")
            self._check_alive(None)
            time.sleep(0.05)

    def _check_alive(self, camera: NodeProcess | None) -> None:
        for process in self.processes:
            if process is camera or process.alive():
                continue
            raise process.failure(f"exited with status {process.process.returncode}")

    def _wait_for_end(self, sink: Sink | None, deadline: float) -> None:
        """Until the clip has ended and the graph's outputs have been quiet for settle_s.

        The capture node stays alive at the end of the clip (the runner sets exit_at_end
        false), so its kept frames still reach a reader that matched it late; the run ends
        once the rendered stream (the captured one without a receiver) has gone quiet."""
        camera = next((p for p in self.processes if p.name in CAPTURE_NODES), None)
        clip_ended_at: float | None = None
        while True:
            time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RunnerError(f"the graph did not finish within {self.settings.timeout_s} s")
            if camera is not None and not camera.alive() and camera.process.returncode != 0:
                raise camera.failure(f"exited with status {camera.process.returncode}")
            self._check_alive(camera)
            ended = camera is None or camera.input_ended.is_set() or not camera.alive()
            if ended and clip_ended_at is None:
                clip_ended_at = time.monotonic()
                self._log("end of clip; waiting for the last frames")
            if clip_ended_at is None:
                continue
            since_end = time.monotonic() - clip_ended_at
            quiet = sink.quiet_for() if sink is not None else since_end
            if quiet >= self.settings.settle_s and since_end >= 0.5:
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
        os.environ.update(discovery.private_defaults(os.environ))  # before any DDS participant
        self._log(discovery.describe(os.environ))
        roles = {spec.role for spec in self.specs}
        names = {spec.name for spec in self.specs}
        sink = Sink(self.output_dir, _stream_fps(self.options), RECEIVER in roles,
                    "camera" in names, namespace=self.specs[0].namespace,
                    clip=is_recorded_input(self.options.input))
        result = RunResult(self.graph, self.output_dir)
        previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        interrupted = False
        try:
            self._start_all(commands, deadline)
            self._wait_for_first_frame(sink, deadline)
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


class TerminatedError(KeyboardInterrupt):
    """SIGTERM to the runner: stop like Ctrl-C (the nodes did not get the signal)."""


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise TerminatedError


def run_graph(graph: str, options: GraphOptions, output_dir: str | Path,
              settings: RunSettings | None = None) -> RunResult:
    return GraphRunner(graph, options, output_dir, settings).run()


def run_comparison(graph: str, options: GraphOptions, output_dir: str | Path,
                   settings: RunSettings | None = None) -> dict[str, Any]:
    """Run the graph with prediction (into output_dir) and with n=0 (output_dir/no_prediction)."""
    output_dir = Path(output_dir)
    with_prediction = run_graph(graph, options, output_dir, settings)
    # Every frame sent: n = 0 under the fixed schedule (a predictive policy would withhold).
    baseline_options = replace(options, n=0, policy=FIXED, summary_path=None)
    without = run_graph(graph, baseline_options, output_dir / "no_prediction", settings)
    return write_comparison(
        run_summary(with_prediction, options), run_summary(without, baseline_options), output_dir
    )


def run_policy_comparison(graph: str, options: GraphOptions, output_dir: str | Path,
                          settings: RunSettings | None = None) -> dict[str, Any]:
    """Run the graph with the fixed schedule (into output_dir) and with predictive
    transmission (output_dir/predictive; over the compact wire unless a wire was chosen)."""
    output_dir = Path(output_dir)
    fixed_options = replace(options, policy=FIXED)
    fixed = run_graph(graph, fixed_options, output_dir, settings)
    predictive_options = replace(options, policy=PREDICTIVE, wire=options.wire or COMPACT,
                                 summary_path=None)
    predictive = run_graph(graph, predictive_options, output_dir / "predictive", settings)
    return write_policy_comparison(run_summary(fixed, fixed_options),
                                   run_summary(predictive, predictive_options), output_dir)
