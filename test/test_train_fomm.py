"""The FOMM training loop: it learns, logs, validates, checkpoints and resumes exactly."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from train_helpers import make_tiny_dataset, tiny_model_config, tiny_train_config

from kp_motion.data.synthetic import SynthConfig, generate_dataset
from kp_motion.models.checkpoint import build_models, load_model, read_checkpoint_meta
from kp_motion.training.csv_log import read_log
from kp_motion.training.fomm_trainer import FommTrainer, load_training_data, lr_factor
from kp_motion.training.full_model import FommTrainingModel
from kp_motion.training.losses import Vgg19Features
from kp_motion.training.state import list_checkpoints, read_training_state

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


def _trainer(dataset_root, out_dir, resume=None, **changes) -> FommTrainer:
    settings = tiny_train_config(**changes)
    model_config = tiny_model_config()
    data = load_training_data(dataset_root, settings, model_config, progress=False)
    return FommTrainer(
        settings, data, out_dir, model_config=model_config, resume=resume, show_progress=False
    )


def _fixed_batch_losses(trainer: FommTrainer, batch: dict) -> dict[str, float]:
    """Loss terms on one batch, eval-mode BatchNorm and a fixed equivariance warp."""
    model = trainer.training_model
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(123)
        model.eval()
        losses, _ = model(batch["source"], batch["driving"])
        model.train()
    return {name: value.item() for name, value in losses.items()}


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(dataset_root, tmp_path):
    settings = tiny_train_config(epochs=6)
    settings = dataclasses.replace(
        settings,
        optimizer=dataclasses.replace(settings.optimizer, lr_kp_detector=1e-3, lr_generator=1e-3),
    )
    model_config = tiny_model_config()
    data = load_training_data(dataset_root, settings, model_config, progress=False)
    trainer = FommTrainer(settings, data, tmp_path, model_config=model_config, show_progress=False)
    items = [data.train[i] for i in range(4)]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("source", "driving")}
    before = _fixed_batch_losses(trainer, batch)
    result = trainer.run()
    after = _fixed_batch_losses(trainer, batch)
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
        assert 0 <= in_use <= trainer.model_config.num_kp
        assert in_use * videos == pytest.approx(round(in_use * videos), abs=1e-4)
    assert result.validation_l1 == pytest.approx(float(validation[-1]["validation_l1"]), 1e-5)


def test_outputs_logs_and_the_final_model(dataset_root, tmp_path):
    result = _trainer(dataset_root, tmp_path, keep_checkpoints=1).run()
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


def _weights(trainer: FommTrainer) -> dict[str, torch.Tensor]:
    modules = {"kp_detector": trainer.kp_detector, "generator": trainer.generator}
    return {
        f"{prefix}.{key}": value
        for prefix, module in modules.items()
        for key, value in module.state_dict().items()
    }


def test_resume_continues_from_the_saved_step_exactly(dataset_root, tmp_path):
    # 3 steps per epoch (4 videos x 3 repeats / batch 4); checkpoints every 2 steps.
    data_settings = dataclasses.replace(tiny_train_config().data, repeats=3)
    changes = {"epochs": 2, "checkpoint_every": 2, "data": data_settings}
    uninterrupted = _trainer(dataset_root, tmp_path / "straight", **changes)
    uninterrupted.run()

    interrupted = _trainer(dataset_root, tmp_path / "resumed", max_steps=4, **changes)
    assert interrupted.run().steps == 4  # stops mid-epoch 1 (one batch into it)
    state = read_training_state(tmp_path / "resumed" / "checkpoints" / "step_00000004")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)

    resumed = _trainer(dataset_root, tmp_path / "resumed", resume=tmp_path / "resumed", **changes)
    assert resumed.position.step == 4
    result = resumed.run()
    assert result.steps == 6 and result.epochs_completed == 2
    straight, continued = _weights(uninterrupted), _weights(resumed)
    assert straight.keys() == continued.keys()
    for key in straight:
        assert torch.equal(continued[key], straight[key]), key
    # The log reads as one run: steps 1..6 once each, same losses as the uninterrupted run.
    resumed_log = read_log(tmp_path / "resumed" / "train_log.csv")
    straight_log = read_log(tmp_path / "straight" / "train_log.csv")
    assert [int(row["step"]) for row in resumed_log] == [1, 2, 3, 4, 5, 6]
    for mine, reference in zip(resumed_log, straight_log, strict=True):
        assert float(mine["loss"]) == pytest.approx(float(reference["loss"]), rel=1e-4)


def test_resume_takes_changed_learning_rates_and_milestones_at_once(dataset_root, tmp_path):
    _trainer(dataset_root, tmp_path / "run", epochs=2).run()  # lr 2e-4, no drop yet
    optimizer = dataclasses.replace(
        tiny_train_config().optimizer, lr_generator=1e-3, milestones=(1, 3), gamma=0.5
    )
    resumed = _trainer(
        dataset_root, tmp_path / "run", resume=tmp_path / "run", epochs=3, optimizer=optimizer
    )
    # Epoch 2 is past the new first milestone: base x 0.5 for both groups, from the first step.
    rates = [group["lr"] for group in resumed.optimizer.param_groups]
    assert rates == pytest.approx([0.5 * optimizer.lr_kp_detector, 0.5 * 1e-3])
    resumed.run()
    first_row = read_log(tmp_path / "run" / "train_log.csv")[-2]  # the new epoch's 2 steps
    assert float(first_row["lr_generator"]) == pytest.approx(5e-4)


def test_resume_refuses_other_profiles_missing_checkpoints_and_reused_folders(
    dataset_root, tmp_path
):
    _trainer(dataset_root, tmp_path / "run", epochs=1).run()
    settings = tiny_train_config()
    other = tiny_model_config(estimate_jacobian=False)
    data = load_training_data(dataset_root, settings, other, progress=False)
    with pytest.raises(ValueError, match="differs from the requested profile"):
        FommTrainer(settings, data, tmp_path / "run", model_config=other, resume=tmp_path / "run")
    with pytest.raises(ValueError, match="already holds checkpoints"):
        _trainer(dataset_root, tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="not found"):
        _trainer(dataset_root, tmp_path / "x", resume=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="neither a training checkpoint"):
        _trainer(dataset_root, tmp_path / "x", resume=dataset_root)


def test_too_small_a_dataset_for_the_batch_is_a_clear_error(dataset_root, tmp_path):
    with pytest.raises(ValueError, match="fewer than batch_size 64"):
        _trainer(dataset_root, tmp_path, batch_size=64)


@pytest.mark.parametrize("match", ["motion", "position", "slot"])
def test_part_following_trains_on_a_synthetic_dataset_and_needs_one(dataset_root, tmp_path,
                                                                    match):
    settings = tiny_train_config()
    losses = dataclasses.replace(settings.losses, part_following=5, part_following_jacobian=1,
                                 part_following_match=match)  # fmt: skip
    settings = dataclasses.replace(settings, losses=losses)
    model_config = tiny_model_config()
    with pytest.raises(ValueError, match="part_following and .* need part poses.*kp-motion synth"):
        load_training_data(dataset_root, settings, model_config, progress=False)
    tiny = SynthConfig(seed=2, size=32, num_train=4, num_test=1, num_frames=10, format="png",
                       supersample=2)  # fmt: skip
    generate_dataset(tiny, tmp_path / "synth", progress=False)
    data = load_training_data(tmp_path / "synth", settings, model_config, progress=False)
    trainer = FommTrainer(settings, data, tmp_path / "run", model_config=model_config,
                          show_progress=False)  # fmt: skip
    trainer.run()
    log = read_log(tmp_path / "run" / "train_log.csv")
    assert len(log) == 4
    assert all(float(row[term]) > 0 for row in log
               for term in ("part_following", "part_following_jacobian"))  # fmt: skip


def test_background_mask_term_trains_and_hands_the_ground_to_the_background(tmp_path):
    """On a synthetic dataset the term is logged under its own name; descending it alone
    raises the background's mask share where no part is; it needs part poses."""
    tiny = SynthConfig(seed=2, size=32, num_train=4, num_test=1, num_frames=10, format="png",
                       supersample=2)  # fmt: skip
    generate_dataset(tiny, tmp_path / "synth", progress=False)
    settings = tiny_train_config()
    settings = dataclasses.replace(
        settings, losses=dataclasses.replace(settings.losses, background_mask=1.0)
    )
    model_config = tiny_model_config()
    data = load_training_data(tmp_path / "synth", settings, model_config, progress=False)
    FommTrainer(settings, data, tmp_path / "run", model_config=model_config,
                show_progress=False).run()  # fmt: skip
    log = read_log(tmp_path / "run" / "train_log.csv")
    assert len(log) == 4 and all(float(row["background_mask"]) > 0 for row in log)

    torch.manual_seed(0)
    kp_detector, generator = build_models(model_config)
    model = FommTrainingModel(kp_detector, generator, settings.losses, estimate_jacobian=True)
    batch = next(iter(torch.utils.data.DataLoader(data.train, batch_size=2)))
    parts = {key: batch[key] for key in ("parts_source", "parts_driving", "parts_valid")}
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    values = []
    for _ in range(15):
        terms, _ = model(batch["source"], batch["driving"], parts)
        values.append(float(terms["background_mask"].detach()))
        optimizer.zero_grad()
        terms["background_mask"].backward()
        optimizer.step()
    assert values[0] > 0.1 and values[-1] < 0.3 * values[0]
    with pytest.raises(ValueError, match="background_mask is on but the batch has no part poses"):
        model(batch["source"], batch["driving"])
    with pytest.raises(ValueError, match="background_mask_margin must be >= 0"):
        dataclasses.replace(settings.losses, background_mask_margin=-0.1)


