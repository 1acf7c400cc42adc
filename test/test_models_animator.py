"""Animator: source caching, relative/absolute driving, Keypoint60 conversions, overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kp_motion.models import Animator, build_models, load_profile
from kp_motion.models.animator import draw_keypoints, keypoints_from_values, keypoints_to_values
from kp_motion.models.model_config import with_widths

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    config = with_widths(
        load_profile("compact-64"),
        kp_detector={"block_expansion": 8, "max_features": 32},
        dense_motion={"block_expansion": 8, "max_features": 32},
        generator={"block_expansion": 8, "max_features": 32, "num_bottleneck_blocks": 2},
    )
    torch.manual_seed(11)
    kp_detector, generator = build_models(config)
    with torch.no_grad():
        # Non-trivial Jacobians, so that the relative-Jacobian path is exercised.
        kp_detector.jacobian.weight.normal_(0.0, 0.01)
    return config, kp_detector.eval(), generator.eval()


def driving_frames(count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(12)
    return torch.rand(count, 3, 64, 64, generator=generator)


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_cached_rendering_equals_uncached(setup, mode):
    config, kp_detector, generator = setup
    animator = Animator(kp_detector, generator, config, mode=mode, adapt_movement_scale=True)
    animator.set_source(torch.rand(1, 3, 64, 64))
    for frame in driving_frames(3):
        kp_driving = animator.detect(frame)
        cached = animator.render(kp_driving, full_outputs=True)
        # Uncached: the plain generator, recomputing everything from the source image.
        kp_norm = animator.normalized(kp_driving)
        with torch.no_grad():
            uncached = generator(animator.source, animator.kp_source, kp_norm)
        for name in ("prediction", "deformed", "mask", "occlusion_map"):
            assert torch.allclose(cached[name], uncached[name], atol=1e-6), name
        assert torch.allclose(
            animator.render_uncached(kp_driving)["prediction"], cached["prediction"], atol=1e-6
        )


def test_relative_motion_starts_at_the_source_keypoints(setup):
    config, kp_detector, generator = setup
    animator = Animator(kp_detector, generator, config, mode="relative")
    animator.set_source(torch.rand(1, 3, 64, 64))
    first, second = driving_frames(2)
    kp_first = animator.detect(first)
    kp_norm = animator.normalized(kp_first)  # the first driving frame becomes the reference
    assert torch.allclose(kp_norm["value"], animator.kp_source["value"])
    assert torch.allclose(kp_norm["jacobian"], animator.kp_source["jacobian"], atol=1e-5)
    kp_second = animator.detect(second)
    moved = animator.normalized(kp_second)["value"]
    displacement = kp_second["value"] - kp_first["value"]
    assert torch.allclose(moved, animator.kp_source["value"] + displacement, atol=1e-6)
    animator.reset_driving()  # a new stream: its first frame is the new reference
    assert torch.allclose(animator.normalized(kp_second)["value"], animator.kp_source["value"])


def test_animator_refuses_frames_of_another_size(setup):
    config, kp_detector, generator = setup
    animator = Animator(kp_detector, generator, config)
    with pytest.raises(ValueError, match="set_source"):
        animator.render({"value": torch.zeros(1, 10, 2), "jacobian": torch.zeros(1, 10, 2, 2)})
    with pytest.raises(ValueError, match="compact-64"):
        animator.set_source(torch.rand(1, 3, 65, 64))


def test_guard_counts_reach_the_animator(setup):
    config, kp_detector, generator = setup
    animator = Animator(kp_detector, generator, config, mode="absolute")
    animator.set_source(torch.rand(1, 3, 64, 64))
    before = animator.guard_counts()["jacobians_corrected"]
    broken = animator.detect(driving_frames(1))
    broken["jacobian"][0, :3] = float("nan")
    prediction = animator.render(broken)["prediction"]
    assert torch.isfinite(prediction).all()
    assert animator.guard_counts()["jacobians_corrected"] == before + 3


def test_keypoint60_values_round_trip():
    values = np.arange(60, dtype=np.float32) / 60.0
    kp = keypoints_from_values(values)
    assert kp["value"].shape == (1, 10, 2) and kp["jacobian"].shape == (1, 10, 2, 2)
    assert kp["value"][0, 1].tolist() == pytest.approx([2 / 60, 3 / 60])
    assert kp["jacobian"][0, 0].flatten().tolist() == pytest.approx([20 / 60, 21 / 60, 22 / 60,
                                                                      23 / 60])  # fmt: skip
    np.testing.assert_array_equal(keypoints_to_values(kp)[0], values)


def test_draw_keypoints_marks_the_keypoint_pixels():
    image = np.zeros((33, 65, 3), np.uint8)
    drawn = draw_keypoints(image, np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]), radius=1)
    assert drawn[0, 0].any() and drawn[32, 64].any() and drawn[16, 32].any()
    assert not drawn[5, 50].any()
    assert not image.any()  # the input is left untouched


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_one_cached_source_renders_a_batch_of_driving_frames(setup, mode):
    config, kp_detector, generator = setup
    animator = Animator(kp_detector, generator, config, mode=mode)
    animator.set_source(torch.rand(1, 3, 64, 64))
    kp_batch = animator.detect(driving_frames(3))
    batched = animator.render(kp_batch, full_outputs=True)
    assert batched["prediction"].shape == (3, 3, 64, 64)
    for index in range(3):  # frame by frame, with the same reference (the batch's first)
        single = {name: value[index : index + 1] for name, value in kp_batch.items()}
        one = animator.render(single, full_outputs=True)
        for name in ("prediction", "deformed", "occlusion_map"):
            assert torch.allclose(batched[name][index], one[name][0], atol=1e-5), name
