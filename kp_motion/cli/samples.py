"""`kp-motion samples`: a PNG strip of sample reconstructions of a FOMM checkpoint; with --card
the model card's strip (no dataset frame shown: see kp_motion/evaluation/model_card.py), and with
--table a markdown table of reconstruction vs still source over every frame of the split."""

from __future__ import annotations

import argparse

from kp_motion.names import DEFAULT_MODEL, SYNTHETIC_MODEL

COMMAND = "samples"
HELP = "write a PNG strip of sample reconstructions (driving row, reconstruction row per video)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset root in the first-order-model layout")
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.add_argument(
        "--checkpoint", default=DEFAULT_MODEL,
        help=f"project checkpoint folder or embedded model name (default: {DEFAULT_MODEL}; "
        f"{SYNTHETIC_MODEL} for the synthetic dataset)",
    )  # fmt: skip
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--videos", type=int, default=4, help="videos to show (default: 4)")
    parser.add_argument("--frames", type=int, default=8, help="frames per row (default: 8)")
    parser.add_argument("--max-frames", type=int, help="read only the first N frames")
    parser.add_argument("--zoom", type=int, default=2, help="pixel repeat factor (default: 2)")
    parser.add_argument(
        "--keypoints", action="store_true",
        help="draw each driving frame's detected keypoints on it (one colour per keypoint)",
    )  # fmt: skip
    parser.add_argument(
        "--card", action="store_true",
        help="the model card's strip of the split's first two clips: their keypoints (no frame "
             "shown), reconstructions with PSNR, and transfers driven by the first clip",
    )  # fmt: skip
    parser.add_argument(
        "--card-source", default="astronaut",
        help="with --card, a further transfer source that may be shown: 'astronaut' "
             "(scikit-image's public-domain picture, default), an image path, or 'none'",
    )  # fmt: skip
    parser.add_argument(
        "--table", metavar="FILE.md",
        help="also write (and print) a markdown table of reconstruction vs still source: PSNR, "
             "SSIM, L1 over every frame but the first of every video of the split",
    )  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kp_motion.data import video_io
    from kp_motion.data.datasets import VideoDataset
    from kp_motion.evaluation.model_card import ASTRONAUT, SampleModel, held_out_table
    from kp_motion.models.checkpoint import load_model, resolve_checkpoint, resolve_device

    if min(args.videos, args.frames, args.zoom) < 1:
        raise ValueError("--videos, --frames and --zoom must be >= 1")
    if not args.output.lower().endswith(".png"):
        raise ValueError(f"--output must be a .png file, got {args.output}")
    if args.table is not None and not args.table.lower().endswith(".md"):
        raise ValueError(f"--table must be a .md file, got {args.table}")
    if args.card and args.card_source not in (ASTRONAUT, "none"):
        video_io.read_image(args.card_source)  # a bad source image fails before the model loads
    device = resolve_device(args.device)
    config, kp_detector, generator = load_model(resolve_checkpoint(args.checkpoint), device)
    dataset = VideoDataset(
        args.dataset, args.split, size=config.image_size[0], max_frames=args.max_frames
    )
    model = SampleModel.build(config, kp_detector, generator)
    if args.card:
        _card_strip(args, model, dataset)
    else:
        _reconstruction_strip(args, model.absolute, dataset)
    if args.table:
        table = held_out_table(model.absolute, dataset)
        Path(args.table).write_text(table)
        print(f"kp-motion samples: {args.table}\n{table}", end="")
    return 0


def _reconstruction_strip(args: argparse.Namespace, animator, dataset) -> None:
    """Rows of driving frames and reconstructions, with the motion diagnostics printed."""
    from kp_motion.data.synthetic import video_kinds
    from kp_motion.training.samples import (
        group_videos,
        mean_diagnostics,
        video_diagnostics,
        write_sample_strip,
    )

    errors = write_sample_strip(
        animator, dataset, args.output, args.videos, args.frames, args.zoom, args.keypoints
    )
    shown = ", ".join(f"{error:.4f}" for error in errors)
    print(f"kp-motion samples: {args.output} ({len(errors)} videos, mean L1 per video: {shown})")
    per_video = video_diagnostics(animator, dataset, args.videos)
    overall = _diagnostics_text(mean_diagnostics(per_video))
    print(f"diagnostics (mean L1 over those videos): {overall}")
    # A synthetic dataset says which kind each video is: the error per kind of motion.
    for kind, videos in group_videos(per_video, video_kinds(args.dataset)).items():
        print(f"  {kind} ({len(videos)} videos): {_diagnostics_text(mean_diagnostics(videos))}")


def _card_strip(args: argparse.Namespace, model, dataset) -> None:
    """The model card's strip (kp_motion/evaluation/model_card.py), zoomed as asked."""
    from kp_motion.data import video_io
    from kp_motion.evaluation.model_card import sample_strip, shown_source

    extra = shown_source(args.card_source, model.size)
    strip = sample_strip(model, dataset, args.frames, extra)
    video_io.write_image(args.output, strip.repeat(args.zoom, 0).repeat(args.zoom, 1))
    print(f"kp-motion samples: {args.output} (model card strip of the {args.split} split)")


def _diagnostics_text(found: dict[str, float]) -> str:
    return (
        f"rendered {found['rendered']:.4f}, still source {found['still']:.4f}, source warped by "
        f"the flow {found['warped']:.4f}, frames rendered from themselves {found['self']:.4f}; "
        f"keypoint heatmap spread {found['heatmap_spread']:.3f}, "
        f"keypoints in use {found['keypoints_in_use']:.1f}"
    )
