"""The evaluation protocol of the method, over a set of test videos.

For every video and mode:
  reconstruction  source = frame 0, driving = frames 1..T-1 of the same video,
                  reference = the real driving frames;
  transfer        source = frame 0 of video B, driving = all frames of video A (a fixed, seeded
                  pairing, every video drives once), reference = FOMM output with the true
                  keypoints (no prediction), relative keypoint normalisation by default.
The driving keypoints are detected once. "FOMM only" renders every driving frame with its true
keypoints; "still source" (reconstruction) shows the source frame for every driving frame. For
each block size k, each forecaster runs the block protocol of kp_motion.forecasting.protocol
(k true frames, k predicted, repeated until fewer than 2k remain): the frames of the complete
blocks are compared with the reference (true-keypoint frames are the FOMM-only renders,
predicted ones are rendered from the forecast). FOMM only and the still source are scored on
exactly those frames too (records with that k), so every row of a k is compared on identical
frames; their scores over every driving frame are kept apart (records with k None). Per video:
MSE, PSNR, SSIM, keypoint-space MSE and FVD; then averages over videos (FVD also pooled).

A bag recorded from the node graph (`kp-motion evaluate --bag`) is not run through this
protocol: the graph has already rendered it, so kp_motion.evaluation.bag_input reads the rendered
images back and scores them against the reference video with the same metrics and FVD scorer.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kp_motion import config as config_io
from kp_motion.evaluation.bandwidth import stream_bandwidth
from kp_motion.evaluation.fvd import FVD_UNAVAILABLE, FVDScorer, frechet_distance_of_features
from kp_motion.evaluation.metrics import per_frame_metrics, video_psnr
from kp_motion.evaluation.report import (
    FOMM_ONLY,
    STILL_SOURCE,
    EvaluationResult,
    FrameStrip,
    MetricRecord,
    describe_environment,
)
from kp_motion.evaluation.settings import EvaluateSettings, forecaster_label
from kp_motion.names import RECONSTRUCTION, TRANSFER

log = logging.getLogger(__name__)
# The two keypoint streams H.264 is compared with at equal bit rate.
EVERY_FRAME_SENT = "every frame sent"
K_OF_2K_SENT = "k of every 2k sent"


@dataclass
class EvalVideo:
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at the model's size
    fps: float


@dataclass
class EvalModels:
    config: Any  # kp_motion.models.model_config.ModelConfig
    kp_detector: torch.nn.Module
    generator: torch.nn.Module
    model_id: str
    forecasters: dict[str, Any]  # label -> kp_motion.forecasting.base.Forecaster


@dataclass
class Task:
    """One (video, mode) evaluation: a source frame, driving keypoints and the reference."""

    mode: str
    name: str
    source: torch.Tensor  # (1, 3, H, W) float in [0, 1]
    driving_values: np.ndarray  # (D, 60) true keypoints of the driving frames
    real_driving: np.ndarray | None  # (D, H, W, 3) uint8 real driving frames (reconstruction)
    motion: str  # "absolute" or "relative"
    fps: float


@dataclass
class VideoScores:
    """What one (video, mode, k, model) evaluation leaves behind."""

    frame_mse: np.ndarray  # (n,) per compared frame
    frame_ssim: np.ndarray
    kp_squared_errors: np.ndarray | None  # (N predicted, 60)
    fvd: float | None
    features: np.ndarray | None  # I3D features of the generated clips


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_models(settings: EvaluateSettings) -> EvalModels:
    from kp_motion.forecasting.checkpoint import (
        detector_mismatch,
        load_forecaster,
        resolve_forecaster,
    )
    from kp_motion.models.checkpoint import load_model, model_id, resolve_checkpoint

    config, kp_detector, generator = load_model(
        resolve_checkpoint(settings.checkpoint), settings.device
    )
    detector_id = model_id(config, kp_detector)
    forecasters = {
        forecaster_label(spec): load_forecaster(resolve_forecaster(spec), settings.device)
        for spec in settings.forecasters
    }
    for spec in settings.forecasters:
        if warning := detector_mismatch(forecasters[forecaster_label(spec)], detector_id, spec):
            log.warning(warning)
    return EvalModels(config, kp_detector, generator, detector_id, forecasters)


def synthetic_videos(
    settings: EvaluateSettings, image_size: tuple[int, int], progress: bool = True
) -> list[EvalVideo]:
    """Test videos of the synthetic dataset, rendered in memory at the model's size.

    They are the test split of `kp-motion synth` with config/synth.yaml, the dataset seed and
    synthetic_videos test videos of synthetic_frames frames (train videos are not rendered).
    """
    import dataclasses

    from kp_motion.data import synthetic

    height, width = image_size
    if height != width:
        raise ValueError(f"synthetic videos are square; the model takes {height}x{width} frames")
    dataset = settings.dataset
    config = dataclasses.replace(
        synthetic.load_config(),
        seed=dataset.seed, size=height, num_train=0,
        num_test=dataset.synthetic_videos, num_frames=dataset.synthetic_frames,
    ).validate()  # fmt: skip
    specs = [spec for spec in synthetic.plan_videos(config) if spec.split == "test"]
    videos = []
    for spec in tqdm(specs, desc="synthesise", unit="video", disable=not progress):
        frames, _ = synthetic.render_video(
            spec.kind, spec.seed, config.size, config.num_frames, config.fps, config.supersample
        )
        videos.append(EvalVideo(spec.name, frames, config.fps))
    return videos


def dataset_videos(
    settings: EvaluateSettings, image_size: tuple[int, int], progress: bool = True
) -> list[EvalVideo]:
    """Videos of one split of a first-order-model-layout root (kp_motion.data.datasets), in
    name order, resized to the model's frame size."""
    from kp_motion.data.datasets import VideoDataset
    from kp_motion.data.video_io import from_tensor

    height, width = image_size
    if height != width:
        raise ValueError(f"datasets are read as square frames; the model takes {height}x{width}")
    dataset = settings.dataset
    videos_found = VideoDataset(
        dataset.source, dataset.split, size=height, max_frames=dataset.max_frames
    )
    count = len(videos_found)
    if dataset.max_videos is not None:
        count = min(count, dataset.max_videos)
    videos = []
    for index in tqdm(range(count), desc="read videos", unit="video", disable=not progress):
        item = videos_found[index]
        videos.append(EvalVideo(item["name"], from_tensor(item["video"]), float(item["fps"])))
    return videos


