"""ONNX export of the keypoint detector and of the source-cached renderer, and onnxruntime runners.

detector.onnx:  frames (B, C, H, W) in [0, 1] -> value (B, K, 2), jacobian (B, K, 2, 2)
renderer.onnx:  the per-frame part of the generator (Animator.render): the source cache's
                tensors (RENDERER_CACHE_INPUTS, plus skip_i for warped-skip profiles and
                source_image for output_blend) and the driving keypoints -> prediction.

The warp is ONNX's GridSample, which needs opset >= 16 (OPSET). The Jacobian guard repairs
matrices with an SVD that ONNX cannot express, so the exported renderer takes guarded
keypoints: OnnxRenderer guards them in PyTorch before each run, as the generator itself does.
onnxruntime (and onnx for the export) are optional dependencies: `pip install kp-motion[onnx]`.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kp_motion.jacobian import GuardCounter
from kp_motion.models.blocks import guarded_keypoints, make_coordinate_grid
from kp_motion.models.dense_motion import DenseMotionSource
from kp_motion.models.generator import OcclusionAwareGenerator, SourceCache
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.models.model_config import ModelConfig

OPSET = 17  # GridSample entered ONNX in opset 16
DETECTOR_FILE = "detector.onnx"
RENDERER_FILE = "renderer.onnx"
RENDERER_CACHE_INPUTS = (
    "features",
    "motion_image",
    "source_value",
    "source_jacobian",
    "source_gaussians",
)
DRIVING_INPUTS = ("driving_value", "driving_jacobian")
INSTALL_HINT = "onnxruntime is not installed (pip install 'kp-motion[onnx]')"


class DetectorGraph(nn.Module):
    """The detector with plain tensor outputs (ONNX graphs return tuples, not dicts)."""

    def __init__(self, kp_detector: KeypointDetector) -> None:
        super().__init__()
        self.kp_detector = kp_detector

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        detected = self.kp_detector(frames)
        return detected["value"], detected["jacobian"]


def renderer_input_names(generator: OcclusionAwareGenerator) -> list[str]:
    """Input names of renderer.onnx for this generator, in order."""
    names = list(RENDERER_CACHE_INPUTS)
    if generator.warped_skips:
        names += [f"skip_{level}" for level in range(len(generator.down_blocks))]
    if generator.output_blend:
        names.append("source_image")
    return names + list(DRIVING_INPUTS)


def cache_arrays(cache: SourceCache, generator: OcclusionAwareGenerator) -> dict[str, torch.Tensor]:
    """The tensors of a source cache under renderer.onnx's input names."""
    motion = cache.dense_motion
    tensors = {
        "features": cache.features,
        "motion_image": motion.image,
        "source_value": motion.positions,
        "source_jacobian": motion.jacobians,
        "source_gaussians": motion.gaussians,
    }
    tensors.update({f"skip_{level}": skip for level, skip in enumerate(cache.skips)})
    if generator.output_blend:
        tensors["source_image"] = cache.image
    return tensors


class RendererGraph(nn.Module):
    """generator.render(cache, kp_driving)['prediction'] with the cache passed as tensors."""

    def __init__(self, generator: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.generator = copy.deepcopy(generator).eval()
        self.generator.dense_motion_network.guard_keypoints = False  # guarded by the caller
        self.names = renderer_input_names(generator)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.names, tensors, strict=True))
        motion_image = named["motion_image"]
        height, width = motion_image.shape[-2:]
        cache = SourceCache(
            image=named.get("source_image"),
            features=named["features"],
            skips=[named[name] for name in self.names if name.startswith("skip_")],
            dense_motion=DenseMotionSource(
                image=motion_image,
                positions=named["source_value"],
                jacobians=named["source_jacobian"],
                gaussians=named["source_gaussians"],
                grid=make_coordinate_grid(height, width, motion_image.dtype),
            ),
        )
        kp_driving = {"value": named["driving_value"], "jacobian": named["driving_jacobian"]}
        return self.generator.render(cache, kp_driving, full_outputs=False)["prediction"]


