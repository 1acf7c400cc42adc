"""What a model card shows of a trained FOMM model on a dataset's test split (for the face model:
the held-out identity): a strip of sample reconstructions and transfers, and a table of
reconstruction metrics against the still source.

Frames of the dataset are never shown as they are: the clips may not be redistributable. The
driving frames appear as the model's own keypoints (positions and Jacobian axes) on a neutral
background, a source taken from the dataset as the model's rendering of it from its own
keypoints. Only a source image given by the caller (e.g. a public-domain picture) is shown as is.

Reconstruction: source = frame 0 of a clip, every frame rendered from its own (absolute)
keypoints, as in FOMM's reconstruction protocol. Transfer: another source driven by a clip's
motion relative to its first frame. "Still source" is what a model that learned no motion
scores: frame 0 shown for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kp_motion.data import video_io
from kp_motion.data.datasets import VideoDataset
from kp_motion.evaluation.metrics import per_frame_metrics, video_psnr
from kp_motion.evaluation.report import markdown_table
from kp_motion.models.animator import Animator, draw_keypoints
from kp_motion.models.generator import OcclusionAwareGenerator
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.models.model_config import ModelConfig

NEUTRAL_GREY = 160  # background of the keypoint overlays: no frame content shown
AXIS_LENGTH = 0.15  # a Jacobian column drawn as this long a line, in [-1, 1] units
CAPTION_HEIGHT = 14  # pixels of caption text under each panel and above each row
FRAMES_PER_BATCH = 32  # frames rendered per generator call (bounded memory on long clips)


def _render_in_batches(animator: Animator, video: torch.Tensor) -> torch.Tensor:
    """The animator's rendering of every frame of `video`, `FRAMES_PER_BATCH` frames a call."""
    parts = []
    for start in range(0, len(video), FRAMES_PER_BATCH):
        kp = animator.detect(video[start : start + FRAMES_PER_BATCH])
        parts.append(animator.render(kp)["prediction"].cpu())
    return torch.cat(parts)


@torch.inference_mode()
def reconstruct_clip(animator: Animator, video: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) frames -> their reconstruction from frame 0 and each frame's keypoints
    (the animator must be in absolute mode)."""
    animator.set_source(video[:1])
    return _render_in_batches(animator, video)


@torch.inference_mode()
def transfer_clip(animator: Animator, source: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) source driven by the (T, 3, H, W) video, relative to the video's frame 0
    (the animator must be in relative mode)."""
    animator.set_source(source)
    animator.set_driving_reference(animator.detect(video[:1]))
    return _render_in_batches(animator, video)


@torch.inference_mode()
def detect_clip(animator: Animator, video: torch.Tensor) -> np.ndarray:
    """(T, K, 2) keypoint positions of a (T, 3, H, W) clip, `FRAMES_PER_BATCH` frames a call."""
    return np.concatenate([
        animator.detect(video[start : start + FRAMES_PER_BATCH])["value"].cpu().numpy()
        for start in range(0, len(video), FRAMES_PER_BATCH)
    ])  # fmt: skip