def test_learning_rate_schedules():
    multistep = tiny_train_config(epochs=10)
    multistep = dataclasses.replace(
        multistep,
        optimizer=dataclasses.replace(multistep.optimizer, milestones=(3, 6), gamma=0.5),
    )
    assert [lr_factor(e, multistep) for e in (0, 2, 3, 5, 6, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cosine = dataclasses.replace(
        multistep, optimizer=dataclasses.replace(multistep.optimizer, schedule="cosine")
    )
    assert lr_factor(0, cosine) == 1.0 and lr_factor(5, cosine) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="schedule"):
        dataclasses.replace(multistep.optimizer, schedule="linear")


def test_training_model_terms_follow_the_settings():
    torch.manual_seed(0)
    model_config = tiny_model_config(estimate_jacobian=False)
    losses = dataclasses.replace(
        tiny_train_config().losses,
        perceptual_weights=(1.0, 1.0, 0.0, 0.0, 1.0),
        mask_balance=0.0,
        keypoint_concentration=0.5,
    )
    kp_detector, generator = build_models(model_config)
    with pytest.raises(ValueError, match="no VGG19 weights were given"):
        FommTrainingModel(kp_detector, generator, losses, estimate_jacobian=False)
    model = FommTrainingModel(kp_detector, generator, losses, False, vgg=Vgg19Features())
    frames = torch.rand(2, 2, 3, 32, 32)
    terms, generated = model(frames[0], frames[1])
    # No Jacobian term for a detector without Jacobians, none for a zero weight; the
    # perceptual and concentration terms are there.
    assert set(terms) == {
        "reconstruction_l1", "ssim", "perceptual", "equivariance_value", "keypoint_concentration"
    }  # fmt: skip
    assert generated["prediction"].shape == (2, 3, 32, 32)
    assert generated["kp_driving"].shape == (2, model_config.num_kp, 2)
    torch.stack(list(terms.values())).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
    assert all(p.grad is None for p in model.vgg.parameters())


def _descend_one_term(term: str, steps: int = 15, parts=None, **loss_changes) -> list[float]:
    """The values of one optional loss term while Adam descends it alone, on the detector
    (`parts`: the batch's part poses, for the part-following term)."""
    torch.manual_seed(0)
    losses = dataclasses.replace(tiny_train_config().losses, **loss_changes)
    kp_detector, generator = build_models(tiny_model_config())
    model = FommTrainingModel(kp_detector, generator, losses, estimate_jacobian=True)
    frames = torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(kp_detector.parameters(), lr=1e-2)
    values = []
    for _ in range(steps):
        terms, _ = model(frames[0], frames[1], parts)
        values.append(float(terms[term].detach()))
        optimizer.zero_grad()
        terms[term].backward()
        optimizer.step()
    return values


def test_keypoint_separation_term_spreads_the_keypoints():
    """The optional separation term is reported under its own name, and descending it alone
    moves the detector's keypoints apart."""
    closeness = _descend_one_term(
        "keypoint_separation", keypoint_separation=1.0, keypoint_separation_sigma=0.3
    )
    assert closeness[-1] < 0.5 * closeness[0]
    with pytest.raises(ValueError, match="keypoint_separation_sigma must be positive"):
        dataclasses.replace(tiny_train_config().losses, keypoint_separation_sigma=0.0)


def test_part_following_term_makes_a_keypoint_move_with_the_part():
    """Descending the part-following term alone makes some keypoint's motion between the two
    frames match a part's; without part poses in the batch the term is a clear error."""

    def poses(centres: list, turn: float) -> torch.Tensor:  # (2, 1, 2, 3), parts of size 0.1
        cos, sin = math.cos(turn), math.sin(turn)
        linear = 0.1 * torch.tensor([[cos, -sin], [sin, cos]]).expand(2, 1, 2, 2)
        return torch.cat([linear, torch.tensor(centres)[..., None]], -1)

    parts = {
        "parts_source": poses([[[0.3, 0.5]], [[0.6, 0.4]]], 0.0),
        "parts_driving": poses([[[0.45, 0.5]], [[0.6, 0.25]]], 0.4),
        "parts_valid": torch.ones(2, 1, dtype=torch.bool),
    }
    misses = _descend_one_term("part_following", steps=25, parts=parts, part_following=1.0)
    assert misses[0] > 0.05 and misses[-1] < 0.4 * misses[0]
    # The parts turn by 0.4 radians: descending the Jacobian term alone turns the followers'
    # Jacobians with them. The first few dozen steps also move the keypoints, so which keypoint
    # follows a part changes and the term jumps about before it falls (0.23 -> 0.19 after 25
    # steps, about 0.03 after 60): judge the last steps, not one.
    turns = _descend_one_term("part_following_jacobian", steps=60, parts=parts,
                              part_following=1.0, part_following_jacobian=1.0)  # fmt: skip
    assert max(turns[-5:]) < 0.5 * turns[0]
    with pytest.raises(ValueError, match="batch has no part poses"):
        _descend_one_term("part_following", steps=1, part_following=1.0)
    with pytest.raises(ValueError, match="part_following_jacobian needs losses.part_following"):
        dataclasses.replace(tiny_train_config().losses, part_following_jacobian=1.0)
    with pytest.raises(ValueError, match="part_following_match must be one of motion, position"):
        dataclasses.replace(tiny_train_config().losses, part_following_match="pose")


def test_keypoint_concentration_term_sharpens_the_heatmaps():
    """The optional spread term is reported under its own name, and descending it alone makes
    the detector's heatmaps narrower."""
    spreads = _descend_one_term("keypoint_concentration", keypoint_concentration=1.0)
    assert spreads[-1] < 0.8 * spreads[0]
