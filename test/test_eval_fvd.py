"""Fréchet distance in closed form, clip cutting, and I3D shapes and strict weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kp_motion.evaluation.fvd import (
    FVDScorer,
    feature_statistics,
    frechet_distance,
    frechet_distance_of_features,
    split_clips,
)
from kp_motion.evaluation.i3d import I3DFeatureExtractor, InceptionI3d, load_i3d

torch.set_num_threads(1)


def test_frechet_distance_of_diagonal_gaussians() -> None:
    # Diagonal covariances commute: d = |mu_a - mu_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2
    #   = (1 + 4) + (1 - 3)^2 + (2 - 1)^2 = 10.
    distance = frechet_distance(
        np.array([0.0, 1.0]), np.diag([1.0, 4.0]), np.array([1.0, 3.0]), np.diag([9.0, 1.0])
    )
    assert distance == pytest.approx(10.0, abs=1e-9)


def test_frechet_distance_full_covariance_same_shape() -> None:
    # Same covariance, shifted mean: the trace term vanishes, only |delta mu|^2 = 4 + 1 remains.
    cov = np.array([[2.0, 0.7], [0.7, 1.0]])
    distance = frechet_distance(np.zeros(2), cov, np.array([2.0, -1.0]), cov)
    assert distance == pytest.approx(5.0, abs=1e-8)


def test_frechet_distance_of_samples_is_zero_for_itself_and_handles_few_samples() -> None:
    rng = np.random.default_rng(0)
    few = rng.normal(size=(4, 50))  # rank-deficient covariance: needs the careful path
    assert frechet_distance_of_features(few, few) == pytest.approx(0.0, abs=1e-6)
    other = rng.normal(loc=1.0, size=(4, 50))
    assert np.isfinite(frechet_distance_of_features(few, other))
    # A single sample has zero covariance: only the mean term remains.
    mean, cov = feature_statistics(np.ones((1, 3)))
    assert np.allclose(mean, 1.0) and np.allclose(cov, 0.0)
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


@pytest.mark.parametrize("samples_a, samples_b, dimensions", [(3, 5, 40), (2, 2, 150), (30, 40, 8)])
def test_sample_formula_matches_the_matrix_square_root(samples_a, samples_b, dimensions) -> None:
    # Fewer samples than dimensions takes the low-rank (nuclear norm) path; compare it with the
    # statistics + sqrtm path on the same samples.
    rng = np.random.default_rng(samples_a)
    a = rng.normal(size=(samples_a, dimensions))
    b = rng.normal(loc=0.3, scale=1.5, size=(samples_b, dimensions))
    direct = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance_of_features(a, b) == pytest.approx(direct, rel=1e-5)


def test_split_clips() -> None:
    video = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 3, 2, 2)
    clips = split_clips(video, clip_length=4, clip_stride=3)
    assert clips.shape == (3, 4, 3, 2, 2)  # starts 0, 3, 6
    assert clips[:, 0, 0, 0, 0].tolist() == [0.0, 3.0, 6.0]
    assert split_clips(video[:3], 4, 3).shape == (1, 3, 3, 2, 2)


@pytest.fixture(scope="module")
def random_i3d() -> InceptionI3d:
    torch.manual_seed(0)
    return InceptionI3d().eval()


def test_i3d_parameter_names_and_shapes(random_i3d: InceptionI3d) -> None:
    state = random_i3d.state_dict()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_3b.b0.conv3d.weight"].shape == (64, 192, 1, 1, 1)
    assert state["Mixed_5c.b1b.conv3d.weight"].shape == (384, 192, 3, 3, 3)
    assert "Mixed_4f.b3b.bn.running_mean" in state
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert state["logits.conv3d.bias"].shape == (400,)
    assert not any(".b3a." in key for key in state)  # the pooling branch has no parameters


def test_i3d_feature_shapes_on_a_tiny_clip(random_i3d: InceptionI3d) -> None:
    extractor = I3DFeatureExtractor(random_i3d, feature="logits", input_size=32, batch_size=2)
    clips = torch.rand(3, 8, 3, 20, 24)
    prepared = extractor.preprocess(clips)
    assert prepared.shape == (3, 3, 8, 32, 32)
    assert prepared.min() >= -1 and prepared.max() <= 1
    assert extractor(clips).shape == (3, 400)
    pre_logits = I3DFeatureExtractor(random_i3d, feature="pre_logits", input_size=32)
    features = pre_logits(clips[:1])
    assert features.shape == (1, 1024) and features.dtype == torch.float64
    scorer = FVDScorer(extractor, clip_length=4, clip_stride=4)
    video = torch.rand(8, 3, 16, 16)
    reference_features = scorer.features(video)
    assert reference_features.shape == (2, 400)
    assert scorer.distance(reference_features, reference_features) == pytest.approx(0, abs=1e-6)


def test_i3d_loading_round_trip_and_strict_errors(random_i3d: InceptionI3d, tmp_path) -> None:
    state = random_i3d.state_dict()
    good = tmp_path / "i3d.pt"
    # Old checkpoints have no num_batches_tracked buffers: they must still load.
    torch.save({k: v for k, v in state.items() if "num_batches_tracked" not in k}, good)
    loaded = load_i3d(good)
    assert torch.equal(
        loaded.state_dict()["Mixed_4c.b2b.conv3d.weight"], state["Mixed_4c.b2b.conv3d.weight"]
    )

    with pytest.raises(FileNotFoundError, match="I3D weights"):
        load_i3d(tmp_path / "absent.pt")
    missing = dict(state)
    del missing["Mixed_3b.b0.conv3d.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="1 missing: Mixed_3b.b0.conv3d.weight"):
        load_i3d(tmp_path / "missing.pt")
    extra = dict(state, **{"Mixed_9z.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="unexpected: Mixed_9z.weight"):
        load_i3d(tmp_path / "extra.pt")
    reshaped = dict(state, **{"Conv3d_2b_1x1.conv3d.weight": torch.zeros(64, 64, 1, 1, 2)})
    torch.save(reshaped, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="Conv3d_2b_1x1.conv3d.weight"):
        load_i3d(tmp_path / "shape.pt")
    charades = dict(
        state,
        **{
            "logits.conv3d.weight": torch.zeros(157, 1024, 1, 1, 1),
            "logits.conv3d.bias": torch.zeros(157),
        },
    )
    torch.save(charades, tmp_path / "charades.pt")
    with pytest.raises(ValueError, match="Kinetics-400"):
        load_i3d(tmp_path / "charades.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_i3d(tmp_path / "junk.pt")
