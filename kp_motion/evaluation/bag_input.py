"""Evaluate what the node graph rendered, from a rosbag2 bag, against the reference video.

`kp-motion bag record` stores the rendered topic (sensor_msgs/Image) and, when asked, the
receiver's keypoint stream (Keypoint60, whose `origin` says whether the frame was detected,
predicted or concealed). Here the rendered images are read back in order (header stamp, then
receive time), decoded with the ROS-free kp_motion.image_encoding and compared frame by frame
with the reference video: MSE, PSNR, SSIM (kp_motion.evaluation.metrics) and, with an FVD
scorer, FVD.

Alignment:
  with the Keypoint60 topic in the bag  each rendered image is matched to the keypoint message
      with the same header stamp (the renderer copies the keypoints' header onto its output)
      and compared with reference frame `frame_index`; images without a keypoint message or
      whose frame_index is past the reference are left out (counted in the notes). The metrics
      are also reported per origin.
  without it  rendered image i is compared with reference frame i, over the shorter of the two.

Bags are read with the pure-Python `rosbags` library, imported inside `read_bag` only, so that
the rest of the core imports on machines without it; message types come from the definitions
stored in the bag itself.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kp_motion.evaluation.metrics import per_frame_metrics, video_psnr
from kp_motion.evaluation.report import (
    describe_environment,
    format_number,
    json_safe,
    markdown_table,
)
from kp_motion.image_encoding import MalformedMessageError, decode_image
from kp_motion.keypoints import Origin
from kp_motion.topics import TOPICS

RENDERED_TOPIC = TOPICS["rendered"]
KEYPOINTS_TOPIC = TOPICS["keypoints_full"]
IMAGE_TYPE = "sensor_msgs/msg/Image"
KEYPOINT_TYPE = "kp_motion/msg/Keypoint60"
ORIGIN_NAMES = {int(origin): origin.name.lower() for origin in Origin}
ALIGN_BY_INDEX = "frame i of the bag <-> frame i of the reference"
ALIGN_BY_FRAME_INDEX = "Keypoint60 frame_index (matched to the image by header stamp)"


@dataclass
class BagRecording:
    """The rendered frames of a bag in order, and its keypoint metadata when recorded."""

    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    stamps_ns: list[int]  # header stamp of each frame
    # header stamp -> (frame_index, origin) of the Keypoint60 messages; None: topic not in bag
    keypoints: dict[int, tuple[int, int]] | None


@dataclass
class Alignment:
    bag_rows: list[int]  # row of BagRecording.frames
    reference_rows: list[int]  # row of the reference video
    origins: list[int | None]  # origin of each pair (None without keypoints)
    method: str
    notes: list[str] = field(default_factory=list)


@dataclass
class BagEvaluation:
    bag: str
    topic: str
    reference: str
    alignment: str
    frame_size: tuple[int, int]  # (height, width) of the rendered frames
    bag_frames: int
    reference_frames: int
    per_frame: list[dict[str, Any]]  # bag row, reference frame, origin, mse, psnr, ssim
    summary: dict[str, Any]  # frames, mse, psnr, ssim, fvd
    by_origin: dict[str, dict[str, Any]]  # origin name -> the same fields
    fvd_status: str
    environment: dict[str, Any]
    notes: list[str]
    wall_time_s: float = 0.0


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _stamp_ns(message: Any) -> int:
    stamp = message.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _open_reader(bag: Path) -> Any:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not bag.exists():
        raise FileNotFoundError(f"bag not found: {bag}")
    if not (bag / "metadata.yaml").is_file():
        raise ValueError(f"not a rosbag2 folder (no metadata.yaml): {bag}")
    # Types come from the definitions stored in the bag; Kilted's messages fill any gap.
    return AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED))


def _connections(reader: Any, topic: str, msgtype: str, bag: Path) -> list:
    found = [c for c in reader.connections if c.topic == topic]
    wrong = [c.msgtype for c in found if c.msgtype != msgtype]
    if wrong:
        raise ValueError(f"{bag}: topic {topic} holds {wrong[0]}, expected {msgtype}")
    return found


def read_bag(
    bag: str | Path, topic: str = RENDERED_TOPIC, keypoints_topic: str = KEYPOINTS_TOPIC
) -> BagRecording:
    """The decoded images of `topic`, sorted by (header stamp, receive time), + keypoint origins."""
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    bag = Path(bag)
    try:
        with _open_reader(bag) as reader:
            images = _connections(reader, topic, IMAGE_TYPE, bag)
            if not images:
                topics = ", ".join(sorted({c.topic for c in reader.connections})) or "none"
                raise ValueError(f"{bag}: topic {topic} is not in the bag (topics: {topics})")
            stamped = []
            for connection, received_ns, raw in reader.messages(connections=images):
                message = reader.deserialize(raw, connection.msgtype)
                stamped.append((_stamp_ns(message), received_ns, len(stamped), message))
            keypoint_connections = _connections(reader, keypoints_topic, KEYPOINT_TYPE, bag)
            keypoints = None
            if keypoint_connections:
                keypoints = {}
                for connection, _, raw in reader.messages(connections=keypoint_connections):
                    message = reader.deserialize(raw, connection.msgtype)
                    keypoints[_stamp_ns(message)] = (int(message.frame_index), int(message.origin))
    except (AnyReaderError, ReaderError) as error:
        raise ValueError(f"cannot read bag {bag}: {error}") from None
    if not stamped:
        raise ValueError(f"{bag}: topic {topic} holds no images")
    stamped.sort(key=lambda item: item[:3])
    frames = []
    for row, (_, _, _, message) in enumerate(stamped):
        try:
            frames.append(decode_image(message.data, message.encoding, message.height,
                                       message.width, message.step))
        except MalformedMessageError as error:
            raise ValueError(f"{bag}: image {row} of {topic}: {error}") from None
    sizes = {frame.shape for frame in frames}
    if len(sizes) > 1:
        raise ValueError(f"{bag}: images of {topic} change size: {sorted(sizes)}")
    return BagRecording(np.stack(frames), [item[0] for item in stamped], keypoints)


def load_reference(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """The reference video as uint8 (T, H, W, 3), resized to the rendered (height, width)."""
    from kp_motion.data.video_io import read_video, resize_frame

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"reference video not found: {path}")
    frames = read_video(path)
    if len(frames) == 0:
        raise ValueError(f"reference video has no frames: {path}")
    if frames.shape[1:3] != tuple(size):
        frames = np.stack([resize_frame(frame, size) for frame in frames])
    return frames


# ---------------------------------------------------------------------------------------------
# Alignment + metrics
# ---------------------------------------------------------------------------------------------


def align(recording: BagRecording, reference_frames: int) -> Alignment:
    """Pairs (bag row, reference row): by Keypoint60 frame_index when recorded, else by order."""
    bag_frames = len(recording.frames)
    if recording.keypoints is None:
        count = min(bag_frames, reference_frames)
        notes = []
        if bag_frames != reference_frames:
            notes.append(f"the bag holds {bag_frames} rendered frames and the reference "
                         f"{reference_frames}: the first {count} are compared")
        return Alignment(list(range(count)), list(range(count)), [None] * count,
                         ALIGN_BY_INDEX, notes)
    pairs = Alignment([], [], [], ALIGN_BY_FRAME_INDEX)
    unmatched = past_end = 0
    for row, stamp in enumerate(recording.stamps_ns):
        keypoint = recording.keypoints.get(stamp)
        if keypoint is None:
            unmatched += 1
        elif keypoint[0] >= reference_frames:
            past_end += 1
        else:
            pairs.bag_rows.append(row)
            pairs.reference_rows.append(keypoint[0])
            pairs.origins.append(keypoint[1])
    if unmatched:
        pairs.notes.append(f"{unmatched} rendered frames have no Keypoint60 message with their "
                           "stamp and are left out")
    if past_end:
        pairs.notes.append(f"{past_end} rendered frames have a frame_index past the reference's "
                           f"{reference_frames} frames and are left out")
    return pairs


def _summary(frame_mse: np.ndarray, frame_ssim: np.ndarray, rows: np.ndarray) -> dict[str, Any]:
    # PSNR of the mean MSE, as the video pipeline reports it (finite unless every frame is exact).
    return {
        "frames": int(rows.size),
        "mse": float(frame_mse[rows].mean()),
        "psnr": video_psnr(frame_mse[rows]),
        "ssim": float(frame_ssim[rows].mean()),
    }


def evaluate_frames(
    generated: np.ndarray,
    reference: np.ndarray,
    origins: list[int | None],
    fvd_scorer: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, dict[str, Any]]]:
    """Aligned uint8 (M, H, W, 3) videos -> per-frame rows, the summary and the per-origin one."""
    from kp_motion.data.video_io import to_tensor

    generated_video, reference_video = to_tensor(generated), to_tensor(reference)
    metrics = {name: values.numpy().astype(np.float64)
               for name, values in per_frame_metrics(reference_video, generated_video).items()}
    per_frame = [
        {"origin": None if origin is None else ORIGIN_NAMES.get(origin, str(origin)),
         **{name: float(values[row]) for name, values in metrics.items()}}
        for row, origin in enumerate(origins)
    ]
    summary = _summary(metrics["mse"], metrics["ssim"], np.arange(len(origins)))
    summary["fvd"] = None
    if fvd_scorer is not None:
        summary["fvd"] = fvd_scorer.distance(
            fvd_scorer.features(reference_video), fvd_scorer.features(generated_video)
        )
    by_origin = {}
    for code, name in ORIGIN_NAMES.items():
        rows = np.array([row for row, origin in enumerate(origins) if origin == code], dtype=int)
        if rows.size:
            by_origin[name] = _summary(metrics["mse"], metrics["ssim"], rows)
    return per_frame, summary, by_origin


def evaluate_bag(
    bag: str | Path,
    reference: str | Path,
    topic: str = RENDERED_TOPIC,
    fvd_scorer: Any = None,
    fvd_status: str = "",
    device: str = "cpu",
) -> BagEvaluation:
    """Read the bag and the reference, align them, compute the metrics."""
    started = time.perf_counter()
    recording = read_bag(bag, topic)
    size = recording.frames.shape[1:3]
    reference_frames = load_reference(reference, size)
    pairs = align(recording, len(reference_frames))
    if not pairs.bag_rows:
        raise ValueError(f"{bag}: no rendered frame could be aligned with the reference "
                         f"({'; '.join(pairs.notes) or 'nothing to compare'})")
    per_frame, summary, by_origin = evaluate_frames(
        recording.frames[pairs.bag_rows], reference_frames[pairs.reference_rows],
        pairs.origins, fvd_scorer,
    )
    for row, bag_row, reference_row in zip(per_frame, pairs.bag_rows, pairs.reference_rows,
                                           strict=True):
        row.update(bag_frame=bag_row, reference_frame=reference_row)
    return BagEvaluation(
        bag=str(bag), topic=topic, reference=str(reference), alignment=pairs.method,
        frame_size=(int(size[0]), int(size[1])), bag_frames=len(recording.frames),
        reference_frames=len(reference_frames), per_frame=per_frame, summary=summary,
        by_origin=by_origin, fvd_status=fvd_status, environment=describe_environment(device),
        notes=pairs.notes, wall_time_s=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

CSV_FIELDS = ("bag_frame", "reference_frame", "origin", "mse", "psnr", "ssim")


def _summary_row(label: str, values: dict[str, Any]) -> list[str]:
    return [label, str(values["frames"]), format_number(values["mse"]),
            format_number(values["psnr"]), format_number(values["ssim"])]


def markdown_report(result: BagEvaluation) -> str:
    fvd = result.summary["fvd"]
    lines = [
        "# Evaluation of a recorded bag",
        "",
        f"- bag: `{result.bag}`, topic `{result.topic}` ({result.bag_frames} frames, "
        f"{result.frame_size[1]}x{result.frame_size[0]})",
        f"- reference: `{result.reference}` ({result.reference_frames} frames)",
        f"- alignment: {result.alignment}",
        f"- FVD: {format_number(fvd) if fvd is not None else result.fvd_status}",
        f"- wall time: {result.wall_time_s:.1f} s on {result.environment.get('cpu', '?')}",
        "",
        "PSNR is that of the mean MSE (dB); SSIM is the mean over frames.",
        "",
    ]
    rows = [_summary_row("all frames", result.summary)]
    rows += [_summary_row(name, values) for name, values in result.by_origin.items()]
    lines += markdown_table(["subset", "frames", "MSE", "PSNR", "SSIM"], rows)
    lines += ["", "## Per frame", ""]
    lines += markdown_table(
        list(CSV_FIELDS),
        [[str(row["bag_frame"]), str(row["reference_frame"]), row["origin"] or "-",
          format_number(row["mse"]), format_number(row["psnr"]), format_number(row["ssim"])]
         for row in result.per_frame],
    )
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_bag_report(result: BagEvaluation, output_dir: str | Path) -> dict[str, Path]:
    """report.md, metrics.json and frames.csv in `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = {"markdown": output_dir / "report.md", "json": output_dir / "metrics.json",
               "csv": output_dir / "frames.csv"}
    written["markdown"].write_text(markdown_report(result))
    payload = {name: getattr(result, name) for name in result.__dataclass_fields__}
    written["json"].write_text(json.dumps(json_safe(payload), indent=2))
    with written["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in result.per_frame:
            writer.writerow({key: "" if row[key] is None else row[key] for key in CSV_FIELDS})
    return written


def summary_line(result: BagEvaluation) -> str:
    """One line for the terminal: frames compared and the mean metrics."""
    values = result.summary
    fvd = values["fvd"]
    return (f"{values['frames']} frames: MSE {format_number(values['mse'])}, PSNR "
            f"{format_number(values['psnr'])} dB, SSIM {format_number(values['ssim'])}, FVD "
            f"{format_number(fvd) if fvd is not None else 'unavailable'}")
