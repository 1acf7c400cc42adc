"""FOMM modules: blocks, shapes, first-order motion arithmetic, identity warp, Jacobian guard."""

from __future__ import annotations

import math

import pytest
import torch

from kp_motion.models import build_models, load_profile
from kp_motion.models.blocks import (
    AntiAliasDownsample,
    keypoints_to_gaussians,
    make_coordinate_grid,
)
from kp_motion.models.model_config import shipped_profiles, with_widths

torch.set_num_threads(1)

SIZE = 64


@pytest.fixture(scope="module")
def config():
    # The compact profile at even smaller widths: same structure, faster tests.
    return with_widths(
        load_profile("compact-64"),
        kp_detector={"block_expansion": 8, "max_features": 32},
        dense_motion={"block_expansion": 8, "max_features": 32},
        generator={"block_expansion": 8, "max_features": 32, "num_bottleneck_blocks": 1},
    )


@pytest.fixture(scope="module")
def models(config):
    torch.manual_seed(0)
    kp_detector, generator = build_models(config)
    return kp_detector.eval(), generator.eval()


def random_keypoints(batch: int, num_kp: int, seed: int) -> dict[str, torch.Tensor]:
    """Positions inside the frame and well-conditioned Jacobians near the identity."""
    generator = torch.Generator().manual_seed(seed)
    positions = torch.rand(batch, num_kp, 2, generator=generator) * 1.6 - 0.8
    jacobians = torch.eye(2) + 0.3 * torch.randn(batch, num_kp, 2, 2, generator=generator)
    return {"value": positions, "jacobian": jacobians}


def test_shipped_profiles_load_and_keep_ten_keypoints():
    names = shipped_profiles()
    assert {"vox-256", "mgif-256", "bair-256", "compact-64"} <= set(names)
    for name in names:
        assert load_profile(name).num_kp == 10
    assert load_profile("mgif-256").kp_detector.single_jacobian_map
    assert not load_profile("vox-256").kp_detector.single_jacobian_map


def test_profile_with_impossible_sizes_is_refused():
    with pytest.raises(ValueError, match="multiple of"):
        with_widths(load_profile("compact-64"), generator={"num_down_blocks": 7})


