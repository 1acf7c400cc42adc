"""`kp-motion head-motion`: a driving clip of a face made from one still image.

The model's keypoints of the image are moved by a scripted head motion (nod, turn, tilt;
kp_motion.models.head_motion) and the generator renders the image with them, frame by frame.
The demo drives the node graph with such a clip, so that it shows a face from an image the
project may distribute, not frames of a recording.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp_motion.names import DEFAULT_MODEL, HEAD_MOTIONS

COMMAND = "head-motion"
HELP = "render a driving clip from one face image with a scripted head motion (nod, turn, tilt)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="image of a face, roughly centred")
    parser.add_argument(
        "-o", "--output", required=True, help="video to write: .mp4, .gif or a PNG frame folder"
    )
    parser.add_argument(
        "--motions", nargs="+", default=list(HEAD_MOTIONS), choices=HEAD_MOTIONS,
        help=f"the motions, in order, one full swing each (default: {' '.join(HEAD_MOTIONS)})",
    )  # fmt: skip
    parser.add_argument(
        "--frames-per-motion", type=int, default=40, help="frames of each swing (default: 40)"
    )
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate (default: 25)")
    parser.add_argument(
        "--checkpoint",
        help=f"project checkpoint folder or embedded model name (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto, ...")


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad options and unreadable paths before any model is loaded."""
    from kp_motion.data import video_io

    if args.frames_per_motion < 2:
        raise ValueError(f"--frames-per-motion must be >= 2, got {args.frames_per_motion}")
    if args.fps <= 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    if not Path(args.source).is_file():
        raise FileNotFoundError(f"--source not found: {args.source}")
    suffix = Path(args.output).suffix.lower()
    if suffix not in (*video_io.H264_SUFFIXES, *video_io.GIF_SUFFIXES, ""):
        raise ValueError(f"--output {args.output}: write .mp4, .gif or a folder without suffix")
    video_io.check_output(args.output)


def run(args: argparse.Namespace) -> int:
    import torch

    from kp_motion.data import video_io
    from kp_motion.models.animator import Animator
    from kp_motion.models.checkpoint import load_model, resolve_checkpoint, resolve_device
    from kp_motion.models.head_motion import move_keypoints, scripted_poses

    check_arguments(args)
    poses = scripted_poses(args.motions, args.frames_per_motion)
    image = video_io.read_image(args.source)  # an unreadable image fails before the model loads
    config, kp_detector, generator = load_model(
        resolve_checkpoint(args.checkpoint), resolve_device(args.device)
    )
    animator = Animator(kp_detector, generator, config, mode="absolute")
    animator.set_source(video_io.to_tensor(video_io.resize_frame(image, config.image_size)))
    driving = move_keypoints(animator.kp_source, poses)
    with torch.no_grad(), video_io.VideoWriter(args.output, args.fps) as writer:
        for index in range(len(poses)):
            frame_kp = {name: kp[index : index + 1] for name, kp in driving.items()}
            writer.write(video_io.from_tensor(animator.render(frame_kp)["prediction"])[0])
    print(
        f"kp-motion head-motion: {len(poses)} frames ({config.name}, "
        f"{' '.join(args.motions)}) -> {args.output}"
    )
    return 0
