"""The FOMM training loop: it learns, logs, validates, checkpoints and resumes exactly; the
learning rate is a pure function of the step; extra loss terms plug in by name."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from train_helpers import make_tiny_dataset, tiny_model_config, tiny_train_config

from kp_motion.models.checkpoint import build_models, load_model, read_checkpoint_meta
from kp_motion.training.csv_log import read_log
from kp_motion.training.fomm_trainer import (
    learning_rate_factor,
    load_training_data,
    train_fomm,
)
from kp_motion.training.full_model import FommTrainingModel
from kp_motion.training.losses import (
    Vgg19Features,
    extra_losses,
    register_loss,
    registered_losses,
    unregister_loss,
)
from kp_motion.training.state import STATE_FILE, list_checkpoints, read_training_state

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


def _train(dataset_root, out_dir, resume=None, **changes):
    settings = tiny_train_config(**changes)
    model_config = tiny_model_config()
    data = load_training_data(dataset_root, settings, model_config, progress=False)
    return train_fomm(
        settings, data, out_dir, model_config=model_config, resume=resume, show_progress=False
    )


def _fixed_batch_losses(model: FommTrainingModel, batch: dict) -> dict[str, float]:
    """Loss terms on one batch, eval-mode BatchNorm and a fixed equivariance warp."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(123)
        model.eval()
        losses, _ = model(batch["source"], batch["driving"])
    return {name: value.item() for name, value in losses.items()}


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(dataset_root, tmp_path):
    settings = tiny_train_config(epochs=6)
    settings = dataclasses.replace(
        settings,
        optimizer=dataclasses.replace(settings.optimizer, lr_kp_detector=1e-3, lr_generator=1e-3),
    )
    model_config = tiny_model_config()
    data = load_training_data(dataset_root, settings, model_config, progress=False)
    items = [data.train[i] for i in range(4)]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("source", "driving")}
    torch.manual_seed(settings.seed)  # the run's initial weights come from its seed
    initial = FommTrainingModel(*build_models(model_config), settings.losses, True)
    result = train_fomm(settings, data, tmp_path, model_config=model_config, show_progress=False)
    _, kp_detector, generator = load_model(result.final_model)
    trained = FommTrainingModel(kp_detector, generator, settings.losses, True)
    before, after = _fixed_batch_losses(initial, batch), _fixed_batch_losses(trained, batch)
    assert result.steps == 12 and result.epochs_completed == 6
    assert sum(after.values()) < 0.8 * sum(before.values()), (before, after)
    assert after["reconstruction_l1"] < before["reconstruction_l1"]
    # Validation L1 was logged after every epoch and went down as well.
    validation = read_log(tmp_path / "validation.csv")
    assert [int(row["epochs_completed"]) for row in validation] == [1, 2, 3, 4, 5, 6]
    assert float(validation[-1]["validation_l1"]) < float(validation[0]["validation_l1"])
    # The no-motion reference depends on the data only.
    still = {float(row["still_l1"]) for row in validation}
    assert len(still) == 1 and still.pop() > 0
    # A mean over the videos of whole counts of keypoints, at most all of them.
    for row in validation:
        in_use, videos = float(row["keypoints_in_use"]), int(row["videos"])
        assert 0 <= in_use <= model_config.num_kp
        assert in_use * videos == pytest.approx(round(in_use * videos), abs=1e-4)
    assert result.validation_l1 == pytest.approx(float(validation[-1]["validation_l1"]), 1e-5)


def test_outputs_logs_and_the_final_model(dataset_root, tmp_path):
    result = _train(dataset_root, tmp_path, keep_checkpoints=1)
    assert result.steps == 4
    log = read_log(tmp_path / "train_log.csv")
    assert [int(row["step"]) for row in log] == [1, 2, 3, 4]
    assert all(float(row["loss"]) > 0 and row["perceptual"] == "" for row in log)
    # keep_checkpoints=1: only the last epoch's checkpoint is left.
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [4]
    config, _, _ = load_model(result.final_model)
    assert config == tiny_model_config()
    meta = read_checkpoint_meta(result.final_model)
    assert meta["extra_meta"]["step"] == 4
    assert meta["extra_meta"]["validation_l1"] == pytest.approx(result.validation_l1)
    # One checkpoint dict: its position, optimiser, settings and random streams.
    state = read_training_state(result.last_checkpoint)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 2, 0)
    assert state["settings"] == meta["extra_meta"]["train_config"]
    assert set(state) >= {"optimizer", "rng", "world_size"} and "scheduler" not in state


