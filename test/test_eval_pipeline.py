"""The evaluation protocol's indexing on tiny inputs, with a fake renderer whose output frame is
filled with the first keypoint's x value, so every error can be computed by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kp_motion.evaluation.pipeline import (
    EvalModels,
    Evaluator,
    Task,
    compared_length,
    transfer_pairs,
)
from kp_motion.evaluation.report import (
    EvaluationResult,
    markdown_report,
    metric_table,
    still_source_warnings,
)
from kp_motion.evaluation.settings import load_settings
from kp_motion.forecasting.baselines import (
    ConstantVelocityForecaster,
    HoldLastForecaster,
    rest_frame,
)

torch.set_num_threads(1)
SIZE = 12


class FillAnimator:
    """Renders a frame filled with kp x0: the image shows which keypoints drove it."""

    device = torch.device("cpu")

    def set_source(self, source: torch.Tensor) -> None:
        self.source = source

    def set_driving_reference(self, keypoints: dict) -> None:
        self.initial = keypoints

    def render(self, keypoints: dict) -> dict[str, torch.Tensor]:
        first_x = keypoints["value"][:, 0, 0].float()  # one value per frame of the batch
        return {"prediction": first_x[:, None, None, None].expand(-1, 3, SIZE, SIZE).clone()}


class FillEvaluator(Evaluator):
    def animator(self, motion: str) -> FillAnimator:
        return FillAnimator()


def _driving_values(frames: int) -> np.ndarray:
    values = np.tile(rest_frame(), (frames, 1))
    values[:, 0] = np.arange(frames) / 10  # x0 of row r is r / 10
    return values


def _evaluator(block_sizes: list[int], strip_frames: int = 3) -> FillEvaluator:
    settings = dataclasses.replace(
        load_settings(), block_sizes=block_sizes, strip_frames=strip_frames)
    forecasters = {
        "hold-last": HoldLastForecaster(),
        "constant-velocity": ConstantVelocityForecaster(),
    }
    models = EvalModels(None, None, None, "test", forecasters)
    return FillEvaluator(settings, models, fvd=None, reset_per_block=True)


def _transfer_task(frames: int) -> Task:
    return Task("transfer", "a->b", torch.zeros(1, 3, SIZE, SIZE), _driving_values(frames),
                None, "relative", 25.0)


def test_strip_frames_zero_draws_no_frame_strip() -> None:
    # The face evaluation sets 0: a strip's first row would show the real driving frames.
    for strip_frames, strips in ((3, 1), (0, 0)):
        evaluator = _evaluator([2], strip_frames)
        evaluator.run_task(_transfer_task(9), codec_video=False)
        assert len(evaluator.strips) == strips


def test_compared_length_and_pairs() -> None:
    assert compared_length(9, 2) == 8  # blocks start at 0 and 4; 8 is left alone
    assert compared_length(11, 3) == 6
    assert compared_length(5, 3) == 0
    pairs = transfer_pairs(5, seed=3)
    assert sorted(d for d, _ in pairs) == list(range(5))  # each video drives once
    assert sorted(s for _, s in pairs) == list(range(5))  # and gives its source once
    assert all(d != s for d, s in pairs)
    assert pairs == transfer_pairs(5, seed=3) and transfer_pairs(1, 0) == []


def test_transfer_mode_errors_by_hand() -> None:
    evaluator = _evaluator([2])
    task = Task(
        "transfer",
        "a->b",
        torch.zeros(1, 3, SIZE, SIZE),
        _driving_values(9),
        None,
        "relative",
        25.0,
    )
    evaluator.run_task(task, codec_video=False)
    curves = evaluator.accumulator.per_frame_mse()["transfer"][2]
    # Predicted rows 2, 3 and 6, 7; hold-last repeats rows 1 and 5: errors 0.1^2 and 0.2^2.
    assert curves["hold-last"] == pytest.approx([0, 0, 0.01, 0.04, 0, 0, 0.01, 0.04])
    # Constant velocity continues the straight line exactly.
    assert curves["constant-velocity"] == pytest.approx([0.0] * 8, abs=1e-12)
    records = {r.model: r for r in evaluator.accumulator.records()}
    assert set(records) == {"hold-last", "constant-velocity"}  # no FOMM-only: it is the reference
    assert records["hold-last"].mse == pytest.approx(0.1 / 8)
    assert records["hold-last"].frames == 8
    # Keypoint MSE: only x0 is wrong, by 0.1, 0.2, 0.1, 0.2, over 60 values.
    assert records["hold-last"].kp_mse == pytest.approx(0.1 / 4 / 60)
    strip = evaluator.strips[0]
    assert strip.frame_indices == [1, 2, 3] and strip.predicted == [False, True, True]
    assert strip.rows["hold-last"][2].mean() == pytest.approx(0.1 * 255, abs=0.5)


def test_reconstruction_mode_against_the_real_frames() -> None:
    evaluator = _evaluator([2, 3])
    real = np.zeros((9, SIZE, SIZE, 3), np.uint8)  # the real video is black
    task = Task(
        "reconstruction",
        "v",
        torch.full((1, 3, SIZE, SIZE), 0.25),  # the renderer here ignores it
        _driving_values(9),
        real,
        "absolute",
        25.0,
    )
    evaluator.run_task(task, codec_video=False)
    records = {(r.k, r.model): r for r in evaluator.accumulator.records()}
    squares = (np.arange(9) / 10) ** 2
    # FOMM only over every driving frame, and over the 8 (k=2) or 6 (k=3) compared frames.
    assert records[(None, "fomm-only")].mse == pytest.approx(squares.mean())
    assert records[(2, "fomm-only")].mse == pytest.approx(squares[:8].mean())
    assert records[(3, "fomm-only")].mse == pytest.approx(squares[:6].mean())
    # The still source (0.25 everywhere against black), over every frame and each k's frames.
    assert records[(None, "still-source")].mse == pytest.approx(0.0625)
    assert records[(3, "still-source")].mse == pytest.approx(0.0625)
    for k in (2, 3):  # every row of a k on the same frames
        assert {r.frames for (rk, _), r in records.items() if rk == k} == {2 * k * (8 // (2 * k))}
    # k=3, hold-last: rows 3, 4, 5 show row 2's value 0.2.
    expected = np.concatenate([squares[:3], [0.04] * 3]).mean()
    assert records[(3, "hold-last")].mse == pytest.approx(expected)
    assert records[(3, "hold-last")].psnr == pytest.approx(10 * np.log10(1 / expected), rel=1e-5)


def _reconstruction_result(first_x: np.ndarray, k: int) -> EvaluationResult:
    """Reconstruction of a black video whose driving frame r renders as first_x[r]; the source
    (the still source) is 0.25 everywhere, MSE 0.0625."""
    evaluator = _evaluator([k])
    values = _driving_values(len(first_x))
    values[:, 0] = first_x
    task = Task("reconstruction", "v", torch.full((1, 3, SIZE, SIZE), 0.25), values,
                np.zeros((len(first_x), SIZE, SIZE, 3), np.uint8), "absolute", 25.0)  # fmt: skip
    evaluator.run_task(task, codec_video=False)
    records = evaluator.accumulator.records()
    return EvaluationResult(records, {}, [], [], "n/a", {}, {}, ["v"])


def test_fomm_only_is_compared_on_the_block_frames_not_on_every_frame() -> None:
    # Good renders (0.1 off) on the 6 frames k = 3 covers, bad ones (0.9 off) on the 3 after.
    result = _reconstruction_result(np.array([0.1] * 6 + [0.9] * 3), k=3)
    assert result.record("reconstruction", None, "fomm-only").mse == pytest.approx(0.83 / 3)
    table = metric_table(result, "reconstruction", "mse")
    assert table[0] == "| (input, output) frames | FOMM only | still source | hold-last | " \
                       "constant-velocity |"
    # On the blocks' frames every column is 0.01 off (hold-last repeats 0.1): 0.01 in all.
    assert table[2] == "| (3, 3) | 0.0100 | 0.0625 | 0.0100 | 0.0100 |"
    # Over every frame FOMM loses to the still source; on the compared frames it does not.
    assert still_source_warnings(result) == [
        "reconstruction, every driving frame: FOMM only loses to the still source "
        "(PSNR 5.58 dB < 12.04 dB on the same 9 frames)"
    ]


def test_models_worse_than_the_still_source_are_warned_in_the_report() -> None:
    result = _reconstruction_result(np.full(9, 0.5), k=3)  # 0.5 off: MSE 0.25 > 0.0625
    warnings = still_source_warnings(result)
    assert len(warnings) == 4  # FOMM only over every frame and at k = 3, both baselines at 3
    assert "reconstruction, k = 3: hold-last loses to the still source (PSNR 6.02 dB < " \
           "12.04 dB on the same 6 frames)" in warnings
    markdown = markdown_report(result, [])
    assert "## Warning: worse than the still source" in markdown
    assert all(warning in markdown for warning in warnings)
    assert "Warning" not in markdown_report(_reconstruction_result(np.zeros(9), 3), [])


def test_too_short_videos_are_noted_not_scored() -> None:
    evaluator = _evaluator([6])
    task = Task(
        "transfer",
        "short",
        torch.zeros(1, 3, SIZE, SIZE),
        _driving_values(7),
        None,
        "relative",
        25.0,
    )
    evaluator.run_task(task, codec_video=False)
    assert not evaluator.accumulator.scores
    assert "too short for k=6" in evaluator.notes[0]


def test_dataset_root_videos_are_read_resized_and_capped(tmp_path) -> None:
    from kp_motion.data.video_io import write_video
    from kp_motion.evaluation.pipeline import dataset_videos

    (tmp_path / "test").mkdir()
    for name, level in (("b_video", 200), ("a_video", 50)):
        write_video(tmp_path / "test" / name, np.full((5, 20, 24, 3), level, np.uint8), fps=10)
    settings = load_settings()
    dataset = dataclasses.replace(settings.dataset, source=str(tmp_path), max_frames=4)
    settings = dataclasses.replace(settings, dataset=dataset)
    videos = dataset_videos(settings, (16, 16), progress=False)
    assert [v.name for v in videos] == ["a_video", "b_video"]
    assert videos[0].frames.shape == (4, 16, 16, 3) and videos[0].frames.dtype == np.uint8
    assert int(videos[1].frames.mean()) == 200
    capped = dataclasses.replace(settings, dataset=dataclasses.replace(dataset, max_videos=1))
    assert len(dataset_videos(capped, (16, 16), progress=False)) == 1
