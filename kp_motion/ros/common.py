"""What every kp_motion node shares: parameters from config/nodes.yaml, start-up and exit.

(The QoS of every topic is kp_motion.ros.qos.)

Parameters: each node declares the parameters kp_motion.graph_config.parameters lists for it
(type, description, range or choices), with their defaults from config/nodes.yaml, the one
source of default values (a parameter missing from the YAML, or a YAML key no node declares, is
an error, so code and file cannot drift apart).

Start-up and exit: `run_node` initialises rclpy without its signal handlers (SIGINT and SIGTERM
only ask the spin loop to stop), builds the node, spins until the node says it is finished or
the process is asked to stop, then, in this one thread, reports, destroys the node and shuts
rclpy down. A problem found at start-up (missing file or device, bad parameter) is logged as
one line and the process exits with status 2; the core's own errors (a missing checkpoint,
an unusable device, an unreadable input) become that line through `startup_errors`.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions

from kp_motion.graph_config.parameters import NODE_PARAMETERS, Param, node_parameter_defaults
from kp_motion.ros.graph import READY_MARKER

STARTUP_ERROR_STATUS = 2
MATCH_GRACE_S = 0.3

class StartupError(Exception):
    """A node cannot start (bad parameter, missing file or device); one readable line."""


@contextlib.contextmanager
def startup_errors() -> Iterator[None]:
    """Turn the core's one-line errors (missing files, bad values, unusable devices) raised
    while a node builds itself into a StartupError: logged as one line, exit status 2."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        raise StartupError(str(error)) from None


def descriptor(param: Param) -> ParameterDescriptor:
    """The ROS descriptor of a parameter: its description, range and choices."""
    result = ParameterDescriptor(name=param.name, description=param.description)
    if param.kind is int and param.minimum is not None:
        result.integer_range = [
            IntegerRange(from_value=int(param.minimum), to_value=int(param.maximum), step=0)
        ]
    elif param.kind is float and param.minimum is not None:
        result.floating_point_range = [
            FloatingPointRange(from_value=float(param.minimum), to_value=float(param.maximum),
                               step=0.0)
        ]
    if param.choices:
        result.additional_constraints = "one of: " + ", ".join(param.choices)
    return result


