"""Node processes of a running graph: start, log, watch for the ready line, stop.

ROS-free: a node is an OS process here; its log goes to a file and its last lines are kept
for the error a failing node makes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from kp_motion.ros.graph import END_OF_CLIP_MARKER, READY_MARKER, NodeSpec

LOG_TAIL_LINES = 30


class RunnerError(Exception):
    """The graph could not be run to the end (a node died, a timeout)."""


class NodeProcess:
    """A running node: its process, its log file, its ready flag and its last log lines."""

    def __init__(self, spec: NodeSpec, argv: list[str], log_path: Path, echo: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.argv = argv
        self.ready = threading.Event()
        self.input_ended = threading.Event()  # a capture node logged the end of its clip
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
            if END_OF_CLIP_MARKER in line:
                self.input_ended.set()
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


def _default_sigint() -> None:
    """In a node's process before exec: the runner stops nodes with SIGINT, so a node must not
    inherit an ignored SIGINT (background jobs of a non-interactive shell, nohup, some CI
    runners start with SIGINT ignored, and an ignored signal survives exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
