"""`kp-motion animate`: animate a source image with the motion of a driving video.

transfer (default): the source image moves like the driving video, with relative motion (the
driving keypoints' displacement since its first frame, applied to the source's keypoints) or
absolute motion (the driving keypoints as they are).
reconstruction: the driving video's first frame is the source, driven by the video's own
keypoints (how well the model reproduces a video from its keypoints).

Every frame is fitted to the model's size (--fit resize|crop|face), so any size, aspect ratio,
grayscale or RGBA input works. face (the default for a face model, kp_motion.data.face_framing)
cuts a fixed square around the face of the source and of the driving video, moved only when
the face leaves it; a source or first driving frame without a face is an error. Outputs:
.mp4/.mov/.mkv/.avi (H.264), .gif, or a path without suffix for a folder of lossless PNG
frames. User errors are raised as ValueError / FileNotFoundError (printed as one line by the
dispatcher, exit status 2).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from kp_motion.names import (
    DEFAULT_MODEL,
    FACE,
    FAST_RENDER,
    FITS,
    MODES,
    RECONSTRUCTION,
    RENDER_VARIANTS,
    TRANSFER,
)

COMMAND = "animate"
HELP = "animate a source image with a driving video (FOMM motion transfer / reconstruction)"

REFERENCE_PROFILES = ("vox-256", "mgif-256", "bair-256")
ALIGN_CHOICES = {"true": True, "false": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--driving", required=True, help="driving video, gif or frame folder")
    parser.add_argument(
        "-o", "--output", required=True, help="result: .mp4/.gif, or a folder for PNG frames"
    )
    parser.add_argument("--source", help="source image (transfer mode)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=TRANSFER,
        help="transfer: animate --source; reconstruction: re-render the driving video from "
        "its first frame (default: transfer)",
    )
    parser.add_argument(
        "--motion",
        choices=("relative", "absolute"),
        default="relative",
        help="transfer mode: motion relative to the first driving frame, or absolute "
        "driving keypoints (default: relative; reconstruction is always absolute)",
    )
    parser.add_argument(
        "--adapt-movement-scale",
        action="store_true",
        help="relative motion: scale it by the ratio of the keypoints' convex hull sizes",
    )
    parser.add_argument(
        "--no-relative-jacobian",
        action="store_true",
        help="relative motion: use the driving Jacobians as they are",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--fit",
        choices=FITS,
        help="fit frames to the model size: stretch them (resize), cut their centred square "
        "(crop) or a fixed square around the face (face) (default: face for a face model, "
        "face-* or vox-256, else resize)",
    )
    parser.add_argument("--side-by-side", help="also write source | driving | result")
    parser.add_argument(
        "--keypoints-video", help="also write source | driving | result with keypoints drawn"
    )
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving's)")
    parser.add_argument("--max-frames", type=int, help="animate the first N driving frames")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--render-variant",
        choices=RENDER_VARIANTS,
        default=FAST_RENDER,
        help=f"how the models run (default {FAST_RENDER}: the plain models' frames to float "
        "rounding, faster; bf16 is lossy and fast only on GPUs and CPUs with AVX512-BF16 or AMX; "
        "compiled ones need a C++ compiler and compile at the first frame; "
        "docs/rendering-performance.md)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options, shared with `kp-motion export`."""
    models = parser.add_argument_group(f"model (default: the embedded {DEFAULT_MODEL})")
    models.add_argument("--checkpoint", help="project checkpoint folder or embedded model name")
    models.add_argument("--reference-checkpoint", help="FOMM authors' checkpoint (.pth.tar)")
    models.add_argument(
        "--reference-config",
        metavar="NAME|YAML",
        help=f"config of --reference-checkpoint: {', '.join(REFERENCE_PROFILES)}, or a YAML file "
        "in the FOMM reference's own format (e.g. its config/taichi-256.yaml)",
    )
    models.add_argument(
        "--warp-align-corners",
        choices=sorted(ALIGN_CHOICES),
        help="grid_sample align_corners of --reference-checkpoint's warps (default: true, as "
        "under PyTorch 1.0 where the authors' checkpoints were trained; false reproduces the "
        "reference code run on PyTorch >= 1.3)",
    )


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory or missing options before any model or video is loaded."""
    from kp_motion.data import video_io

    if args.mode == TRANSFER and not args.source:
        raise ValueError("transfer mode needs --source IMAGE")
    if args.mode == RECONSTRUCTION and args.source:
        raise ValueError("reconstruction uses the driving video's first frame: drop --source")
    check_model_arguments(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError("--max-frames must be >= 1")
    if args.fps is not None and args.fps <= 0:
        raise ValueError("--fps must be > 0")
    for name in ("source", "driving"):
        path = getattr(args, name)
        if path and not Path(path).exists():
            raise FileNotFoundError(f"--{name} not found: {path}")
    writable = video_io.H264_SUFFIXES + video_io.GIF_SUFFIXES + ("",)
    outputs = {"--output": args.output, "--side-by-side": args.side_by_side,
               "--keypoints-video": args.keypoints_video}  # fmt: skip
    for option, output in outputs.items():
        if output is None:
            continue
        if Path(output).suffix.lower() not in writable:
            raise ValueError(
                f"{option} {output}: unsupported output type (use {', '.join(writable[:-1])} "
                "or a folder path without suffix)"
            )
        if Path(output).resolve() == Path(args.driving).resolve():
            raise ValueError(f"{option} would overwrite the driving video {args.driving}")
        # An unwritable path must fail now, in one line, not after the whole render.
        video_io.check_output(output)


def check_model_arguments(args: argparse.Namespace) -> None:
    """The model options (also those of `kp-motion export`), checked before anything loads."""
    if args.checkpoint and args.reference_checkpoint:
        raise ValueError("give either --checkpoint or --reference-checkpoint, not both")
    if bool(args.reference_checkpoint) != bool(args.reference_config):
        raise ValueError("--reference-checkpoint and --reference-config go together")
    if args.warp_align_corners is not None and not args.reference_checkpoint:
        raise ValueError("--warp-align-corners applies to --reference-checkpoint only")
    config = args.reference_config
    if config and config.endswith((".yaml", ".yml")) and not Path(config).is_file():
        raise FileNotFoundError(f"--reference-config not found: {config}")


def load_models(args: argparse.Namespace):
    """(config, kp_detector, generator) from the chosen checkpoint, on args.device."""
    from kp_motion.devices import resolve_device
    from kp_motion.models.checkpoint import (
        load_model,
        load_reference_checkpoint,
        resolve_checkpoint,
    )

    device = resolve_device(args.device)
    if args.reference_checkpoint:
        align = ALIGN_CHOICES.get(args.warp_align_corners)  # None: the config's own setting
        return load_reference_checkpoint(
            args.reference_checkpoint, args.reference_config, device, warp_align_corners=align
        )
    try:
        folder = resolve_checkpoint(args.checkpoint)
    except FileNotFoundError as error:
        if args.checkpoint:
            raise
        raise FileNotFoundError(
            f"{error}; pass --checkpoint FOLDER or --reference-checkpoint FILE"
        ) from None
    return load_model(folder, device)


class Outputs:
    """The result video and the optional side-by-side and keypoint-overlay videos."""

    def __init__(self, args: argparse.Namespace, fps: float) -> None:
        from kp_motion.data.video_io import VideoWriter

        self.result = VideoWriter(args.output, fps)
        self.side_by_side = VideoWriter(args.side_by_side, fps) if args.side_by_side else None
        self.keypoints = VideoWriter(args.keypoints_video, fps) if args.keypoints_video else None

    def write(self, source, driving, result, kp_source, kp_driving, kp_norm) -> None:
        import numpy as np

        from kp_motion.models.animator import draw_keypoints

        self.result.write(result)
        if self.side_by_side is not None:
            self.side_by_side.write(np.concatenate([source, driving, result], axis=1))
        if self.keypoints is not None:
            panels = [
                draw_keypoints(frame, kp["value"][0].cpu().numpy())
                for frame, kp in ((source, kp_source), (driving, kp_driving), (result, kp_norm))
            ]
            self.keypoints.write(np.concatenate(panels, axis=1))

    def close(self) -> None:
        for writer in (self.result, self.side_by_side, self.keypoints):
            if writer is not None:
                writer.close()


def fitted_frames(args: argparse.Namespace, config, source, driving):
    """(the source image, an iterator of the driving frames), fitted to the model's size by
    --fit, by default the model's own (face framing for a face model). The driving video gets
    one FaceFramer for all its frames, so its crop stays put while the face stays in it."""
    from kp_motion.data import video_io
    from kp_motion.data.face_framing import FaceFramer, default_fit, framed_video

    size = config.image_size
    fit = args.fit or default_fit(config.name)
    if fit != FACE:
        resized = (video_io.resize_frame(frame, size, fit) for frame in driving)
        return video_io.resize_frame(source, size, fit), resized
    if args.mode == TRANSFER:
        source = FaceFramer(name=args.source).crop(source)
    crops = framed_video(driving, FaceFramer(), name=args.driving)
    if args.mode == RECONSTRUCTION:
        source = next(crops)  # the first driving frame, framed like the others
        crops = itertools.chain([source], crops)
    return video_io.resize_frame(source, size), (video_io.resize_frame(c, size) for c in crops)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from kp_motion.data import video_io
    from kp_motion.models.animator import Animator

    check_arguments(args)
    config, kp_detector, generator = load_models(args)
    frames = video_io.iter_video(args.driving, max_frames=args.max_frames)
    # Decode the first frame before anything is written: a corrupt video fails here.
    first = next(frames)
    raw_source = video_io.read_image(args.source) if args.mode == TRANSFER else first
    source, driving_frames = fitted_frames(
        args, config, raw_source, itertools.chain([first], frames)
    )
    # The first driving frame is fitted before anything is written: no face fails here.
    driving_frames = itertools.chain([next(driving_frames)], driving_frames)
    motion = args.motion if args.mode == TRANSFER else "absolute"
    animator = Animator(
        kp_detector,
        generator,
        config,
        mode=motion,
        adapt_movement_scale=args.adapt_movement_scale,
        relative_jacobian=not args.no_relative_jacobian,
        variant=args.render_variant,
    )
    animator.set_source(video_io.to_tensor(source))
    fps = args.fps or video_io.video_fps(args.driving)
    outputs = Outputs(args, fps)
    count = 0
    try:
        with torch.no_grad():
            for driving in tqdm(driving_frames, desc="animate", unit="frame",
                                total=args.max_frames):
                kp_driving = animator.detect(video_io.to_tensor(driving))
                kp_norm = animator.normalized(kp_driving)
                prediction = animator.render_normalized(kp_norm)["prediction"]
                result = video_io.from_tensor(prediction)[0]
                outputs.write(source, driving, result, animator.kp_source, kp_driving, kp_norm)
                count += 1
    finally:
        outputs.close()
    guard = animator.guard_counts()
    print(
        f"kp-motion animate: {count} frames ({config.name}, {args.mode}, {motion} motion) "
        f"-> {args.output}; guard corrections: {guard['jacobians_corrected']} Jacobians, "
        f"{guard['positions_corrected']} positions"
    )
    return 0
