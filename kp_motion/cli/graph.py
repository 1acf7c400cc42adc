"""`kp-motion graph reconstruction|transfer`: run a node graph as separate ROS 2 processes.

The graph is kp_motion.ros.graph's description (the one the launch files use); its options
are the table kp_motion.graph_config.options, and those left out take their values
from config/nodes.yaml.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

COMMAND = "graph"
HELP = "run the reconstruction or transfer node graph over DDS (separate processes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kp_motion.graph_config.options import add_cli_arguments
    from kp_motion.names import MODES

    parser.add_argument("graph", choices=MODES, help="which graph to run")
    add_cli_arguments(parser)  # the graph options: one table for CLI, launch files and nodes
    parser.add_argument("--output", default="out/graph",
                        help="folder for videos, logs and reports (default out/graph)")
    parser.add_argument("--compare-without-prediction", action="store_true",
                        help="also run with n=0 and write a comparison report")
    parser.add_argument("--compare-policies", action="store_true",
                        help="run with the fixed schedule, then with predictive transmission "
                        "(over the compact wire unless --wire is given), and write both side "
                        "by side")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds of quiet after the clip before stopping (default 3)")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="print every node log line")
    parser.add_argument("--print-commands", action="store_true",
                        help="print the node command lines (writing the parameter files "
                        "they name into OUTPUT/parameters) and exit")


def require_ros() -> None:
    """rclpy and the built Keypoint60 message, or one line saying how to get them."""
    from kp_motion.cli.main import CliError

    try:
        import rclpy  # noqa: F401

        from kp_motion.msg import Keypoint60  # noqa: F401
    except ImportError as error:
        raise CliError(f"needs ROS 2 (rclpy) and the built messages ({error}); run "
                       "scripts/setup.sh, then source scripts/env.sh") from None


def _file_fps(source: str | None) -> float | None:
    """The frame rate of a video file input (folders and devices have none of their own)."""
    from pathlib import Path

    if not source or source.isdigit() or not Path(source).is_file():
        return None
    from kp_motion.data.video_io import video_fps

    return float(video_fps(source))


def run(args: argparse.Namespace) -> int:
    from kp_motion.cli.main import CliError
    from kp_motion.graph_config.options import options_from_namespace
    from kp_motion.ros import runner
    from kp_motion.ros.graph import check_options, missing_inputs

    if args.compare_without_prediction and args.compare_policies:
        raise CliError("choose one of --compare-without-prediction and --compare-policies")
    options = options_from_namespace(args)
    if options.fps is None:  # a video file plays at its own rate unless told otherwise
        options.fps = _file_fps(options.input)
    check_options(args.graph, options)
    problems = missing_inputs(args.graph, options)
    if problems and not args.print_commands:
        raise CliError("; ".join(problems))
    settings = runner.RunSettings(settle_s=args.settle, timeout_s=args.timeout,
                                  echo=args.verbose)
    graph_runner = runner.GraphRunner(args.graph, options, args.output, settings)
    if args.print_commands:
        for spec, argv in graph_runner.command_lines():
            print(f"# {spec.name} ({spec.role})")
            print(shlex.join(argv))
        return 0
    require_ros()
    try:
        if args.compare_without_prediction:
            report = runner.run_comparison(args.graph, options, args.output, settings)
            summary = report["with_prediction"]
        elif args.compare_policies:
            summary = runner.run_policy_comparison(args.graph, options, args.output,
                                                   settings)["predictive"]
        else:
            summary = runner.run_summary(graph_runner.run(), graph_runner.options)
    except runner.RunnerError as error:
        raise CliError(str(error)) from None
    print(json.dumps({key: summary[key] for key in (
        "frames_rendered", "frames_detected", "frames_predicted", "frames_concealed",
        "network_bytes_per_second")}))
    print(f"outputs in {args.output} (report.md)", file=sys.stderr)
    failed = {name: code for name, code in summary["exit_codes"].items() if code not in (0, None)}
    if failed:
        print(f"kp-motion graph: nodes exited with errors: {failed}", file=sys.stderr)
        return 1
    return 0