def _export(module: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], path: Path):
    """torch.onnx.export with a dynamic batch axis on every input and output."""
    dynamic = {name: {0: "batch"} for name in [*inputs, *outputs]}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python branches on sizes: those are fixed by the profile,
        # except a batch-1 cache under a bigger driving batch, which OnnxRenderer repeats to
        # the driving batch before each run. The exporter's notes on constant folding are
        # about its own optimisation passes.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=outputs,
            opset_version=OPSET,
            dynamic_axes=dynamic,
            dynamo=False,
        )


def export_models(
    config: ModelConfig,
    kp_detector: KeypointDetector,
    generator: OcclusionAwareGenerator,
    folder: str | Path,
) -> dict[str, Path]:
    """Write folder/detector.onnx and folder/renderer.onnx for frames of config.image_size
    (traced on CPU at batch 1; the batch axis stays dynamic)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kp_detector = copy.deepcopy(kp_detector).cpu().eval()
    generator = copy.deepcopy(generator).cpu().eval()
    random = torch.Generator().manual_seed(0)
    frames = torch.rand(2, config.num_channels, *config.image_size, generator=random)
    with torch.no_grad():
        kp_source, kp_driving = kp_detector(frames[:1]), kp_detector(frames[1:])
        cache = generator.encode_source(frames[:1], kp_source)
    paths = {"detector": folder / DETECTOR_FILE, "renderer": folder / RENDERER_FILE}
    _export(DetectorGraph(kp_detector), {"frames": frames[:1]}, ["value", "jacobian"],
            paths["detector"])  # fmt: skip
    inputs = cache_arrays(cache, generator)
    inputs["driving_value"] = kp_driving["value"]
    inputs["driving_jacobian"] = kp_driving["jacobian"]
    graph = RendererGraph(generator)
    ordered = {name: inputs[name] for name in graph.names}
    _export(graph, ordered, ["prediction"], paths["renderer"])
    return paths


def _session(path: Path, threads: int | None):
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    options = onnxruntime.SessionOptions()
    # onnxruntime's worker threads otherwise spin for a while after each run, taking the cores
    # from whatever runs next (PyTorch, the ROS nodes, or the other stages of a benchmark).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )


def _numpy(tensor: torch.Tensor, batch: int) -> np.ndarray:
    """float32 C-contiguous array, a batch-1 tensor repeated to `batch` rows."""
    array = tensor.detach().cpu().float().contiguous().numpy()
    if array.shape[0] != batch:
        array = np.ascontiguousarray(np.broadcast_to(array, (batch, *array.shape[1:])))
    return array


class OnnxDetector:
    """detector.onnx in onnxruntime, called like the PyTorch detector (value and jacobian)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.session = _session(Path(path), threads)

    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        value, jacobian = self.session.run(None, {"frames": _numpy(frames, frames.shape[0])})
        return {"value": torch.from_numpy(value), "jacobian": torch.from_numpy(jacobian)}


class OnnxRenderer:
    """renderer.onnx in onnxruntime: render(cache, kp_driving) -> prediction, as the generator."""

    def __init__(
        self, path: str | Path, generator: OcclusionAwareGenerator, threads: int | None = None
    ) -> None:
        self.session = _session(Path(path), threads)
        self.generator = generator
        self.guard = GuardCounter()
        expected = renderer_input_names(generator)
        found = [node.name for node in self.session.get_inputs()]
        if found != expected:
            raise ValueError(f"{path}: inputs {found} do not fit this generator ({expected})")

    def render(self, cache: SourceCache, kp_driving: dict[str, torch.Tensor]) -> torch.Tensor:
        positions, jacobians = guarded_keypoints(
            kp_driving["value"], kp_driving["jacobian"], self.guard
        )
        batch = positions.shape[0]
        feeds = {name: _numpy(t, batch) for name, t in cache_arrays(cache, self.generator).items()}
        feeds["driving_value"] = _numpy(positions, batch)
        feeds["driving_jacobian"] = _numpy(jacobians, batch)
        (prediction,) = self.session.run(["prediction"], feeds)
        return torch.from_numpy(prediction)
