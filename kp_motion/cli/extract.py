"""`kp-motion extract`: keypoint sequences of every video of a dataset, for the forecasters.

Runs a trained keypoint detector over <dataset>/<split>/ videos (first-order-model layout) and
writes <output>/<split>/<video>.npz (60 values per frame + frame indices) and meta.yaml with
the detector's model_id (kp_motion.data.keypoint_sequences).

With --set OUT.npz the argument is instead one folder of clips, and every clip goes into one
keypoint set file (kp_motion.data.keypoint_sets: the shared VoxCeleb keypoints' layout, plus the
detector's model_id and name), the input of `kp-motion train forecaster --keypoints`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp_motion.names import DEFAULT_MODEL

COMMAND = "extract"
HELP = "extract keypoint sequences (60 values per frame) from a dataset's videos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        help="dataset root in the first-order-model layout (root/train, root/test); with "
        "--set, a folder of clips",
    )
    parser.add_argument(
        "--set",
        metavar="OUT.npz",
        help="write one keypoint set file of every clip of the folder (for "
        "`kp-motion train forecaster --keypoints`) instead of sequence folders",
    )
    parser.add_argument(
        "-o", "--output", default="out/keypoints", help="output folder (default: out/keypoints)"
    )
    parser.add_argument(
        "--checkpoint",
        help=f"project checkpoint folder (default: the embedded model {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--split", nargs="+", default=["train", "test"], help="splits to extract (default: both)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="frames per detector call")
    parser.add_argument(
        "--fit",
        choices=["resize", "crop"],
        default="resize",
        help="frames of another size: resize, or centre-crop then resize",
    )
    parser.add_argument("--max-frames", type=int, help="keep the first N frames of each video")
    parser.add_argument(
        "--device", default="auto", help="auto (cuda when available), cpu, cuda, ..."
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def default_checkpoint() -> Path:
    from kp_motion.cli.main import CliError
    from kp_motion.models.checkpoint import embedded_model_folder

    folder = embedded_model_folder()
    if not folder.is_dir():
        raise CliError(
            f"no --checkpoint given and the embedded default model is missing ({folder}); "
            f"train one with `kp-motion train fomm`"
        )
    return folder


def run(args: argparse.Namespace) -> int:
    from kp_motion.cli.main import CliError
    from kp_motion.training.distributed import resolve_device
    from kp_motion.training.extraction import extract_dataset

    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if args.set:
        return _run_set(args, checkpoint)
    written = extract_dataset(
        dataset=Path(args.dataset),
        splits=args.split,
        checkpoint=checkpoint,
        output=Path(args.output),
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        fit=args.fit,
        max_frames=args.max_frames,
        progress=not args.no_progress,
        # The embedded model by name: its absolute path means nothing on another machine.
        checkpoint_label=args.checkpoint or f"embedded:{DEFAULT_MODEL}",
    )
    for split, (folder, count, model_id) in written.items():
        print(f"{split}: {count} sequences in {folder} (model_id {model_id})")
    return 0


def _run_set(args: argparse.Namespace, checkpoint: Path) -> int:
    """--set: one folder of clips -> one keypoint set file."""
    from kp_motion.cli.main import CliError
    from kp_motion.training.distributed import resolve_device
    from kp_motion.training.extraction import extract_keypoint_set

    output, clips_folder = Path(args.set), Path(args.dataset)
    # Checked before the model loads: a wrong path fails at once, in one line.
    if output.suffix != ".npz":
        raise CliError(f"--set must name a .npz file, got {output}")
    if not clips_folder.is_dir():
        raise CliError(f"clips folder not found: {clips_folder}")
    if not output.parent.is_dir():
        raise CliError(f"--set: folder {output.parent} does not exist")
    path, clips, frames, model_id = extract_keypoint_set(
        clips_folder, checkpoint, output, resolve_device(args.device), args.batch_size,
        args.fit, args.max_frames, progress=not args.no_progress,
    )  # fmt: skip
    print(f"{clips} clips, {frames} frames -> {path} (model_id {model_id})")
    return 0