def test_coordinate_grid_spans_pixel_centres():
    grid = make_coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert torch.allclose(grid[0, :, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.allclose(grid[:, 0, 1], torch.tensor([-1.0, 0.0, 1.0]))


def test_gaussian_heatmap_peaks_at_keypoint():
    heatmaps = keypoints_to_gaussians(torch.tensor([[[0.5, -1.0]]]), 5, 5, variance=0.01)
    assert heatmaps.shape == (1, 1, 5, 5)
    assert heatmaps[0, 0, 0, 3] == pytest.approx(1.0)  # x=0.5 -> column 3, y=-1 -> row 0
    # One pixel away (0.5 in [-1, 1] units): exp(-0.5 * 0.25 / 0.01).
    assert heatmaps[0, 0, 0, 2] == pytest.approx(math.exp(-12.5), rel=1e-5)


def test_anti_alias_downsample_keeps_a_flat_image_flat():
    down = AntiAliasDownsample(channels=3, scale=0.25)
    assert down.weight.shape == (3, 1, 13, 13)  # sigma 1.5 -> 2 * round(6) + 1 taps
    assert down.weight[0].sum() == pytest.approx(1.0, abs=1e-6)
    flat = torch.full((1, 3, 64, 64), 0.7)
    small = down(flat)
    assert small.shape == (1, 3, 16, 16)
    # Zero padding darkens the border only; the inside keeps its value.
    assert torch.allclose(small[..., 2:-2, 2:-2], torch.full_like(small[..., 2:-2, 2:-2], 0.7))


def test_output_shapes(config, models):
    kp_detector, generator = models
    frames = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        detected = kp_detector(frames)
        outputs = generator(frames, detected, random_keypoints(2, 10, seed=1))
    assert detected["value"].shape == (2, 10, 2)
    assert detected["jacobian"].shape == (2, 10, 2, 2)
    assert detected["value"].abs().max() <= 1.0
    assert outputs["prediction"].shape == (2, 3, SIZE, SIZE)
    assert outputs["prediction"].min() >= 0.0 and outputs["prediction"].max() <= 1.0
    assert outputs["mask"].shape == (2, 11, 32, 32)  # K + 1 motions at the dense-motion scale
    assert torch.allclose(outputs["mask"].sum(1), torch.ones(2, 32, 32), atol=1e-5)
    assert outputs["occlusion_map"].shape == (2, 1, 32, 32)
    assert outputs["deformed"].shape == (2, 3, SIZE, SIZE)
    assert outputs["sparse_deformed"].shape == (2, 11, 3, 32, 32)


def test_untrained_jacobian_head_gives_identity(models):
    kp_detector, _ = models
    with torch.no_grad():
        jacobians = kp_detector(torch.rand(1, 3, SIZE, SIZE))["jacobian"]
    assert torch.allclose(jacobians, torch.eye(2).expand(1, 10, 2, 2), atol=1e-6)


def test_single_jacobian_map_shares_one_head(config):
    single = with_widths(config, kp_detector={"single_jacobian_map": True})
    kp_detector, _ = build_models(single)
    assert kp_detector.jacobian.weight.shape[0] == 4
    with torch.no_grad():
        kp_detector.jacobian.bias.copy_(torch.tensor([2.0, 0.5, 0.0, 1.0]))
        jacobians = kp_detector.eval()(torch.rand(1, 3, SIZE, SIZE))["jacobian"]
    # The heatmaps sum to 1, so a constant map gives every keypoint the same Jacobian.
    expected = torch.tensor([[2.0, 0.5], [0.0, 1.0]]).expand(1, 10, 2, 2)
    assert torch.allclose(jacobians, expected, atol=1e-5)


def test_identity_motion_returns_the_source(models):
    """kp_driving == kp_source: every sparse motion, hence the dense flow, is the identity."""
    _, generator = models
    source = torch.rand(2, 3, SIZE, SIZE)
    keypoints = random_keypoints(2, 10, seed=2)
    dense = generator.dense_motion_network
    with torch.no_grad():
        prepared = dense.prepare_source(source, keypoints)
        motion = dense.predict(prepared, keypoints)
        identity = make_coordinate_grid(32, 32)
        assert torch.allclose(motion["deformation"], identity.expand(2, 32, 32, 2), atol=1e-6)
        for index in range(11):  # each motion's deformed copy is the (downscaled) source
            assert torch.allclose(motion["sparse_deformed"][:, index], prepared.image, atol=1e-5)
        warped = generator.warp(source, motion["deformation"])
    assert torch.allclose(warped, source, atol=1e-4)


def _render(generator, source: torch.Tensor, seed: int) -> torch.Tensor:
    kp_source, kp_driving = random_keypoints(2, 10, seed), random_keypoints(2, 10, seed + 1)
    with torch.no_grad():
        return generator(source, kp_source, kp_driving)["prediction"]


def _occlusion_fixed(generator, logit: float):
    """Make the occlusion map the constant sigmoid(logit) (0 at -60, 1 at +60 in float32)."""
    head = generator.dense_motion_network.occlusion
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(logit)
    return generator.eval()


@pytest.mark.parametrize(
    ("warped_skips", "output_blend"), [(False, False), (True, False), (True, True)]
)
def test_fully_occluded_source_cannot_reach_the_output(config, warped_skips, output_blend):
    """Every path from the source to the image, warped skips and output blend included, goes
    through the occlusion map: at occlusion 0 the rendering is the same for any source."""
    torch.manual_seed(0)
    switches = {"warped_skips": warped_skips, "output_blend": output_blend}
    _, generator = build_models(with_widths(config, generator=switches))
    generator = _occlusion_fixed(generator, -60.0)
    # The flow still depends on the source, but whatever it warps is multiplied by zero.
    first, second = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    assert torch.allclose(_render(generator, first, 3), _render(generator, second, 3), atol=1e-6)


def test_warped_skips_add_no_weights_but_change_the_rendering(config):
    torch.manual_seed(0)
    _, reference = build_models(with_widths(config, generator={"warped_skips": False}))
    _, skipping = build_models(with_widths(config, generator={"warped_skips": True}))
    reference_state, skipping_state = reference.state_dict(), skipping.state_dict()
    assert {k: v.shape for k, v in reference_state.items()} == {
        k: v.shape for k, v in skipping_state.items()
    }
    skipping.load_state_dict(reference_state)
    source = torch.rand(2, 3, SIZE, SIZE)
    with_skips, without = _render(skipping.eval(), source, 5), _render(reference.eval(), source, 5)
    assert with_skips.shape == without.shape
    assert (with_skips - without).abs().max() > 1e-3


def test_output_blend_mixes_warped_source_and_decoder_by_the_occlusion_map(config):
    """prediction = occlusion * source warped by the flow + (1 - occlusion) * decoded image,
    with the same weights as the generator without the blend (which adds none)."""
    torch.manual_seed(0)
    _, plain = build_models(with_widths(config, generator={"output_blend": False}))
    _, blending = build_models(with_widths(config, generator={"output_blend": True}))
    blending.load_state_dict(plain.state_dict())  # strict: no new weights
    plain.eval(), blending.eval()
    source = torch.rand(2, 3, SIZE, SIZE)
    kp_source, kp_driving = random_keypoints(2, 10, 7), random_keypoints(2, 10, 8)
    with torch.no_grad():
        reference = plain(source, kp_source, kp_driving)
        blended = blending(source, kp_source, kp_driving)
        cheap = blending(source, kp_source, kp_driving, full_outputs=False)
    visible = torch.nn.functional.interpolate(
        reference["occlusion_map"], size=(SIZE, SIZE), mode="bilinear", align_corners=True
    )
    expected = visible * reference["deformed"] + (1 - visible) * reference["prediction"]
    assert torch.allclose(blended["prediction"], expected, atol=1e-6)
    assert torch.allclose(cheap["prediction"], expected, atol=1e-6)
    assert "deformed" not in cheap
    assert (blended["prediction"] - reference["prediction"]).abs().max() > 1e-3


@pytest.mark.parametrize(("logit", "copies_the_source"), [(60.0, True), (-60.0, False)])
def test_output_blend_copies_a_fully_visible_source_and_ignores_an_occluded_one(
    config, logit, copies_the_source
):
    torch.manual_seed(0)
    _, generator = build_models(with_widths(config, generator={"output_blend": True}))
    generator = _occlusion_fixed(generator, logit)
    source = torch.rand(2, 3, SIZE, SIZE)
    keypoints = random_keypoints(2, 10, seed=4)
    with torch.no_grad():  # identity motion: the warp returns the source
        rendered = generator(source, keypoints, keypoints)["prediction"]
    assert torch.allclose(rendered, source, atol=1e-4) == copies_the_source


def test_output_blend_needs_the_occlusion_map(config):
    with pytest.raises(ValueError, match="output_blend needs generator.estimate_occlusion_map"):
        with_widths(config, generator={"output_blend": True, "estimate_occlusion_map": False})


def test_sparse_motion_is_first_order(models):
    """T_k(z) = kp_S + J_S J_D^-1 (z - kp_D), checked on hand-picked numbers."""
    _, generator = models
    dense = generator.dense_motion_network
    kp_source = {
        "value": torch.full((1, 10, 2), 0.25),
        "jacobian": torch.tensor([[2.0, 0.0], [0.0, 1.0]]).expand(1, 10, 2, 2).clone(),
    }
    kp_driving = {
        "value": torch.full((1, 10, 2), -0.5),
        "jacobian": torch.tensor([[1.0, 0.0], [0.0, 4.0]]).expand(1, 10, 2, 2).clone(),
    }
    prepared = dense.prepare_source(torch.rand(1, 3, SIZE, SIZE), kp_source)
    motions = dense.sparse_motions(prepared, kp_driving["value"], kp_driving["jacobian"])
    assert motions.shape == (1, 11, 32, 32, 2)
    assert torch.equal(motions[0, 0], prepared.grid)  # background: identity
    # Top-left pixel z = (-1, -1): z - kp_D = (-0.5, -0.5); J_S J_D^-1 = diag(2, 0.25).
    expected = torch.tensor([0.25 + 2 * -0.5, 0.25 + 0.25 * -0.5])
    assert torch.allclose(motions[0, 1:, 0, 0], expected.expand(10, 2), atol=1e-6)


def test_guard_keeps_images_finite_and_counts_corrections(config):
    torch.manual_seed(3)
    _, generator = build_models(config)
    generator.eval()
    source = torch.rand(1, 3, SIZE, SIZE)
    kp_source = random_keypoints(1, 10, seed=4)
    kp_driving = random_keypoints(1, 10, seed=5)
    kp_driving["jacobian"][0, 0] = 0.0  # singular
    kp_driving["jacobian"][0, 1] = float("nan")
    kp_driving["jacobian"][0, 2] = torch.tensor([[1e-9, 0.0], [0.0, 1.0]])  # near-singular
    kp_driving["jacobian"][0, 3] = float("inf")
    kp_driving["value"][0, 4] = float("nan")
    with torch.no_grad():
        outputs = generator(source, kp_source, kp_driving)
    for name in ("prediction", "deformed", "mask", "occlusion_map"):
        assert torch.isfinite(outputs[name]).all(), name
    assert generator.guard.as_dict() == {"jacobians_corrected": 4, "positions_corrected": 1}


def test_training_gradients_are_finite_at_identity_jacobians(config):
    """The guard's SVD must stay out of backprop (its gradient is inf for equal singular
    values, and an untrained detector outputs exactly the identity)."""
    torch.manual_seed(6)
    kp_detector, generator = build_models(config)
    frames = torch.rand(2, 3, SIZE, SIZE)
    kp_source = kp_detector(frames)
    kp_driving = kp_detector(frames.flip(-1))
    prediction = generator(frames, kp_source, kp_driving)["prediction"]
    (prediction - frames.flip(-1)).abs().mean().backward()
    for module in (kp_detector, generator):
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert kp_detector.jacobian.weight.grad.abs().sum() > 0


def test_wrong_input_shape_is_a_clear_error(models):
    kp_detector, generator = models
    with pytest.raises(ValueError, match="expects"):
        kp_detector(torch.rand(1, 4, SIZE, SIZE))
    with pytest.raises(ValueError, match="expects"):
        generator(torch.rand(3, SIZE, SIZE), random_keypoints(1, 10, 0), random_keypoints(1, 10, 0))
