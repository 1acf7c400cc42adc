"""`kp-motion evaluate`: the method's evaluation protocol over a test set, written as a report.

Settings come from config/evaluate.yaml (or --config); the options below override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from kp_motion.names import BASELINE_FORECASTERS, LEARNED_FORECASTERS, MODES
from kp_motion.topics import TOPICS

COMMAND = "evaluate"
HELP = "evaluate rendering + forecasting (MSE, PSNR, SSIM, FVD, bandwidth, H.264) into a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="settings YAML (default: config/evaluate.yaml)")
    parser.add_argument(
        "--dataset",
        help="'synthetic' or the root of a first-order-model-layout dataset (root/test/...)",
    )
    parser.add_argument("--split", help="dataset split folder (default from the settings: test)")
    parser.add_argument("--checkpoint", help="FOMM checkpoint folder (or embedded model name)")
    parser.add_argument(
        "--forecasters",
        nargs="+",
        metavar="NAME_OR_FOLDER",
        help=f"forecaster checkpoint folders, embedded names ({', '.join(LEARNED_FORECASTERS)}) "
        f"or baselines ({', '.join(BASELINE_FORECASTERS)})",
    )
    parser.add_argument(
        "-k",
        "--block-sizes",
        nargs="+",
        type=int,
        metavar="K",
        help="block sizes k (k true frames, k predicted)",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES)
    parser.add_argument("--i3d-weights", help="Kinetics-400 RGB I3D state dict, for FVD")
    parser.add_argument("--max-videos", type=int, help="evaluate the first N videos only")
    parser.add_argument("--max-frames", type=int, help="frames read per video")
    parser.add_argument("--device", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--no-codec", action="store_true", help="skip the H.264 comparison")
    parser.add_argument(
        "--bag",
        help="evaluate the rendered images of a bag recorded from the node graph "
        "(`kp-motion bag record`) against --reference instead of the test set",
    )
    parser.add_argument("--reference", help="with --bag: the reference video of the rendering")
    parser.add_argument(
        "--bag-topic",
        default=None,
        help=f"with --bag: the sensor_msgs/Image topic to evaluate (default: {TOPICS['rendered']})",
    )
    parser.add_argument(
        "--transmission",
        nargs="+",
        metavar="POLICY",
        help="instead of the block protocol: render what the receiver shows under each "
        "transmission policy, fixed:M:N[:WIRE] or predictive:THRESHOLD:MAX_GAP[:WIRE] (WIRE "
        "float32 or compact), and score it against FOMM with every true keypoint, with the "
        "payload bytes/s (kp_motion.evaluation.transmission)",
    )
    parser.add_argument("--drop-probability", type=float, default=0.0,
                        help="with --transmission: share of network messages lost (seeded)")
    parser.add_argument("--drop-seed", type=int, default=0,
                        help="with --transmission: seed of the losses (video v: seed + v)")
    parser.add_argument(
        "-o",
        "--output",
        help="report folder (default: out/evaluation, or out/evaluation-bag with --bag)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _settings(args: argparse.Namespace):
    from kp_motion.evaluation.settings import check_settings, load_settings

    settings = load_settings(args.config)
    dataset_changes = {
        "source": args.dataset,
        "split": args.split,
        "max_videos": args.max_videos,
        "max_frames": args.max_frames,
    }
    dataset = dataclasses.replace(
        settings.dataset, **{k: v for k, v in dataset_changes.items() if v is not None}
    )
    changes = {
        "checkpoint": args.checkpoint,
        "forecasters": args.forecasters,
        "block_sizes": args.block_sizes,
        "modes": args.modes,
        "device": args.device,
    }
    settings = dataclasses.replace(
        settings, dataset=dataset, **{k: v for k, v in changes.items() if v is not None}
    )
    if args.i3d_weights is not None:
        settings.fvd = dataclasses.replace(settings.fvd, i3d_weights=args.i3d_weights)
    if args.no_codec:
        settings.codec = dataclasses.replace(settings.codec, enabled=False)
    check_settings(settings)
    return settings


def run(args: argparse.Namespace) -> int:
    from kp_motion.cli.main import CliError

    if args.bag is not None:
        return _run_bag(args)
    if args.reference is not None or args.bag_topic is not None:
        raise CliError("--reference and --bag-topic only apply with --bag")
    if args.transmission is not None:
        return _run_transmission(args)
    if args.drop_probability or args.drop_seed:
        raise CliError("--drop-probability and --drop-seed only apply with --transmission")
    from kp_motion.evaluation.pipeline import run_evaluation
    from kp_motion.evaluation.report import still_source_warnings

    settings = _settings(args)
    output = args.output or "out/evaluation"
    result, written = run_evaluation(settings, output, progress=not args.no_progress)
    print(f"evaluated {len(result.videos)} videos in {result.wall_time_s:.1f} s")
    print(f"report: {written['markdown']}")
    for warning in still_source_warnings(result):
        print(f"kp-motion evaluate: warning: {warning}", file=sys.stderr)
    return 0


def _run_bag(args: argparse.Namespace) -> int:
    """`--bag`: the metrics of a recorded rendering against its reference video."""
    from kp_motion.cli.main import CliError

    if args.reference is None:
        raise CliError("--bag needs --reference VIDEO (the video the rendering is compared with)")
    from kp_motion.evaluation.bag_input import (
        RENDERED_TOPIC,
        evaluate_bag,
        summary_line,
        write_bag_report,
    )
    from kp_motion.evaluation.pipeline import build_fvd_scorer
    from kp_motion.evaluation.settings import load_settings

    # Only the FVD settings and the device apply to a bag: the rendering is already done.
    settings = load_settings(args.config)
    if args.i3d_weights is not None:
        settings.fvd = dataclasses.replace(settings.fvd, i3d_weights=args.i3d_weights)
    if args.device is not None:
        settings.device = args.device
    fvd_scorer, fvd_status = build_fvd_scorer(settings)
    result = evaluate_bag(
        args.bag,
        args.reference,
        topic=args.bag_topic or RENDERED_TOPIC,
        fvd_scorer=fvd_scorer,
        fvd_status=fvd_status,
        device=str(settings.device),
    )
    written = write_bag_report(result, args.output or "out/evaluation-bag")
    print(f"{result.bag} ({result.alignment}): {summary_line(result)}")
    for name, values in result.by_origin.items():
        print(f"  {name}: {values['frames']} frames, MSE {values['mse']:.6g}, "
              f"SSIM {values['ssim']:.4f}")
    print(f"report: {written['markdown']}")
    return 0


def _run_transmission(args: argparse.Namespace) -> int:
    """`--transmission`: pixel-space rate-distortion of transmission policies."""
    from kp_motion.cli.main import CliError
    from kp_motion.evaluation.transmission import (
        evaluate_transmission,
        parse_policy,
        write_transmission_report,
    )

    if not 0.0 <= args.drop_probability < 1.0:
        raise CliError(f"--drop-probability must be in [0, 1), got {args.drop_probability}")
    for text in args.transmission:  # before loading any model
        try:
            parse_policy(text, "")
        except ValueError as error:
            raise CliError(str(error)) from None
    settings = _settings(args)
    from kp_motion.evaluation.pipeline import load_models, load_videos

    models = load_models(settings)
    videos = load_videos(settings, models.config.image_size, not args.no_progress)
    if not videos:
        raise CliError("no videos to evaluate")
    rows = evaluate_transmission(settings, videos, models, args.transmission,
                                 args.drop_probability, args.drop_seed, not args.no_progress)
    context = {"checkpoint": settings.checkpoint, "videos": [video.name for video in videos],
               "drop_probability": args.drop_probability, "drop_seed": args.drop_seed}
    written = write_transmission_report(rows, context, args.output or "out/evaluation-transmission")
    for row in rows:
        psnr = "exact" if row["psnr"] is None else f"{row['psnr']:.2f} dB"
        print(f"{row['policy']} {row['forecaster']}: {row['payload_bytes_per_second']:.0f} "
              f"B/s, PSNR {psnr}, SSIM {row['ssim']:.4f}, MSE {row['mse']:.3g}")
    print(f"report: {written['markdown']}")
    return 0