def _weights(folder) -> dict[str, torch.Tensor]:
    _, kp_detector, generator = load_model(folder)
    modules = {"kp_detector": kp_detector, "generator": generator}
    return {
        f"{prefix}.{key}": value
        for prefix, module in modules.items()
        for key, value in module.state_dict().items()
    }


def test_resume_continues_from_the_saved_step_exactly(dataset_root, tmp_path):
    # 3 steps per epoch (4 videos x 3 repeats / batch 4); checkpoints every 2 steps.
    data_settings = dataclasses.replace(tiny_train_config().data, repeats=3)
    changes = {"epochs": 2, "checkpoint_every": 2, "data": data_settings}
    straight = _train(dataset_root, tmp_path / "straight", **changes)

    interrupted = _train(dataset_root, tmp_path / "resumed", max_steps=4, **changes)
    assert interrupted.steps == 4  # stops mid-epoch 1 (one batch into it)
    state = read_training_state(tmp_path / "resumed" / "checkpoints" / "step_00000004")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)

    result = _train(dataset_root, tmp_path / "resumed", resume=tmp_path / "resumed", **changes)
    assert result.steps == 6 and result.epochs_completed == 2
    expected, continued = _weights(straight.final_model), _weights(result.final_model)
    assert expected.keys() == continued.keys()
    for key in expected:
        assert torch.equal(continued[key], expected[key]), key
    # The log reads as one run: steps 1..6 once each, same losses as the uninterrupted run.
    resumed_log = read_log(tmp_path / "resumed" / "train_log.csv")
    straight_log = read_log(tmp_path / "straight" / "train_log.csv")
    assert [int(row["step"]) for row in resumed_log] == [1, 2, 3, 4, 5, 6]
    for mine, reference in zip(resumed_log, straight_log, strict=True):
        assert float(mine["loss"]) == pytest.approx(float(reference["loss"]), rel=1e-4)


def test_a_checkpoint_of_the_previous_trainer_resumes_through_the_migration(
    dataset_root, tmp_path
):
    """Format 1 (before 2026-12-07): an LR scheduler's state, no settings, no format."""
    _train(dataset_root, tmp_path / "run", epochs=1)
    folder = list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1]
    state = torch.load(folder / STATE_FILE, weights_only=True)
    del state["format"], state["settings"]
    state["scheduler"] = {"base_lrs": [2e-4, 2e-4], "last_epoch": 1}
    torch.save(state, folder / STATE_FILE)
    migrated = read_training_state(folder)
    assert "scheduler" not in migrated and migrated["settings"] is None
    assert migrated["step"] == 2
    result = _train(dataset_root, tmp_path / "run", resume=tmp_path / "run", epochs=2)
    assert result.steps == 4 and result.epochs_completed == 2
    torch.save({**state, "format": 7}, folder / STATE_FILE)
    with pytest.raises(ValueError, match="training state format 7 is unknown"):
        read_training_state(folder)


def test_resume_takes_changed_learning_rates_and_milestones_at_once(dataset_root, tmp_path):
    _train(dataset_root, tmp_path / "run", epochs=2)  # lr 2e-4, no drop yet
    optimizer = dataclasses.replace(
        tiny_train_config().optimizer, lr_generator=1e-3, milestones=(1, 3), gamma=0.5
    )
    _train(dataset_root, tmp_path / "run", resume=tmp_path / "run", epochs=3, optimizer=optimizer)
    # Epoch 2 is past the new first milestone: base x 0.5 for both groups, from its first step.
    rows = read_log(tmp_path / "run" / "train_log.csv")
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [float(row["lr_generator"]) for row in rows[:4]] == pytest.approx([2e-4] * 4)
    assert [float(row["lr_generator"]) for row in rows[4:]] == pytest.approx([5e-4] * 2)
    assert [float(row["lr_kp_detector"]) for row in rows[4:]] == pytest.approx([1e-4] * 2)


