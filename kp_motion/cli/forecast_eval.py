"""`kp-motion forecast-eval`: closed-loop scores of a forecaster set on a keypoint set.

    kp-motion forecast-eval --keypoints FILE.npz --k 6 12 --json OUT.json [--forecasters SET]

FILE.npz holds clips in the shared layout (names, lengths, value, jacobian). Along each clip:
observe k true frames, predict k, advance by 2k, state carried; no forecaster ever sees a frame
it predicts (kp_motion.forecasting.closed_loop). SET is a shipped set's name (default
"vox-256", the set for keypoints of the FOMM authors' vox-256 detector) or a folder of
checkpoints. OUT.json:

    {"k": {"6": {MODEL: {"all": mse, "positions": mse, "jacobians": mse, "frames": n}, ...},
           "12": {...}},
     "oracle": {"6": {"name": ..., "all": ..., ...}, ...}}

MODEL covers every model of the set, hold-last and constant-velocity (and the VRNN's mean of
sampled rollouts, "vrnn-sample-mean", unless --samples 0). The oracle (previous true frame) sees
the frames it predicts, so it is kept apart from the models.
"""

from __future__ import annotations

import argparse

from kp_motion.cli.main import CliError

COMMAND = "forecast-eval"
HELP = "closed-loop forecast errors of a forecaster set on a keypoint file (.npz)"

DEFAULT_SET = "vox-256"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keypoints", required=True, metavar="FILE.npz", help="keypoint set (shared layout)"
    )
    parser.add_argument(
        "--k", type=int, nargs="+", default=[6, 12], help="block sizes (default: 6 12)"
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the scores here")
    parser.add_argument(
        "--forecasters",
        default=DEFAULT_SET,
        metavar="SET",
        help=f"shipped set name or folder of checkpoints (default: {DEFAULT_SET})",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=20,
        help="sampled VRNN rollouts averaged for vrnn-sample-mean (0: skip it; default 20)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled rollouts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_block_sizes(block_sizes: list[int], longest: int, source: str) -> None:
    if any(k < 1 for k in block_sizes):
        raise CliError(f"--k values must be >= 1, got {block_sizes}")
    too_long = [k for k in block_sizes if 2 * k > longest]
    if too_long:
        raise CliError(
            f"{source}: no clip has the 2k frames of one block for k = "
            f"{', '.join(map(str, too_long))} (longest clip: {longest} frames)"
        )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from kp_motion.data.keypoint_sets import load_keypoint_set
    from kp_motion.forecasting.checkpoint import forecaster_set_members
    from kp_motion.forecasting.closed_loop import format_scores, score_forecasters
    from kp_motion.forecasting.crossval import evaluation_forecasters
    from kp_motion.forecasting.report import contract_json, write_json

    if args.samples < 0:
        raise CliError(f"--samples must be >= 0, got {args.samples}")
    block_sizes = list(dict.fromkeys(args.k))
    if args.json and Path(args.json).is_dir():
        raise CliError(f"--json {args.json} is a folder, expected a file name")
    # Everything is read and checked before any forecasting: a bad input fails in one line.
    keypoint_set = load_keypoint_set(args.keypoints)
    runs = [run for clip in keypoint_set.clips for run in clip.segments()]
    _check_block_sizes(block_sizes, max(len(run) for run in runs), args.keypoints)
    forecasters = evaluation_forecasters(forecaster_set_members(args.forecasters), args.samples)

    torch.manual_seed(args.seed)
    total = len(block_sizes) * len(forecasters) * len(runs)
    with tqdm(total=total, desc="forecast-eval", unit="clip", disable=args.no_progress) as bar:
        sums = score_forecasters(forecasters, runs, block_sizes, on_run_done=bar.update)
    scores = {k: {name: s.score() for name, s in per_k.items()} for k, per_k in sums.items()}
    print(
        f"{args.keypoints}: {len(keypoint_set.clips)} clips, {keypoint_set.frames} frames; "
        f"forecasters {args.forecasters}; closed loop (observe k, predict k, advance 2k)"
    )
    print(format_scores(scores))
    if args.json:
        write_json(args.json, contract_json(scores))
        print(f"scores -> {args.json}")
    return 0