def moving_frames(positions: np.ndarray, count: int) -> list[int]:
    """Frame 0 and the `count` - 1 frames whose (K, 2) keypoints lie farthest from frame 0's
    (mean distance over keypoints), at least len / (2 count) frames apart, in time order.

    The frames with most motion are those where a reconstruction can go wrong; spacing them
    keeps one burst of motion from filling the strip."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    distance = np.linalg.norm(positions - positions[:1], axis=-1).mean(axis=-1)
    spacing = max(1, len(positions) // (2 * count))
    chosen = [0]
    for frame in np.argsort(-distance, kind="stable"):
        if len(chosen) == count:
            break
        if all(abs(int(frame) - other) >= spacing for other in chosen):
            chosen.append(int(frame))
    return sorted(chosen)


def keypoint_overlay(
    positions: np.ndarray, jacobians: np.ndarray, size: int, length: float = AXIS_LENGTH
) -> np.ndarray:
    """A neutral (size, size, 3) panel with (K, 2) keypoints and their (K, 2, 2) Jacobians'
    columns drawn as two axes from each keypoint: the motion the model sees, no frame content."""
    import cv2

    from kp_motion.models.animator import keypoint_colours

    canvas = np.full((size, size, 3), NEUTRAL_GREY, np.uint8)

    def pixel(point: np.ndarray) -> tuple[int, int]:
        # [-1, 1] spans the border pixels' centres (see blocks.make_coordinate_grid).
        x, y = np.clip((point + 1) / 2 * (size - 1), -size, 2 * size)
        return int(round(x)), int(round(y))

    colours = keypoint_colours(len(positions))
    for position, jacobian, colour in zip(positions, jacobians, colours, strict=True):
        if not np.all(np.isfinite(position)) or not np.all(np.isfinite(jacobian)):
            continue
        for axis in range(2):
            tip = position + length * jacobian[:, axis]
            cv2.line(canvas, pixel(position), pixel(tip), colour, 1, lineType=cv2.LINE_AA)
    return draw_keypoints(canvas, positions, radius=max(2, size // 40))


def captioned(panel: np.ndarray, text: str) -> np.ndarray:
    """The panel with a white band of `text` under it."""
    band = np.full((CAPTION_HEIGHT, panel.shape[1], 3), 255, np.uint8)
    _put_text(band, text)
    return np.concatenate([panel, band])


def _put_text(band: np.ndarray, text: str) -> None:
    import cv2

    cv2.putText(band, text, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                (0, 0, 0), 1, lineType=cv2.LINE_AA)  # fmt: skip


@dataclass
class StripRow:
    """One row of the strip: a title and its captioned panels (uint8 (H, W, 3) each)."""

    title: str
    panels: list[np.ndarray]


def strip_image(rows: list[StripRow], gap: int = 4) -> np.ndarray:
    """Rows of equally sized panels -> one image, each row under a band with its title."""
    height, width = rows[0].panels[0].shape[:2]
    columns = max(len(row.panels) for row in rows)
    total_width = columns * (width + gap) - gap
    blocks = []
    for row in rows:
        title = np.full((CAPTION_HEIGHT + 2, total_width, 3), 255, np.uint8)
        _put_text(title, row.title)
        line = np.full((height, total_width, 3), 255, np.uint8)
        for column, panel in enumerate(row.panels):
            left = column * (width + gap)
            line[:, left : left + width] = panel
        blocks += [title, line, np.full((gap, total_width, 3), 255, np.uint8)]
    return np.concatenate(blocks[:-1])


def _psnr_of(frame: torch.Tensor, reference: torch.Tensor) -> float:
    return float(per_frame_metrics(reference[None], frame[None], with_ssim=False)["psnr"][0])


def _frames(tensor: torch.Tensor) -> np.ndarray:
    return video_io.from_tensor(tensor)


@dataclass
class SampleModel:
    """A loaded model and its two animators (absolute motion, relative motion)."""

    config: ModelConfig
    absolute: Animator
    relative: Animator

    @classmethod
    def build(
        cls, config: ModelConfig, kp_detector: KeypointDetector, generator: OcclusionAwareGenerator
    ) -> SampleModel:
        return cls(
            config,
            Animator(kp_detector, generator, config, mode="absolute"),
            Animator(kp_detector, generator, config, mode="relative"),
        )

    @property
    def size(self) -> int:
        return self.config.image_size[0]


def driving_rows(
    model: SampleModel, name: str, video: torch.Tensor, picks: list[int]
) -> list[StripRow]:
    """The keypoint overlay row of a clip and its reconstruction row, PSNR per panel against
    the frame (and against frame 0, the still source)."""
    detected = model.absolute.detect(video[picks])
    positions = detected["value"].cpu().numpy()
    jacobians = detected["jacobian"].cpu().numpy()
    overlays = [captioned(keypoint_overlay(p, j, model.size), f"frame {frame}")
                for p, j, frame in zip(positions, jacobians, picks, strict=True)]  # fmt: skip
    # picks[0] is frame 0: the source, rendered from its own keypoints like the others.
    rendered = reconstruct_clip(model.absolute, video[picks])
    panels = [captioned(_frames(rendered[0]), "source (rendered)")]
    for frame, image in zip(picks[1:], rendered[1:], strict=True):
        text = (f"{_psnr_of(image, video[frame]):.1f} dB "
                f"(still {_psnr_of(video[0], video[frame]):.1f})")  # fmt: skip
        panels.append(captioned(_frames(image), text))
    return [
        StripRow(f"{name}: the model's keypoints and Jacobian axes (driving)", overlays),
        StripRow("reconstruction from frame 0 (PSNR vs the frame; still source)", panels),
    ]


def transfer_row(
    model: SampleModel,
    title: str,
    source: torch.Tensor,
    source_panel: tuple[str, np.ndarray],
    video: torch.Tensor,
    picks: list[int],
) -> StripRow:
    """`source` (1, 3, H, W) driven by the clip's motion relative to its frame 0; the first
    panel is `source_panel` (caption, what may be shown of the source)."""
    rendered = transfer_clip(model.relative, source, video[picks])  # picks[0] = 0: the reference
    panels = [captioned(source_panel[1], source_panel[0])]
    panels += [captioned(_frames(image), f"frame {frame}")
               for frame, image in zip(picks[1:], rendered[1:], strict=True)]  # fmt: skip
    return StripRow(title, panels)


def rendered_self(model: SampleModel, frame: torch.Tensor) -> np.ndarray:
    """The model's rendering of a (1, 3, H, W) frame from its own keypoints (uint8 panel)."""
    return _frames(reconstruct_clip(model.absolute, frame))[0]