class KpMotionNode(Node):
    """rclpy Node with YAML-backed parameters, per-reason rejection logs and a finish flag."""

    # The node's entry in NODE_PARAMETERS and its section of config/nodes.yaml (independent
    # of the node name, which a launch file may remap).
    config_key: str = ""

    def __init__(self, node_name: str | None = None) -> None:
        super().__init__(node_name or self.config_key)
        self.finished = False
        self.exit_code = 0
        self.rejected: dict[str, int] = {}
        self._last_rejection_log: dict[str, float] = {}
        self.settings = self._declare_parameters()

    def _declare_parameters(self) -> dict[str, Any]:
        defaults = node_parameter_defaults(self.config_key)
        values = {}
        for param in NODE_PARAMETERS[self.config_key]:
            value = self.declare_parameter(param.name, defaults[param.name],
                                           descriptor(param)).value
            with startup_errors():
                param.check(value)
            if param.deprecated and value:
                self.get_logger().warning(f"parameter {param.name}={value!r} is deprecated: "
                                          f"{param.deprecated}")
            values[param.name] = value
        return values

    def announce_ready(self, detail: str = "") -> None:
        """Log READY_MARKER from the executor, once the node is constructed and spinning."""
        text = f"{READY_MARKER}{': ' + detail if detail else ''}"

        def announce() -> None:
            timer.cancel()
            self.destroy_timer(timer)
            self.get_logger().info(text)

        timer = self.create_timer(0.0, announce)

    def reject(self, reason: str, detail: str) -> None:
        """Count a malformed input; log the first of each reason, then at most every 5 s."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last_rejection_log.get(reason, -1e9) >= 5.0:
            self._last_rejection_log[reason] = now
            self.get_logger().warning(
                f"skipped input ({reason}, {self.rejected[reason]} so far): {detail}"
            )

    def when_subscribed(self, publisher: Publisher, count: int, action: Callable[[], None]) -> None:
        """Run `action` once `publisher` has at least `count` matched subscriptions (at once
        for 0, the default: only the deprecated wait_for_subscribers parameters set a count)."""
        if count <= 0:
            action()
            return
        started = time.monotonic()
        last_log = [started]
        matched_at: list[float] = []

        def poll() -> None:
            if not matched_at and publisher.get_subscription_count() >= count:
                matched_at.append(time.monotonic())
            # Discovery completes on the subscriber's side a moment after ours; a reliable
            # sample sent before that is repaired only after a heartbeat period (seconds).
            if matched_at and time.monotonic() - matched_at[0] >= MATCH_GRACE_S:
                timer.cancel()
                self.destroy_timer(timer)
                action()
            elif not matched_at and time.monotonic() - last_log[0] >= 5.0:
                last_log[0] = time.monotonic()
                self.get_logger().info(
                    f"waiting for {count} subscriber(s) on {publisher.topic_name} "
                    f"({time.monotonic() - started:.0f} s)"
                )

        timer = self.create_timer(0.05, poll)

    def log_final(self, text: str) -> None:
        """Log at exit: after a signal the context is shut down and rosout is gone, so the
        line goes straight to stderr in the usual format."""
        if self.context.ok():
            self.get_logger().info(text)
        else:
            print(f"[INFO] [{time.time():.9f}] [{self.get_name()}]: {text}", file=sys.stderr,
                  flush=True)

    def on_exit(self) -> None:
        """Final logs and files of a node that started; called once, from destroy_node."""

    def destroy_node(self) -> None:
        # rclpy also destroys the nodes of a context it shuts down, including one whose
        # __init__ failed half-way: only a fully built node has anything to report.
        if getattr(self, "constructed", False):
            self.constructed = False
            self.on_exit()
        super().destroy_node()

    def finish(self, exit_code: int = 0) -> None:
        """Ask run_node to stop spinning and exit with `exit_code`."""
        self.finished = True
        self.exit_code = exit_code


def configure_torch(threads: int) -> None:
    """Limit torch to `threads` CPU threads (the graph's nodes share the machine's cores)."""
    import torch

    torch.set_num_threads(threads)
    # Only allowed before the first parallel work; the default then stays.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def spin_once(executor, context) -> bool:
    """One executor step; False once the context is shut down (a signal), True otherwise.

    A signal can shut the context down between the ok() check and the executor's wait-set
    creation, which then raises rclpy's RCLError; that is a normal stop, not a crash.
    """
    if not context.ok():
        return False
    try:
        executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        return False
    except Exception:
        if context.ok():
            raise
        return False
    return True


def spin_until_finished(node: KpMotionNode, stop: threading.Event) -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not node.finished and not stop.is_set() and spin_once(executor, node.context):
            pass
    finally:
        executor.remove_node(node)
        executor.shutdown()


def run_node(node_class: type[KpMotionNode], args: list[str] | None = None) -> int:
    """Entry point of a node process; returns its exit status."""
    faulthandler.enable()  # a native crash leaves a Python traceback in the node's log
    # SIGINT and SIGTERM only ask the spin loop to stop; this thread then reports, destroys the
    # node and shuts rclpy down, in that order. rclpy's own handlers would shut the context down
    # from their own thread, racing those steps (CI saw SIGSEGVs in rosout logging and in
    # publisher destruction).
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stop.set())
    try:
        node = node_class()
        node.constructed = True
    except (KeyboardInterrupt, ExternalShutdownException):
        rclpy.try_shutdown()
        return 0
    except (StartupError, ParameterException, ValueError, FileNotFoundError) as error:
        rclpy.logging.get_logger(node_class.config_key).error(f"cannot start: {error}")
        rclpy.try_shutdown()
        return STARTUP_ERROR_STATUS
    try:
        spin_until_finished(node, stop)
        return node.exit_code
    except KeyboardInterrupt:
        return 0
    finally:
        # A terminal's Ctrl-C reaches every process of the group and a runner may send its
        # own SIGINT too: a second one must not cut the clean-up (and the summary) short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        node.destroy_node()
        rclpy.try_shutdown()


def exit_process(status: int) -> NoReturn:
    """End a node process with `status` after run_node has returned, without the
    interpreter's finalisation.

    By then the node has reported, closed its outputs and shut rclpy down; only Python's own
    buffers still need flushing. The exit crashes seen in CI came from rclpy's signal thread
    (fixed in run_node); this keeps a finished node from depending on the teardown of torch's
    and rclpy's native state as well.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