def load_videos(
    settings: EvaluateSettings, image_size: tuple[int, int], progress: bool = True
) -> list[EvalVideo]:
    """The test videos the settings name ("synthetic" or a dataset root)."""
    if settings.dataset.source == "synthetic":
        videos = synthetic_videos(settings, image_size, progress)
        if settings.dataset.max_frames is not None:
            for video in videos:
                video.frames = video.frames[: settings.dataset.max_frames]
        return videos[: settings.dataset.max_videos]
    return dataset_videos(settings, image_size, progress)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def detect_values(animator: Any, frames: np.ndarray, batch_size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 60) keypoint values in the Keypoint60 layout."""
    from kp_motion.data.video_io import to_tensor
    from kp_motion.models.animator import keypoints_to_values

    values = []
    for start in range(0, len(frames), batch_size):
        keypoints = animator.detect(to_tensor(frames[start : start + batch_size]))
        values.append(keypoints_to_values(keypoints))
    return np.concatenate(values).astype(np.float32)


RENDER_BATCH = 16


@torch.no_grad()
def render_values(animator: Any, values: np.ndarray) -> torch.Tensor:
    """Render (N, 60) driving keypoints with the animator's source -> (N, 3, H, W) on the CPU.

    Batches of RENDER_BATCH frames share the cached source (same result as frame by frame).
    """
    from kp_motion.models.animator import keypoints_from_values

    frames = [
        animator.render(keypoints_from_values(values[start : start + RENDER_BATCH],
                                              animator.device))["prediction"].cpu()
        for start in range(0, len(values), RENDER_BATCH)
    ]  # fmt: skip
    return torch.cat(frames) if frames else torch.empty(0)


def compared_length(num_frames: int, k: int) -> int:
    """Frames covered by complete blocks of k true + k predicted frames."""
    from kp_motion.forecasting.protocol import block_indices

    return 2 * k * len(block_indices(num_frames, k))


def _uint8_to_float(frames: np.ndarray) -> torch.Tensor:
    from kp_motion.data.video_io import to_tensor

    return to_tensor(frames)


def _as_uint8(frames: torch.Tensor) -> np.ndarray:
    from kp_motion.data.video_io import from_tensor

    return from_tensor(frames)


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


def transfer_pairs(count: int, seed: int) -> list[tuple[int, int]]:
    """(driving, source) index pairs: a seeded shuffle, each video drives once and gives its
    source to another video (a cyclic shift of the shuffled order, so never itself)."""
    if count < 2:
        return []
    order = np.random.default_rng(seed).permutation(count)
    return [(int(order[i]), int(order[(i + 1) % count])) for i in range(count)]


def build_tasks(
    videos: list[EvalVideo], values: list[np.ndarray], settings: EvaluateSettings
) -> list[Task]:
    tasks = []
    if RECONSTRUCTION in settings.modes:
        for video, video_values in zip(videos, values, strict=True):
            tasks.append(Task(
                mode=RECONSTRUCTION, name=video.name,
                source=_uint8_to_float(video.frames[:1]),
                driving_values=video_values[1:], real_driving=video.frames[1:],
                motion=settings.reconstruction_motion, fps=video.fps,
            ))  # fmt: skip
    if TRANSFER in settings.modes:
        for driving, source in transfer_pairs(len(videos), settings.dataset.seed):
            tasks.append(Task(
                mode=TRANSFER, name=f"{videos[driving].name}->{videos[source].name}",
                source=_uint8_to_float(videos[source].frames[:1]),
                driving_values=values[driving], real_driving=None,
                motion=settings.transfer_motion, fps=videos[driving].fps,
            ))  # fmt: skip
    return tasks


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass
class Accumulator:
    """Per-video scores of every (mode, k, model), turned into records at the end."""

    scores: dict[tuple[str, int | None, str], list[VideoScores]] = field(
        default_factory=lambda: defaultdict(list)
    )
    reference_features: dict[tuple[str, int | None], list[np.ndarray]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def records(self) -> list[MetricRecord]:
        records = []
        for (mode, k, model), videos in self.scores.items():
            mses = [float(v.frame_mse.mean()) for v in videos]
            kp_errors = [v.kp_squared_errors for v in videos if v.kp_squared_errors is not None]
            kp_all = np.concatenate(kp_errors) if kp_errors else None
            fvds = [v.fvd for v in videos if v.fvd is not None]
            pooled = None
            if fvds:
                pooled = frechet_distance_of_features(
                    np.concatenate(self.reference_features[(mode, k)]),
                    np.concatenate([v.features for v in videos]),
                )
            records.append(MetricRecord(
                mode=mode, k=k, model=model, videos=len(videos),
                frames=int(sum(len(v.frame_mse) for v in videos)),
                mse=float(np.mean(mses)),
                psnr=float(np.mean([video_psnr(v.frame_mse) for v in videos])),
                ssim=float(np.mean([v.frame_ssim.mean() for v in videos])),
                kp_mse=float(kp_all.mean()) if kp_all is not None else None,
                kp_position_mse=float(kp_all[:, :20].mean()) if kp_all is not None else None,
                fvd=float(np.mean(fvds)) if fvds else None,
                fvd_pooled=pooled,
            ))  # fmt: skip
        return records

    def per_frame_mse(self) -> dict[str, dict[int, dict[str, list[float]]]]:
        """mode -> k -> model -> mean over videos of the MSE at each compared position."""
        curves: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(dict)
        for (mode, k, model), videos in self.scores.items():
            if k is None:
                continue
            length = max(len(v.frame_mse) for v in videos)
            padded = np.full((len(videos), length), np.nan)
            for row, video in enumerate(videos):
                padded[row, : len(video.frame_mse)] = video.frame_mse
            # Videos differ in length: average each position over the videos that reach it.
            curves[mode].setdefault(k, {})[model] = np.nanmean(padded, axis=0).tolist()
        return dict(curves)


class Evaluator:
    def __init__(
        self,
        settings: EvaluateSettings,
        models: EvalModels,
        fvd: FVDScorer | None,
        reset_per_block: bool,
    ) -> None:
        from kp_motion.jacobian import GuardCounter

        self.settings = settings
        self.models = models
        self.fvd = fvd
        self.reset_per_block = reset_per_block
        # Corrections made while normalising keypoints, summed over every task's animator.
        self.normalization_guard = GuardCounter()
        self.accumulator = Accumulator()
        self.strips: list[FrameStrip] = []
        self.codec_rows: dict[tuple[int | None, str], list[dict[str, Any]]] = defaultdict(list)
        self.stream_rate_rows: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        self.notes: list[str] = []

    def animator(self, motion: str) -> Any:
        from kp_motion.models.animator import Animator

        animator = Animator(
            self.models.kp_detector,
            self.models.generator,
            self.models.config,
            mode=motion,
            adapt_movement_scale=self.settings.adapt_movement_scale,
        )
        animator.normalization_guard = self.normalization_guard
        return animator

    def _score(
        self, reference: torch.Tensor, generated: torch.Tensor, reference_features: Any
    ) -> tuple[dict[str, torch.Tensor], float | None, np.ndarray | None]:
        frames = per_frame_metrics(reference, generated)
        if self.fvd is None:
            return frames, None, None
        features = self.fvd.features(generated)
        return frames, self.fvd.distance(reference_features, features), features

    def run_task(self, task: Task, codec_video: bool) -> None:
        from kp_motion.forecasting.protocol import run_protocol
        from kp_motion.models.animator import keypoints_from_values

        animator = self.animator(task.motion)
        animator.set_source(task.source)
        if task.motion == "relative":
            # Relative motion is measured from the first TRUE driving frame, also for forecasts.
            animator.set_driving_reference(
                keypoints_from_values(task.driving_values[0], animator.device)
            )
        fomm = render_values(animator, task.driving_values)
        if task.real_driving is not None:
            reference = _uint8_to_float(task.real_driving)
            # Over every driving frame: reported apart, never compared with the block rows.
            self._add_fixed_rows(task, None, reference, fomm)
        else:
            reference = fomm
        for k in self.settings.block_sizes:
            length = compared_length(len(task.driving_values), k)
            if length == 0:
                self.notes.append(
                    f"{task.mode} {task.name}: {len(task.driving_values)} driving "
                    f"frames, too short for k={k} (needs {2 * k})"
                )
                continue
            reference_k = reference[:length]
            reference_features = self._reference_features(task.mode, k, reference_k)
            if task.real_driving is not None:
                # The same frames as the forecasters' columns of this k.
                self._add_fixed_rows(task, k, reference_k, fomm[:length], reference_features)
            # Only the first task of each (mode, k) gives the frame strip; keep just its columns.
            need_strip = self.settings.strip_frames > 0 and not any(
                s.mode == task.mode and s.k == k for s in self.strips)
            columns = self._strip_columns(k)
            strip_rows: dict[str, np.ndarray] = {}
            for label, forecaster in self.models.forecasters.items():
                outcome = run_protocol(
                    forecaster, task.driving_values, k, self.reset_per_block,
                    sample=self.settings.sample,
                )  # fmt: skip
                generated = fomm[:length].clone()
                generated[torch.from_numpy(outcome.rows)] = render_values(
                    animator, outcome.predicted
                )
                frames, fvd, features = self._score(reference_k, generated, reference_features)
                self.accumulator.scores[(task.mode, k, label)].append(VideoScores(
                    frame_mse=frames["mse"].numpy(), frame_ssim=frames["ssim"].numpy(),
                    kp_squared_errors=outcome.squared_errors(), fvd=fvd, features=features,
                ))  # fmt: skip
                if need_strip:
                    strip_rows[label] = _as_uint8(generated[columns])
            if need_strip:
                self.strips.append(self._strip(task, k, columns, reference_k, fomm, strip_rows))
            if codec_video and task.real_driving is not None:
                self._codec(task, k, length)

    def _reference_features(
        self, mode: str, k: int | None, reference: torch.Tensor
    ) -> np.ndarray | None:
        """I3D features of a reference video (kept for the pooled FVD); None without I3D."""
        if self.fvd is None:
            return None
        features = self.fvd.features(reference)
        self.accumulator.reference_features[(mode, k)].append(features)
        return features

    def _add_fixed_rows(
        self,
        task: Task,
        k: int | None,
        reference: torch.Tensor,
        fomm: torch.Tensor,
        reference_features: np.ndarray | None = None,
    ) -> None:
        """FOMM with true keypoints and (reconstruction) the still source, on the frames of
        `reference` (the first len(reference) driving frames)."""
        if k is None:
            reference_features = self._reference_features(task.mode, None, reference)
        self._add_reference_row(task, k, reference, fomm, reference_features, FOMM_ONLY)
        if task.mode == RECONSTRUCTION:
            still = task.source.to(fomm.device).expand(len(reference), -1, -1, -1)
            self._add_reference_row(task, k, reference, still, reference_features, STILL_SOURCE)

    def _add_reference_row(
        self,
        task: Task,
        k: int | None,
        reference: torch.Tensor,
        generated: torch.Tensor,
        reference_features: np.ndarray | None,
        model: str,
    ) -> None:
        """Scores of a video no forecaster made: FOMM with true keypoints, or the still source."""
        frames, fvd, features = self._score(reference, generated, reference_features)
        self.accumulator.scores[(task.mode, k, model)].append(VideoScores(
            frame_mse=frames["mse"].numpy(), frame_ssim=frames["ssim"].numpy(),
            kp_squared_errors=None, fvd=fvd, features=features,
        ))  # fmt: skip

    def _strip_columns(self, k: int) -> np.ndarray:
        """The last true frame of the first block, then its predicted frames (subsampled)."""
        columns = np.arange(k - 1, 2 * k)
        if len(columns) > self.settings.strip_frames:
            picks = np.linspace(0, len(columns) - 1, self.settings.strip_frames)
            columns = columns[np.round(picks).astype(int)]
        return columns

    def _strip(
        self,
        task: Task,
        k: int,
        columns: np.ndarray,
        reference: torch.Tensor,
        fomm: torch.Tensor,
        generated: dict[str, np.ndarray],
    ) -> FrameStrip:
        label = "real" if task.real_driving is not None else "FOMM only (reference)"
        rows = {label: _as_uint8(reference[columns])}
        if task.real_driving is not None:
            rows[FOMM_ONLY] = _as_uint8(fomm[columns])
        rows.update(generated)
        offset = 1 if task.mode == RECONSTRUCTION else 0  # driving row -> video frame number
        return FrameStrip(
            mode=task.mode, k=k, video=task.name,
            frame_indices=[int(c) + offset for c in columns], rows=rows,
            predicted=[bool(c >= k) for c in columns],
        )  # fmt: skip

    def _codec(self, task: Task, k: int, length: int) -> None:
        """H.264 on the same real frames as the methods: at the keypoint stream's bit rate, and
        (match_psnr) the bitrate reaching each method's PSNR."""
        from kp_motion.evaluation.codec import bitrate_for_psnr

        settings = self.settings.codec
        clip = task.real_driving[:length]
        self._codec_at_stream_rate(task, k, clip)
        if not settings.match_psnr:
            return
        for model in [FOMM_ONLY, *self.models.forecasters]:
            target = video_psnr(self.accumulator.scores[(task.mode, k, model)][-1].frame_mse)
            match = bitrate_for_psnr(
                clip, task.fps, target, settings.min_kbps, settings.max_kbps,
                settings.relative_tolerance, settings.max_trials, settings.preset,
            )  # fmt: skip
            self.codec_rows[(k, model)].append(match.as_dict())

    def _codec_at_stream_rate(self, task: Task, k: int, clip: np.ndarray) -> None:
        """H.264's PSNR at the bit rate of the keypoint stream sending every frame, and sending
        k of every 2k, beside the PSNR of the methods that stream feeds (this video)."""
        from kp_motion.evaluation.codec import measure

        rates = stream_bandwidth(task.fps, k, k, self.models.model_id).as_dict()
        psnr = {
            model: video_psnr(self.accumulator.scores[(task.mode, k, model)][-1].frame_mse)
            for model in [FOMM_ONLY, *self.models.forecasters]
        }
        streams = (
            (EVERY_FRAME_SENT, rates["full_kbit_per_second"], {FOMM_ONLY: psnr[FOMM_ONLY]}),
            (K_OF_2K_SENT, rates["predicted_kbit_per_second"],
             {model: psnr[model] for model in self.models.forecasters}),
        )  # fmt: skip
        for stream, kbps, methods in streams:
            encoded = measure(clip, task.fps, kbps, self.settings.codec.preset)
            self.stream_rate_rows[(k, stream)].append({
                "video": task.name, "keypoint_kbps": kbps, "h264_kbps": encoded.kbps,
                "h264_psnr": encoded.psnr, "method_psnr": methods,
            })  # fmt: skip

    def stream_rate_summary(self) -> list[dict[str, Any]]:
        """Per (k, stream): means over the videos of the rows of _codec_at_stream_rate."""
        summary = []
        for (k, stream), rows in self.stream_rate_rows.items():
            methods = list(rows[0]["method_psnr"])
            summary.append({
                "k": k, "stream": stream, "videos": len(rows),
                "keypoint_kbps": float(np.mean([r["keypoint_kbps"] for r in rows])),
                "h264_kbps": float(np.mean([r["h264_kbps"] for r in rows])),
                "h264_psnr": float(np.mean([r["h264_psnr"] for r in rows])),
                "method_psnr": {m: float(np.mean([r["method_psnr"][m] for r in rows]))
                                for m in methods},
                "per_video": rows,
            })  # fmt: skip
        return summary

    def codec_summary(self) -> list[dict[str, Any]]:
        summary = []
        for (k, model), matches in self.codec_rows.items():
            summary.append({
                "k": k, "model": model, "videos": len(matches),
                "reached": sum(bool(m["reached"]) for m in matches),
                "at_minimum": sum(bool(m["at_minimum"]) for m in matches),
                "target_psnr": float(np.mean([m["target_psnr"] for m in matches])),
                "kbps": float(np.mean([m["kbps"] for m in matches])),
                "per_video": matches,
            })  # fmt: skip
        return summary


