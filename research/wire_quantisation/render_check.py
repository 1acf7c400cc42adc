"""How much the compact wire's quantisation changes rendered frames.

    python -m research.wire_quantisation.render_check [--model FOLDER] [--video FILE] [--frames N]

Detects the keypoints of the first N frames of a driving video with a FOMM checkpoint (default:
the embedded model and the demo driving video), renders the first frame animated by them
(absolute keypoints) once with the detected values and once with the values a compact packet
delivers (kp_motion.stream.wire), and prints the keypoint ranges, the keypoint MSE of the
quantisation and the pixel difference between the two renders (MSE and PSNR on [0, 1], largest
absolute difference). About 10 seconds on one CPU core at 64 x 64.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from kp_motion.data.video_io import read_video, resize_frame, to_tensor
from kp_motion.keypoints import POSITION_VALUES
from kp_motion.models.animator import Animator, keypoints_to_values
from kp_motion.models.checkpoint import embedded_model_folder, load_model
from kp_motion.names import SYNTHETIC_MODEL
from kp_motion.stream import wire

DETECT_BATCH = 10


def detected_values(animator: Animator, frames: np.ndarray) -> np.ndarray:
    """(T, 60) keypoint values of (T, H, W, 3) uint8 frames."""
    batches = [frames[start:start + DETECT_BATCH] for start in range(0, len(frames), DETECT_BATCH)]
    return np.concatenate([keypoints_to_values(animator.detect(to_tensor(b))) for b in batches])


def render_differences(animator: Animator, values: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) differences in [0, 1] between renders of values and of quantised values."""
    differences = []
    for exact, sent in zip(values, wire.quantized(values), strict=True):
        frame_exact, _ = animator.render_values(exact)
        frame_sent, _ = animator.render_values(sent)
        differences.append((frame_exact.astype(np.float64) - frame_sent) / 255.0)
    return np.stack(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The study was measured with the synthetic-data model on its synthetic demo clip.
    parser.add_argument("--model", default=str(embedded_model_folder(SYNTHETIC_MODEL)))
    parser.add_argument("--video", default="assets/demo_driving.mp4")
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    config, detector, generator = load_model(args.model)
    frames = read_video(args.video, max_frames=args.frames)
    frames = np.stack([resize_frame(frame, config.image_size) for frame in frames])
    animator = Animator(detector, generator, config, mode="absolute")
    animator.set_source(to_tensor(frames[:1]))
    values = detected_values(animator, frames)
    positions, jacobians = values[:, :POSITION_VALUES], values[:, POSITION_VALUES:]
    print(f"{len(values)} frames at {config.image_size}: positions in [{positions.min():.3f}, "
          f"{positions.max():.3f}], Jacobian entries in [{jacobians.min():.3f}, "
          f"{jacobians.max():.3f}]")
    quantisation_mse = np.mean((wire.quantized(values) - values) ** 2)
    print(f"keypoint MSE of the quantisation: {quantisation_mse:.3e}")
    differences = render_differences(animator, values)
    pixel_mse = float(np.mean(differences**2))
    print(f"render difference: pixel MSE {pixel_mse:.3e}, PSNR {10 * np.log10(1 / pixel_mse):.1f}"
          f" dB, largest {np.abs(differences).max():.3f}")


if __name__ == "__main__":
    main()
