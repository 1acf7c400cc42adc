"""`kp-motion bandwidth`: rate-distortion of the keypoint link on a keypoint set.

    kp-motion bandwidth --keypoints FILE.npz --fps 25 --json OUT.json [--report FOLDER]

Simulates sender and receiver over every clip of FILE.npz (shared layout) with the stream code
the nodes use (kp_motion.evaluation.rate_distortion): the fixed schedule M = N = 1..--max-m for
each forecaster, and predictive transmission for each threshold and max gap, each over the
float32 Keypoint60 and the compact wire. OUT.json:

    {"every_frame": {"payload_bytes_per_second": B0},
     "points": [{"policy": "fixed"|"predictive", "wire": "float32"|"compact",
                 "forecaster": NAME, "m": .., "n": .., "threshold": .., "max_gap": ..,
                 "payload_bytes_per_second": B, "wire_bytes_per_second": W,
                 "mse_all": E, "mse_predicted": Ep}, ...]}

m and n are null for predictive points, threshold and max_gap null for fixed ones. --report
writes the rate-distortion table and plot (rate-distortion.md, rate-distortion.png) there.
--drop-probability P loses that share of the messages on the simulated network (seeded);
with --retransmit-delay D the predictive policy's lost messages arrive D frames late instead.
"""

from __future__ import annotations

import argparse

from kp_motion.cli.main import CliError

COMMAND = "bandwidth"
HELP = "rate-distortion of fixed and predictive keypoint transmission on a keypoint file (.npz)"

DEFAULT_FORECASTERS = ("hold-last", "vox-256/direct-linear")
DEFAULT_THRESHOLDS = (5e-4, 1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3, 8e-3, 1e-2, 1.5e-2)
DEFAULT_MAX_GAPS = (25, 50)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keypoints", required=True, metavar="FILE.npz", help="keypoint set (shared layout)"
    )
    parser.add_argument("--fps", type=float, default=25.0, help="stream frame rate (default 25)")
    parser.add_argument("--json", metavar="OUT.json", help="write the points here")
    parser.add_argument("--report", metavar="FOLDER", help="write the table and plot here")
    parser.add_argument(
        "--forecasters", nargs="+", default=list(DEFAULT_FORECASTERS), metavar="NAME",
        help=f"receiver forecasters (default: {' '.join(DEFAULT_FORECASTERS)})",
    )
    parser.add_argument(
        "--wires", nargs="+", default=None, metavar="WIRE", help="float32 and/or compact (both)"
    )
    parser.add_argument(
        "--max-m", type=int, default=12, help="fixed schedule M = N = 1..MAX_M (default 12)"
    )
    parser.add_argument(
        "--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS),
        help="predictive thresholds: per-frame all-60 keypoint MSE",
    )
    parser.add_argument(
        "--max-gaps", type=int, nargs="+", default=list(DEFAULT_MAX_GAPS),
        help=f"predictive refresh / max gap in frames (default: {DEFAULT_MAX_GAPS})",
    )
    parser.add_argument(
        "--drop-probability", type=float, default=0.0,
        help="share of messages lost on the simulated network (default 0: lossless)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated losses")
    parser.add_argument(
        "--retransmit-delay", type=int, metavar="FRAMES",
        help="predictive policy over a reliable link: a lost message arrives FRAMES late "
        "(default: best effort, lost messages are gone)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_numbers(args: argparse.Namespace) -> None:
    if not args.fps > 0:
        raise CliError(f"--fps must be positive, got {args.fps}")
    if args.max_m < 0:
        raise CliError(f"--max-m must be >= 0, got {args.max_m}")
    if any(not threshold >= 0 for threshold in args.thresholds):
        raise CliError(f"--thresholds must be >= 0, got {args.thresholds}")
    if any(gap < 1 for gap in args.max_gaps):
        raise CliError(f"--max-gaps must be >= 1 frame, got {args.max_gaps}")
    if not 0 <= args.drop_probability < 1:
        raise CliError(f"--drop-probability must be in [0, 1), got {args.drop_probability}")
    if args.retransmit_delay is not None and args.retransmit_delay < 1:
        raise CliError(f"--retransmit-delay must be >= 1 frame, got {args.retransmit_delay}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from kp_motion.data.keypoint_sets import load_keypoint_set
    from kp_motion.evaluation.rate_distortion import evaluate_setting, every_frame, point, sweep
    from kp_motion.evaluation.rate_distortion_report import (
        network_conditions,
        write_json,
        write_report,
    )
    from kp_motion.forecasting.named import load_named_forecaster
    from kp_motion.stream.wire import WIRES, payload_bytes

    _check_numbers(args)
    wires = args.wires or list(WIRES)
    unknown = sorted(set(wires) - set(WIRES))
    if unknown:
        raise CliError(f"unknown wire {', '.join(unknown)} (expected {' or '.join(WIRES)})")
    if args.report and Path(args.report).is_file():
        raise CliError(f"--report {args.report} is a file, expected a folder")
    if args.json and Path(args.json).is_dir():
        raise CliError(f"--json {args.json} is a folder, expected a file name")
    # Everything is read and checked before any simulation: a bad input fails in one line.
    keypoint_set = load_keypoint_set(args.keypoints)
    clips = [clip.values for clip in keypoint_set.clips]
    forecasters = {name: load_named_forecaster(name) for name in dict.fromkeys(args.forecasters)}
    payload = {wire: payload_bytes(wire) for wire in wires}
    settings = sweep(list(forecasters), wires, args.max_m, args.thresholds, args.max_gaps)

    points = []
    with tqdm(total=len(settings), desc="bandwidth", unit="point",
              disable=args.no_progress) as bar:
        for setting in settings:
            tally = evaluate_setting(setting, forecasters[setting.forecaster], clips,
                                     args.drop_probability, args.seed, args.retransmit_delay)
            points.append(point(setting, tally, args.fps, payload))
            bar.update()
    result = {"every_frame": every_frame(args.fps), "points": points}
    loss = network_conditions(args.drop_probability, args.retransmit_delay)
    print(f"{args.keypoints}: {len(clips)} clips, {keypoint_set.frames} frames at {args.fps} fps, "
          f"{loss}; "
          f"every frame as Keypoint60: {result['every_frame']['payload_bytes_per_second']:.0f} "
          f"B/s; {len(points)} points")
    if args.json:
        write_json(args.json, result)
        print(f"points -> {args.json}")
    if args.report:
        written = write_report(args.report, result, args.keypoints, keypoint_set.frames, loss)
        print(f"report -> {', '.join(map(str, written))}")
    return 0