def reset_per_block_setting() -> bool:
    """The block protocol's reset rule, from config/forecaster.yaml (its single definition)."""
    from kp_motion.forecasting.settings import load_settings as load_forecaster_settings

    return load_forecaster_settings().evaluation.reset_per_block


def build_fvd_scorer(settings: EvaluateSettings) -> tuple[FVDScorer | None, str]:
    if settings.fvd.i3d_weights is None:
        return None, FVD_UNAVAILABLE
    from kp_motion.evaluation.i3d import I3DFeatureExtractor, load_i3d

    model = load_i3d(settings.fvd.i3d_weights, settings.device)
    extractor = I3DFeatureExtractor(
        model, settings.fvd.feature, settings.fvd.input_size, settings.fvd.batch_size
    )
    status = (
        f"I3D {settings.fvd.feature} features ({Path(settings.fvd.i3d_weights).name}), clips of "
        f"{settings.fvd.clip_length} frames every {settings.fvd.clip_stride} at "
        f"{settings.fvd.input_size} px"
    )
    return FVDScorer(extractor, settings.fvd.clip_length, settings.fvd.clip_stride), status


def bandwidth_rows(
    settings: EvaluateSettings, videos: list[EvalVideo], model_id: str
) -> list[dict[str, Any]]:
    fps = settings.bandwidth.fps or float(np.median([video.fps for video in videos]))
    return [
        stream_bandwidth(fps, k, k, model_id).as_dict()
        for k in settings.block_sizes
    ]


