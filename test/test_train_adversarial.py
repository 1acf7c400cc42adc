"""FOMM's optional GAN: discriminator, LSGAN and feature-matching terms, training and resume,
and starting a new run from a model's weights (--init-from)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from train_helpers import make_tiny_dataset, tiny_model_config, tiny_train_config

from kp_motion.models.checkpoint import load_model, read_checkpoint_meta
from kp_motion.models.discriminator import (
    DiscriminatorOutput,
    DiscriminatorSettings,
    MultiScaleDiscriminator,
)
from kp_motion.training.adversarial import AdversarialTraining
from kp_motion.training.csv_log import read_log
from kp_motion.training.fomm_trainer import build_training_models, load_training_data, train_fomm
from kp_motion.training.losses import (
    discriminator_lsgan_loss,
    feature_matching_loss,
    generator_lsgan_loss,
    image_pyramid,
)
from kp_motion.training.state import list_checkpoints, read_training_state, restore_checkpoint

torch.set_num_threads(1)
NUM_KP = 10


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


def _discriminator_settings(**changes) -> DiscriminatorSettings:
    values = dict(
        scales=(1.0, 0.5), block_expansion=4, max_features=16, num_blocks=3, use_kp=True,
        kp_variance=0.01,
    )  # fmt: skip
    values.update(changes)
    return DiscriminatorSettings(**values)


def _gan_config(**adversarial_changes):
    settings = tiny_train_config()
    adversarial = dataclasses.replace(
        settings.adversarial, generator_gan=1.0, **adversarial_changes
    )
    return dataclasses.replace(settings, adversarial=adversarial)


def _train(dataset_root, out_dir, settings, model_config=None, **options):
    model_config = model_config or tiny_model_config()
    data = load_training_data(dataset_root, settings, model_config, progress=False)
    return train_fomm(
        settings, data, out_dir, model_config=model_config, show_progress=False, **options
    )


def _outputs(scores: list[float], features: list[float]) -> DiscriminatorOutput:
    """One scale per score: constant (1, 1, 2, 2) score maps and one constant feature map."""
    return DiscriminatorOutput(
        features={i: [torch.full((1, 2, 4, 4), f)] for i, f in enumerate(features)},
        scores={i: torch.full((1, 1, 2, 2), s) for i, s in enumerate(scores)},
    )


def test_discriminator_gives_patch_scores_per_scale_and_sees_the_keypoints():
    torch.manual_seed(0)
    settings = _discriminator_settings()
    discriminator = MultiScaleDiscriminator(3, NUM_KP, settings)
    frames = torch.rand(2, 3, 32, 32)
    keypoints = torch.rand(2, NUM_KP, 2) * 2 - 1
    output = discriminator(image_pyramid(frames, settings.scales), keypoints)
    # Three blocks halve 32 px to 4 px patches (16 px to 2 px at scale 0.5).
    assert output.scores[1.0].shape == (2, 1, 4, 4)
    assert output.scores[0.5].shape == (2, 1, 2, 2)
    assert [f.shape[1] for f in output.features[1.0]] == [4, 8, 16]
    moved = discriminator(image_pyramid(frames, settings.scales), keypoints.flip(1))
    assert not torch.allclose(moved.scores[1.0], output.scores[1.0])
    # Without keypoint conditioning, the keypoints change nothing.
    blind = MultiScaleDiscriminator(3, NUM_KP, _discriminator_settings(use_kp=False))
    first = blind(image_pyramid(frames, settings.scales), keypoints)
    second = blind(image_pyramid(frames, settings.scales), keypoints.flip(1))
    assert torch.equal(first.scores[1.0], second.scores[1.0])


def test_discriminator_settings_are_checked():
    with pytest.raises(ValueError, match="scales must be in"):
        _discriminator_settings(scales=(1.5,))
    with pytest.raises(ValueError, match="kp_variance"):
        _discriminator_settings(kp_variance=0.0)
    with pytest.raises(ValueError, match="one weight per discriminator block"):
        dataclasses.replace(tiny_train_config().adversarial, feature_matching=(1.0, 1.0))


def test_lsgan_and_feature_matching_values():
    perfect_real, perfect_fake = _outputs([1.0, 1.0], [0.5, 0.5]), _outputs([0.0, 0.0], [0.5, 0.5])
    assert discriminator_lsgan_loss(perfect_real, perfect_fake).item() == 0.0
    # A discriminator that scores everything 0.5 pays 0.25 + 0.25 at each of the two scales.
    undecided = _outputs([0.5, 0.5], [0.0, 0.0])
    assert discriminator_lsgan_loss(undecided, undecided).item() == pytest.approx(1.0)
    assert generator_lsgan_loss(perfect_fake).item() == pytest.approx(2.0)
    assert generator_lsgan_loss(perfect_real).item() == 0.0
    # Feature matching: weight x |0.5 - 0.25| per scale; the real side is a target only.
    real = _outputs([1.0, 1.0], [0.5, 0.5])
    for features in real.features.values():
        features[0].requires_grad_(True)
    generated = _outputs([0.0, 0.0], [0.25, 0.25])
    for features in generated.features.values():
        features[0].requires_grad_(True)
    matching = feature_matching_loss(real, generated, [10.0])
    assert matching.item() == pytest.approx(2 * 10 * 0.25)
    matching.backward()
    assert real.features[0][0].grad is None and generated.features[0][0].grad is not None
    assert feature_matching_loss(real, generated, [0.0]).item() == 0.0


def test_generator_terms_leave_the_discriminator_untouched_and_its_step_learns():
    torch.manual_seed(0)
    settings = dataclasses.replace(
        tiny_train_config().adversarial,
        generator_gan=1.0,
        feature_matching=(1.0, 1.0, 1.0),
        discriminator=_discriminator_settings(block_expansion=8, max_features=32),
    )
    gan = AdversarialTraining(settings, 3, NUM_KP, (0.5, 0.999), torch.device("cpu"), lambda m: m)
    gan.optimizer.param_groups[0]["lr"] = 2e-3
    real = torch.rand(4, 3, 32, 32)
    # Blurred "renderings" of noise frames. (Global statistics such as brightness or contrast
    # would not do: instance norm after the first block hides them, as in FOMM.)
    blurred = F.avg_pool2d(
        torch.rand(4, 3, 32, 32), 5, stride=1, padding=2, count_include_pad=False
    )
    generated = blurred.requires_grad_(True)
    keypoints = torch.rand(4, NUM_KP, 2) * 2 - 1
    terms = gan.generator_terms(real, generated, keypoints)
    assert set(terms) == {"generator_gan", "feature_matching"}
    torch.stack(list(terms.values())).sum().backward()
    assert generated.grad is not None and generated.grad.abs().sum() > 0
    assert all(p.grad is None for p in gan.discriminator.parameters())
    # A few discriminator steps on fixed real and generated frames tell them apart better.
    losses = []
    for _ in range(30):
        loss = gan.discriminator_loss(real, generated, keypoints)
        losses.append(loss.item())
        gan.step(loss)
    assert losses[-1] < 0.7 * losses[0], losses
    pyramid = image_pyramid(torch.cat([real, generated.detach()]), settings.discriminator.scales)
    scores = gan.discriminator(pyramid, torch.cat([keypoints] * 2)).scores[1.0]
    assert scores[:4].mean() > scores[4:].mean() + 0.08


def test_gan_training_logs_checkpoints_and_resumes_the_discriminator(
    dataset_root, tmp_path, caplog
):
    settings = _gan_config()
    result = _train(dataset_root, tmp_path, settings)
    assert result.steps == 4
    log = read_log(tmp_path / "train_log.csv")
    for row in log:
        assert float(row["generator_gan"]) > 0 and float(row["discriminator_gan"]) > 0
        assert float(row["feature_matching"]) > 0 and float(row["lr_discriminator"]) > 0
    # The discriminator learned between the checkpoints of the two epochs.
    checkpoints = list_checkpoints(tmp_path / "checkpoints")
    states = [read_training_state(folder) for _, folder in checkpoints]
    early, late = (state["adversarial"]["discriminator"] for state in states)
    assert any(not torch.equal(early[key], late[key]) for key in late)
    assert set(states[-1]["adversarial"]) == {"discriminator", "optimizer"}
    # The project checkpoint of the model stays detector + generator only.
    _, kp_detector, generator = load_model(result.final_model)
    assert kp_detector is not None and generator is not None

    # Resuming loads the saved discriminator and its optimiser.
    gan = AdversarialTraining(settings.adversarial, 3, NUM_KP, (0.5, 0.999), torch.device("cpu"),
                              lambda module: module)  # fmt: skip
    optimizer = torch.optim.Adam([{"params": kp_detector.parameters()},
                                  {"params": generator.parameters()}])  # fmt: skip
    position = restore_checkpoint(states[-1], optimizer, gan, _cpu_context(), settings.seed)
    assert (position.step, position.epoch) == (4, 2)
    for key, value in gan.discriminator.state_dict().items():
        assert torch.equal(value, late[key]), key
    with caplog.at_level("WARNING"):
        resumed = _train(dataset_root, tmp_path, dataclasses.replace(settings, epochs=3),
                         resume=tmp_path)  # fmt: skip
    assert resumed.steps == 6 and "starts from new weights" not in caplog.text


def _cpu_context():
    from kp_motion.training.distributed import setup_distributed

    return setup_distributed("cpu")


def test_gan_switched_on_when_resuming_a_reconstruction_run(dataset_root, tmp_path, caplog):
    _train(dataset_root, tmp_path, tiny_train_config())
    state = read_training_state(tmp_path / "checkpoints" / "step_00000004")
    assert "adversarial" not in state
    with caplog.at_level("WARNING"):
        resumed = _train(
            dataset_root, tmp_path, dataclasses.replace(_gan_config(), epochs=3), resume=tmp_path
        )
    assert "no discriminator: it starts from new weights" in caplog.text
    assert resumed.steps == 6
    # The discriminator's rate follows the same pure schedule from the resumed step on.
    rows = read_log(tmp_path / "train_log.csv")
    assert [float(row["lr_discriminator"]) for row in rows[4:]] == pytest.approx([2e-4] * 2)


def test_init_from_starts_a_new_run_from_a_models_weights(dataset_root, tmp_path):
    source = _train(dataset_root, tmp_path / "first", tiny_train_config()).final_model
    _, kp_detector, generator = load_model(source)
    _, started_detector, started_generator = build_training_models(
        tiny_train_config(), tiny_model_config(), source, resuming=False
    )
    for module, loaded in ((started_detector, kp_detector), (started_generator, generator)):
        for key, value in loaded.state_dict().items():
            assert torch.equal(module.state_dict()[key], value), key
    result = _train(dataset_root, tmp_path / "second", _gan_config(), init_from=source)
    assert result.steps == 4  # a new run: from step 0
    assert read_checkpoint_meta(result.final_model)["extra_meta"]["initialised_from"] == str(source)
    with pytest.raises(ValueError, match="give one of them"):
        _train(dataset_root, tmp_path / "third", tiny_train_config(),
               init_from=source, resume=tmp_path / "first")  # fmt: skip
    other = tiny_model_config(estimate_jacobian=False)  # no Jacobian head: weights differ
    with pytest.raises(ValueError, match="kp_detector does not match the model"):
        _train(dataset_root, tmp_path / "fourth", tiny_train_config(), other, init_from=source)


def test_init_from_may_change_a_weightless_setting_resume_may_not(dataset_root, tmp_path):
    first = _train(dataset_root, tmp_path / "first", tiny_train_config()).final_model
    plain = tiny_model_config()
    blending = dataclasses.replace(
        plain, generator=dataclasses.replace(plain.generator, output_blend=True)
    )
    settings = tiny_train_config()
    _, _, generator = build_training_models(settings, blending, first, resuming=False)
    assert generator.output_blend
    result = _train(dataset_root, tmp_path / "second", settings, blending, init_from=first)
    saved_config, _, generator = load_model(result.final_model)
    assert saved_config == blending and generator.output_blend
    with pytest.raises(ValueError, match=r"differs .*generator.output_blend: False -> True"):
        _train(dataset_root, tmp_path / "first", settings, blending, resume=tmp_path / "first")
