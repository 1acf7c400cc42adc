"""Face framing on footage that is not face-centred, measured on the held-out identity.

The shared clips are face-centred squares. A webcam or phone clip is not: the head is small and
off-centre in a wider frame. This study makes such footage from the held-out clips (each frame
shrunk and pasted off-centre on a 4:3 canvas, the rest filled with the frame's blurred,
enlarged self so no hard edge gives the detector a free face box), then reconstructs it with the
face model under two fits: `resize` (the whole frame stretched to the model's square) and
`face` (kp_motion.data.face_framing). Each is scored against ITS OWN framing of the real frames,
beside the still source (frame 0 under the same framing), on the same frames.

    python -m research.framing_check [--clips DIR] [--frames N]

Prints a markdown table; writes nothing. Needs the shared clips (../shared beside the checkout).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from kp_motion.data import video_io
from kp_motion.data.face_framing import FaceFramer, framed_video
from kp_motion.evaluation.metrics import mse, video_psnr
from kp_motion.evaluation.model_card import reconstruct_clip
from kp_motion.models.animator import Animator
from kp_motion.models.checkpoint import load_model, resolve_checkpoint

HELD_OUT = "id10290"
CANVAS = (240, 320)  # height, width: QVGA, a small webcam frame
FACE_SIDE = 120  # the 256 px face square shrunk to this, as a head in a head-and-shoulders shot
TOP_LEFT = (30, 170)  # off-centre: right of the middle, near the top


def off_centre(frame: np.ndarray) -> np.ndarray:
    """The face-centred frame as a small, off-centre part of a wider 4:3 frame."""
    height, width = CANVAS
    background = cv2.GaussianBlur(cv2.resize(frame, (width, height)), (0, 0), 12)
    face = cv2.resize(frame, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
    top, left = TOP_LEFT
    background[top : top + FACE_SIDE, left : left + FACE_SIDE] = face
    return background


def framed(frames: list[np.ndarray], fit: str, size: int, name: str) -> torch.Tensor:
    if fit == "face":
        crops = list(framed_video(iter(frames), FaceFramer(name=name), name))
        frames = crops
    return video_io.to_tensor(np.stack([video_io.resize_frame(f, size, "resize") for f in frames]))


def scores(animator: Animator, video: torch.Tensor) -> tuple[float, float]:
    """PSNR of the reconstruction and of the still source over frames 1.. (same frames)."""
    rendered = reconstruct_clip(animator, video)
    still = video[:1].expand_as(video)
    frame_mse = mse(rendered[1:], video[1:]).numpy()
    still_mse = mse(still[1:], video[1:]).numpy()
    return video_psnr(frame_mse), video_psnr(still_mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[2]
    parser.add_argument("--clips", type=Path,
                        default=root.parent / "shared/data/voxceleb-seed/clips")
    parser.add_argument("--frames", type=int, default=121, help="first frames of each clip")
    args = parser.parse_args()
    clips = sorted(args.clips.glob(f"{HELD_OUT}*.mp4"))
    if not clips:
        raise SystemExit(f"framing_check: no {HELD_OUT} clips in {args.clips}")
    torch.set_num_threads(1)
    config, kp_detector, generator = load_model(resolve_checkpoint(None))
    animator = Animator(kp_detector, generator, config, mode="absolute")
    size = config.image_size[0]
    print("| clip | fit | frames | PSNR dB | still PSNR dB | gain dB |")
    print("|---|---|---|---|---|---|")
    for clip in clips:
        wide = [off_centre(f) for f in video_io.read_video(clip, args.frames)]
        for fit in ("resize", "face"):
            psnr, still = scores(animator, framed(wide, fit, size, clip.name))
            print(f"| {clip.stem} | {fit} | {len(wide) - 1} | {psnr:.2f} | {still:.2f} | "
                  f"{psnr - still:+.2f} |")


if __name__ == "__main__":
    main()