def test_resume_refuses_other_profiles_missing_checkpoints_and_reused_folders(
    dataset_root, tmp_path
):
    _train(dataset_root, tmp_path / "run", epochs=1)
    settings = tiny_train_config()
    other = tiny_model_config(estimate_jacobian=False)
    data = load_training_data(dataset_root, settings, other, progress=False)
    with pytest.raises(ValueError, match="differs from the requested profile"):
        train_fomm(settings, data, tmp_path / "run", model_config=other, resume=tmp_path / "run")
    with pytest.raises(ValueError, match="already holds checkpoints"):
        _train(dataset_root, tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="not found"):
        _train(dataset_root, tmp_path / "x", resume=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="neither a training checkpoint"):
        _train(dataset_root, tmp_path / "x", resume=dataset_root)


def test_too_small_a_dataset_for_the_batch_is_a_clear_error(dataset_root, tmp_path):
    with pytest.raises(ValueError, match="fewer than batch_size 64"):
        _train(dataset_root, tmp_path, batch_size=64)


def test_training_model_terms_follow_the_settings():
    torch.manual_seed(0)
    model_config = tiny_model_config(estimate_jacobian=False)
    losses = dataclasses.replace(
        tiny_train_config().losses, perceptual_weights=(1.0, 1.0, 0.0, 0.0, 1.0), mask_balance=0.0
    )
    kp_detector, generator = build_models(model_config)
    with pytest.raises(ValueError, match="no VGG19 weights were given"):
        FommTrainingModel(kp_detector, generator, losses, estimate_jacobian=False)
    model = FommTrainingModel(kp_detector, generator, losses, False, vgg=Vgg19Features())
    frames = torch.rand(2, 2, 3, 32, 32)
    terms, generated = model(frames[0], frames[1])
    # No Jacobian term for a detector without Jacobians, none for a zero weight; the
    # perceptual term is there.
    assert set(terms) == {"reconstruction_l1", "ssim", "perceptual", "equivariance_value"}
    assert generated["prediction"].shape == (2, 3, 32, 32)
    assert generated["kp_driving"].shape == (2, model_config.num_kp, 2)
    torch.stack(list(terms.values())).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
    assert all(p.grad is None for p in model.vgg.parameters())


# --------------------------------------------------------------------------- extra terms


@pytest.fixture
def registered_term():
    """A term registered for one test: the batch's "offset" target times the mean frame."""
    seen = []

    def mean_frame_times_offset(inputs):
        seen.append(inputs)
        return inputs.targets["offset"].mean() * inputs.driving.mean()

    register_loss("test_offset", mean_frame_times_offset)
    yield mean_frame_times_offset, seen
    unregister_loss("test_offset")


def test_a_registered_term_is_applied_with_its_weight(registered_term):
    term, seen = registered_term
    torch.manual_seed(0)
    base = tiny_train_config().losses
    kp_detector, generator = build_models(tiny_model_config())
    frames = torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    targets = {"offset": torch.tensor([2.0, 4.0])}
    with_term = dataclasses.replace(base, extra={"test_offset": 2.5})
    weighted = FommTrainingModel(kp_detector, generator, with_term, True)
    terms, _ = weighted(frames[0], frames[1], targets)
    assert float(terms["test_offset"]) == pytest.approx(2.5 * 3.0 * float(frames[1].mean()))
    inputs = seen[-1]
    assert inputs.kp_source["value"].shape == (2, 10, 2) and "mask" in inputs.generated
    assert inputs.estimate_jacobian
    # Weight 0 leaves it out; a registered name is not applied unless asked for.
    for extra in ({"test_offset": 0.0}, {}):
        model = FommTrainingModel(kp_detector, generator,
                                  dataclasses.replace(base, extra=extra), True)  # fmt: skip
        assert "test_offset" not in model(frames[0], frames[1], targets)[0]
    assert "test_offset" in registered_losses()
    register_loss("test_offset", term)  # the same function again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_loss("test_offset", lambda inputs: inputs.driving.sum())
    with pytest.raises(ValueError, match="not a core term"):
        register_loss("ssim", term)


