"""How much a linear forecaster with a weight between every pair
of values, and the shipped direct-linear model, gain over hold-last on a keypoint set when the
person is known (in-sample, leave-one-clip-out) and when not (leave-one-identity-out); see
headroom.py beside this file.

    python -m research.forecast_headroom --keypoints FILE.npz [--k 6 12] [--ridge 0.1] \
        [--direct-linear FOLDER] [--json OUT.json]

About 10 s on the 33 shared clips (2 CPU cores): 80 least-squares fits.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "what knowing the person is worth to a linear forecaster (a measurement)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keypoints", required=True, metavar="FILE.npz", help="keypoint set (shared layout)"
    )
    parser.add_argument(
        "--k", type=int, nargs="+", default=[6, 12], help="block sizes, at most 12 (default: 6 12)"
    )
    parser.add_argument(
        "--ridge", type=float, default=0.1, help="ridge penalty per sample (default: 0.1)"
    )
    parser.add_argument(
        "--direct-linear",
        metavar="FOLDER",
        help="direct-linear checkpoint whose settings (features, ridge) are refit "
        "(default: the vox-256 set's)",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the scores here")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kp_motion.data.keypoint_sets import load_keypoint_set
    from kp_motion.forecasting.checkpoint import forecaster_set_members, load_forecaster
    from kp_motion.forecasting.report import write_json
    from kp_motion.forecasting.settings import LinearSettings
    from research.forecast_headroom.headroom import (
        HORIZON,
        measure_direct_linear,
        measure_headroom,
    )

    block_sizes = list(dict.fromkeys(args.k))
    if any(not 1 <= k <= HORIZON for k in block_sizes):
        raise ValueError(f"--k values must be in 1..{HORIZON}, got {args.k}")
    if args.ridge <= 0:
        raise ValueError(f"--ridge must be > 0, got {args.ridge}")
    if args.json and Path(args.json).is_dir():
        raise ValueError(f"--json {args.json} is a folder, expected a file name")
    direct_linear = args.direct_linear or forecaster_set_members("vox-256")["direct-linear"]
    linear_settings = getattr(load_forecaster(direct_linear), "settings", None)
    if not isinstance(linear_settings, LinearSettings):
        raise ValueError(f"{direct_linear}: not a direct-linear checkpoint")
    keypoint_set = load_keypoint_set(args.keypoints)
    if len(keypoint_set.identities()) < 2:
        raise ValueError(f"{args.keypoints}: leave-one-identity-out needs >= 2 identities")

    found = measure_headroom(keypoint_set, block_sizes, ridge=args.ridge)
    reference = found.scores["hold-last"]
    print(f"{args.keypoints}: cross-value linear model, ridge {found.ridge}, lags {found.lags}")
    print_scores(found.scores, reference, block_sizes)
    direct = measure_direct_linear(keypoint_set, block_sizes, linear_settings)
    print(f"direct-linear with the settings of {direct_linear}")
    print_scores(direct, reference, block_sizes)
    if args.json:
        document = {"ridge": found.ridge, "lags": found.lags, "scores": _by_k(found.scores),
                    "direct_linear": _by_k(direct)}  # fmt: skip
        write_json(args.json, document)
        print(f"scores -> {args.json}")
    return 0


def _by_k(scores: dict) -> dict:
    return {
        setting: {str(k): score for k, score in per_k.items()} for setting, per_k in scores.items()
    }


def print_scores(scores: dict, reference: dict, block_sizes: list[int]) -> None:
    print(f"{'k':>3}  {'setting':<24}  {'all 60':>10}  {'jacobians':>10}  {'vs hold-last':>12}")
    for k in block_sizes:
        for setting, per_k in scores.items():
            score = per_k[k]
            change = 100 * (score["all"] / reference[k]["all"] - 1)
            print(
                f"{k:>3}  {setting:<24}  {score['all']:>10.3e}  {score['jacobians']:>10.3e}  "
                f"{change:>+11.1f} %"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.forecast_headroom",
                                     description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"forecast_headroom: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
