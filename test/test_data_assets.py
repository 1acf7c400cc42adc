"""The bundled demo media exist, are small, and are what assets/README.md says they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kp_motion.data import synthetic, video_io
from kp_motion.paths import assets_dir


def test_demo_assets_are_readable_and_small() -> None:
    folder = assets_dir()
    source = video_io.read_image(folder / "demo_source.png")
    driving = video_io.read_video(folder / "demo_driving.mp4")
    assert source.shape == (64, 64, 3)
    assert driving.shape[1:] == (64, 64, 3) and 64 <= len(driving) <= 100
    assert video_io.video_fps(folder / "demo_driving.mp4") == 25.0
    total = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    assert total < 1_000_000


def test_demo_source_is_reproduced_by_the_documented_command(tmp_path: Path) -> None:
    # assets/README.md: `kp-motion synth --demo-assets assets --seed 1` with config/synth.yaml.
    synthetic.write_demo_assets(tmp_path, "quadruped", seed=1, config=synthetic.load_config())
    bundled = video_io.read_image(assets_dir() / "demo_source.png").astype(int)
    rendered = video_io.read_image(tmp_path / "demo_source.png").astype(int)
    # Exact on this machine; a tolerance absorbs OpenCV SIMD rounding on other CPUs.
    assert np.abs(bundled - rendered).mean() < 0.5, "regenerate assets/ (see assets/README.md)"
