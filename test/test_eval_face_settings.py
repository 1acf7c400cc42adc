"""config/evaluate-face.yaml: the face model's run names what the method's tables need."""

from __future__ import annotations

from kp_motion.evaluation.settings import forecaster_label, load_settings
from kp_motion.forecasting.checkpoint import resolve_forecaster
from kp_motion.models.checkpoint import resolve_checkpoint
from kp_motion.names import BASELINE_FORECASTERS, LEARNED_FORECASTERS, LINEAR_FORECASTERS, MODES
from kp_motion.paths import config_path


def test_face_settings_cover_every_forecaster_of_the_face_set_and_both_modes() -> None:
    settings = load_settings(config_path("evaluate-face.yaml"))
    assert settings.checkpoint == "fomm-face-128" and resolve_checkpoint(settings.checkpoint)
    assert settings.dataset.split == "test" and tuple(settings.modes) == MODES
    assert settings.block_sizes == [6, 12]
    # No frame strip: its first row would publish real frames of the shared clips.
    assert settings.strip_frames == 0
    learned = [f for f in settings.forecasters if f not in BASELINE_FORECASTERS]
    assert learned == [f"face-128/{kind}" for kind in LEARNED_FORECASTERS + LINEAR_FORECASTERS]
    assert set(BASELINE_FORECASTERS) <= set(settings.forecasters)
    assert {forecaster_label(f) for f in settings.forecasters} == set(
        LEARNED_FORECASTERS + LINEAR_FORECASTERS + BASELINE_FORECASTERS
    )
    for baseline in BASELINE_FORECASTERS:
        assert resolve_forecaster(baseline) == baseline


def test_face_frame_limit_makes_whole_blocks_for_every_k() -> None:
    """Frame 0 is the source: the other frames are whole blocks of 2k for each k, so the
    all-frames rows and the block rows cover the same driving frames."""
    settings = load_settings(config_path("evaluate-face.yaml"))
    driving = settings.dataset.max_frames - 1
    assert all(driving % (2 * k) == 0 for k in settings.block_sizes)