def test_an_unknown_extra_term_is_a_clear_error(dataset_root, tmp_path):
    with pytest.raises(ValueError, match=r"losses.extra: unknown loss term\(s\) nope \(registered"):
        extra_losses({"nope": 1.0})
    losses = dataclasses.replace(tiny_train_config().losses, extra={"nope": 1.0})
    with pytest.raises(ValueError, match="unknown loss term"):
        FommTrainingModel(*build_models(tiny_model_config()), losses, True)
    with pytest.raises(ValueError, match="losses.extra.nope: weight must be a number >= 0"):
        dataclasses.replace(tiny_train_config().losses, extra={"nope": -1.0})


def test_a_run_logs_its_extra_terms_from_the_datasets_pair_targets(
    dataset_root, tmp_path, registered_term
):
    settings = tiny_train_config(epochs=1)
    settings = dataclasses.replace(
        settings, losses=dataclasses.replace(settings.losses, extra={"test_offset": 1.0})
    )
    model_config = tiny_model_config()

    def pair_targets(name, frame_pair, drawn):  # the second frame's index, for the term
        return {"offset": torch.tensor(float(frame_pair[1]))}

    data = load_training_data(dataset_root, settings, model_config, progress=False,
                              pair_targets=pair_targets)  # fmt: skip
    train_fomm(settings, data, tmp_path, model_config=model_config, show_progress=False)
    log = read_log(tmp_path / "train_log.csv")
    assert len(log) == 2 and all(float(row["test_offset"]) > 0 for row in log)


# --------------------------------------------------------------------------- learning rate


def _optimizer(**changes):
    return dataclasses.replace(tiny_train_config().optimizer, **changes)


def test_learning_rate_is_a_pure_function_of_the_step():
    # 10 steps per epoch, 10 epochs.
    multistep = _optimizer(schedule="multistep", milestones=(3, 6), gamma=0.5, warmup_steps=0)
    steps = (0, 29, 30, 59, 60, 99)
    assert [learning_rate_factor(s, multistep, 10, 10) for s in steps] == [1, 1, 0.5, 0.5, 0.25,
                                                                           0.25]  # fmt: skip
    cosine = _optimizer(schedule="cosine", warmup_steps=0)
    assert learning_rate_factor(0, cosine, 10, 10) == 1.0
    assert learning_rate_factor(55, cosine, 10, 10) == pytest.approx(0.5)  # epoch 5 of 10
    assert learning_rate_factor(75, cosine, 10, 10) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.7))
    )
    # A warm-up of 4 steps: (step + 1) / 5 of the schedule's value, then the schedule alone.
    warm = _optimizer(schedule="constant", warmup_steps=4)
    assert [learning_rate_factor(s, warm, 10, 10) for s in range(6)] == pytest.approx(
        [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    )
    warm_cosine = _optimizer(schedule="cosine", warmup_steps=20)
    assert learning_rate_factor(15, warm_cosine, 10, 10) == pytest.approx(
        16 / 21 * 0.5 * (1 + math.cos(math.pi * 0.1))
    )
    # Pure: the same step gives the same rate, whatever was asked before (a resumed run).
    assert [learning_rate_factor(s, warm_cosine, 10, 10) for s in (15, 3, 15)] == [
        learning_rate_factor(15, warm_cosine, 10, 10),
        learning_rate_factor(3, warm_cosine, 10, 10),
        learning_rate_factor(15, warm_cosine, 10, 10),
    ]
    with pytest.raises(ValueError, match="schedule"):
        _optimizer(schedule="linear")
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        _optimizer(warmup_steps=-1)


def test_a_resumed_run_logs_the_rates_an_uninterrupted_one_had(dataset_root, tmp_path):
    warm = _optimizer(schedule="cosine", warmup_steps=3)
    _train(dataset_root, tmp_path / "straight", epochs=3, optimizer=warm)
    _train(dataset_root, tmp_path / "resumed", epochs=3, optimizer=warm, max_steps=3)
    _train(dataset_root, tmp_path / "resumed", resume=tmp_path / "resumed", epochs=3,
           optimizer=warm)  # fmt: skip
    rates = [
        [float(row["lr_generator"]) for row in read_log(tmp_path / run / "train_log.csv")]
        for run in ("straight", "resumed")
    ]
    assert rates[0] == pytest.approx(rates[1])
    expected = [2e-4 * learning_rate_factor(step, warm, 2, 3) for step in range(6)]
    assert rates[0] == pytest.approx(expected)