def sample_strip(
    model: SampleModel,
    dataset: VideoDataset,
    columns: int = 6,
    extra_source: tuple[str, np.ndarray] | None = None,
) -> np.ndarray:
    """The model card strip of the split's first two clips (A and B):
    A's keypoints, A's reconstruction, B's keypoints, B's reconstruction, B's frame 0 (as the
    model renders it) driven by A, and `extra_source` (name, uint8 image of the model's size)
    driven by A and by B when given. Columns: frame 0 and the frames where A's (or B's)
    keypoints move most."""
    if len(dataset) < 2:
        raise ValueError(f"the {dataset.split} split needs at least 2 clips, has {len(dataset)}")
    rows: list[StripRow] = []
    clips = [dataset[index] for index in range(2)]
    picks = []
    for clip in clips:
        picks.append(moving_frames(detect_clip(model.absolute, clip["video"]), columns))
        rows += driving_rows(model, clip["name"], clip["video"], picks[-1])
    first, second = clips
    rows.append(transfer_row(
        model, f"transfer: frame 0 of {second['name']} driven by {first['name']}",
        second["video"][:1], ("source (rendered)", rendered_self(model, second["video"][:1])),
        first["video"], picks[0],
    ))  # fmt: skip
    if extra_source is not None:
        # Driven by both clips: A's motion is large (a hand on the face, a wide head turn), B's
        # is a talking head's, and a transfer succeeds or fails very differently on the two.
        name, image = extra_source
        for driver, driver_picks in ((first, picks[0]), (second, picks[1])):
            rows.append(transfer_row(
                model, f"transfer: {name} driven by {driver['name']}",
                video_io.to_tensor(image), ("source", image), driver["video"], driver_picks,
            ))  # fmt: skip
    return strip_image(rows)


# Metrics -------------------------------------------------------------------------------------


@torch.inference_mode()
def clip_scores(animator: Animator, video: torch.Tensor) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame {"rendered" | "still": {"mse", "psnr", "ssim", "l1"}} of a (T, 3, H, W) clip,
    frames 1.. (frame 0 is the source: both would reproduce it)."""
    rendered = reconstruct_clip(animator, video)
    frames = video[1:].cpu()
    scores = {}
    for name, candidate in (("rendered", rendered[1:]), ("still", video[:1].expand_as(frames))):
        found = {key: value.numpy() for key, value in per_frame_metrics(frames, candidate).items()}
        found["l1"] = (candidate - frames).abs().flatten(1).mean(1).numpy()
        scores[name] = found
    return scores


def _summary(scores: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """PSNR of the mean MSE, mean SSIM and mean L1 over every frame of the given clips."""
    merged = {key: np.concatenate([s[key] for s in scores]) for key in scores[0]}
    return {
        "psnr": video_psnr(merged["mse"]),
        "ssim": float(merged["ssim"].mean()),
        "l1": float(merged["l1"].mean()),
        "frames": len(merged["mse"]),
    }


def held_out_table(animator: Animator, dataset: VideoDataset) -> str:
    """A markdown table of reconstruction vs still source, per clip and over all clips."""
    per_clip: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for index in range(len(dataset)):
        item = dataset[index]
        per_clip[item["name"]] = clip_scores(animator, item["video"])
    header = ["clips", "frames", "PSNR (dB)", "still PSNR", "SSIM", "still SSIM", "L1",
              "still L1"]  # fmt: skip
    groups = {name: [scores] for name, scores in per_clip.items()}
    groups[f"all {len(per_clip)}"] = list(per_clip.values())
    lines = []
    for name, members in groups.items():
        rendered = _summary([m["rendered"] for m in members])
        still = _summary([m["still"] for m in members])
        lines.append([
            name, str(rendered["frames"]), f"{rendered['psnr']:.2f}", f"{still['psnr']:.2f}",
            f"{rendered['ssim']:.4f}", f"{still['ssim']:.4f}", f"{rendered['l1']:.4f}",
            f"{still['l1']:.4f}",
        ])  # fmt: skip
    return "\n".join(markdown_table(header, lines)) + "\n"


# Sources that may be shown -------------------------------------------------------------------

ASTRONAUT = "astronaut"
# scikit-image's astronaut (512 x 512, public domain, NASA): a fixed square around the face with
# a margin, as the reference FOMM crop tool frames faces (rows, then columns).
ASTRONAUT_FACE_BOX = (slice(0, 256), slice(107, 363))


def astronaut_face(size: int) -> np.ndarray | None:
    """The astronaut's face, (size, size, 3) uint8, or None where scikit-image is missing."""
    try:
        from skimage import data
    except ImportError:
        return None
    return video_io.resize_frame(data.astronaut()[ASTRONAUT_FACE_BOX], size)


def shown_source(spec: str, size: int) -> tuple[str, np.ndarray] | None:
    """The transfer source the strip may show: "astronaut", "none" or an image path (centre-
    cropped to a square); None for "none" or a missing scikit-image (then a note is printed)."""
    if spec == "none":
        return None
    if spec == ASTRONAUT:
        face = astronaut_face(size)
        if face is None:
            print("note: scikit-image is not installed; the strip has no astronaut transfer row")
            return None
        return "the astronaut (scikit-image, public domain)", face
    return Path(spec).name, video_io.resize_frame(video_io.read_image(spec), size, fit="crop")
