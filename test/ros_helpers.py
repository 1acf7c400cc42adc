"""Shared helpers of the ROS tests (test/test_ros_*.py): tiny models, clips, processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from model_helpers import tiny_model_config, write_tiny_model

SIZE = 32
# A handful of channels per layer: a render takes a few milliseconds on one core.
ROS_WIDTHS = {
    "kp_detector": {"block_expansion": 4, "max_features": 16, "num_blocks": 2},
    "dense_motion": {"block_expansion": 4, "max_features": 16, "num_blocks": 2},
    "generator": {"block_expansion": 4, "max_features": 16, "num_down_blocks": 2,
                  "num_bottleneck_blocks": 1},
}  # fmt: skip


def make_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised compact-64 checkpoint at 32 px with tiny widths in `folder`."""
    config = tiny_model_config("compact-64", SIZE, ROS_WIDTHS, name="tiny-ros-test")
    return write_tiny_model(folder, config, seed)


def clip_frames(count: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """(count, size, size, 3) uint8: a bright disc moving over a dark gradient."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    frames = []
    for t in range(count):
        cx, cy = 0.3 + 0.02 * t, 0.5 + 0.1 * np.sin(t / 3)
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < 0.04
        frame = np.stack([xs * 80, ys * 80, np.full_like(xs, 40)], axis=-1)
        frame[disc] = (230, 200, 60)
        frames.append(frame + rng.normal(0, 2, frame.shape))
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_clip(folder: Path, count: int) -> Path:
    """A folder of PNG frames (lossless, so every frame decodes exactly)."""
    from kp_motion.data.video_io import write_video

    return write_video(folder, clip_frames(count))


def child_env(ros_env: dict[str, str]) -> dict[str, str]:
    """Environment of node processes in tests: one torch thread each (2 shared cores)."""
    env = dict(ros_env)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess:
    """`kp-motion ...` in its own process group, killed with all its nodes on a timeout."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kp_motion.cli.main", *args], env=env, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"kp-motion {args[0]} timed out; stderr:\n{stderr[-4000:]}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def read_frames_record(output: Path) -> dict:
    return json.loads((output / "frames.json").read_text())