def evaluate(
    settings: EvaluateSettings,
    videos: list[EvalVideo],
    models: EvalModels,
    progress: bool = True,
) -> EvaluationResult:
    """Run the whole protocol over `videos`; returns the results (write them with report)."""
    if not videos:
        raise ValueError("no videos to evaluate")
    started = time.perf_counter()
    bandwidth = bandwidth_rows(settings, videos, models.model_id)  # before the long part
    fvd, fvd_status = build_fvd_scorer(settings)
    evaluator = Evaluator(settings, models, fvd, reset_per_block_setting())
    if TRANSFER in settings.modes and len(videos) < 2:
        evaluator.notes.append("transfer mode skipped: it needs at least two videos")
    detector = evaluator.animator("absolute")
    values = [
        detect_values(detector, video.frames, settings.detect_batch_size)
        for video in tqdm(videos, desc="keypoints", unit="video", disable=not progress)
    ]
    tasks = build_tasks(videos, values, settings)
    codec_names = {v.name for v in videos[: settings.codec.videos]}
    if not settings.codec.enabled:
        codec_names = set()
    for task in tqdm(tasks, desc="evaluate", unit="video", disable=not progress):
        evaluator.run_task(task, codec_video=task.name in codec_names)
    # The generator's counter runs over its whole life; the normalisation counter over this run.
    guard = evaluator.animator("absolute").guard_counts()
    corrections = {label: f.corrections for label, f in models.forecasters.items()}
    evaluator.notes.append(
        f"keypoint guard corrections in rendering: {guard}; "
        f"forecaster output corrections: {corrections}"
    )
    return EvaluationResult(
        records=evaluator.accumulator.records(),
        per_frame_mse=evaluator.accumulator.per_frame_mse(),
        bandwidth=bandwidth,
        codec=evaluator.codec_summary(),
        codec_at_stream_rate=evaluator.stream_rate_summary(),
        fvd_status=fvd_status,
        environment=describe_environment(str(settings.device)),
        settings=config_io.to_dict(settings),
        videos=[video.name for video in videos],
        wall_time_s=time.perf_counter() - started,
        strips=evaluator.strips,
        notes=evaluator.notes,
    )


def run_evaluation(
    settings: EvaluateSettings, output_dir: str | Path, progress: bool = True
) -> tuple[EvaluationResult, dict[str, Path]]:
    """Load the models and videos the settings name, evaluate, write the report."""
    from kp_motion.evaluation.report import write_report

    started = time.perf_counter()
    models = load_models(settings)
    videos = load_videos(settings, models.config.image_size, progress)
    result = evaluate(settings, videos, models, progress)
    result.wall_time_s = time.perf_counter() - started  # loading included
    return result, write_report(result, output_dir)
