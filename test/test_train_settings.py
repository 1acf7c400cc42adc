"""Training settings: every key from the YAML (missing or unknown ones are clear errors), and
the one migration of older settings files."""

from __future__ import annotations

import copy
import logging

import pytest

from kp_motion import config as config_io
from kp_motion.models.checkpoint import embedded_model_folder, read_checkpoint_meta
from kp_motion.names import SYNTHETIC_MODEL
from kp_motion.training.settings import (
    SETTINGS_VERSION,
    load_train_config,
    migrate,
    settings_from_dict,
)


def _shipped() -> dict:
    return config_io.to_dict(load_train_config())


def _version_1(values: dict) -> dict:
    """The shipped settings as a file of version 1 held them (research terms in `losses`)."""
    old = copy.deepcopy(values)
    del old["version"], old["optimizer"]["warmup_steps"], old["losses"]["extra"]
    old["losses"].update(keypoint_concentration=0.0, part_following=50.0,
                         part_following_match="slot", background_mask_margin=0.5)  # fmt: skip
    return old


def test_the_shipped_settings_are_the_current_version():
    settings = load_train_config()
    assert settings.version == SETTINGS_VERSION == 2
    assert settings.losses.extra == {} and settings.optimizer.warmup_steps == 0


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("seed",), "seed"),
        (("losses", "mask_balance"), "losses.mask_balance"),
        # Fields with a default in code are still required from the file.
        (("data", "augmentation", "hue"), "data.augmentation.hue"),
        (("adversarial", "discriminator", "kp_variance"), "adversarial.discriminator.kp_variance"),
    ],
)
def test_a_missing_key_is_named(path, named):
    values = _shipped()
    section = values
    for key in path[:-1]:
        section = section[key]
    del section[path[-1]]
    with pytest.raises(ValueError, match=rf"^my.yaml: missing setting\(s\) {named}$"):
        settings_from_dict(values, where="my.yaml")


def test_an_unknown_key_is_named():
    values = _shipped()
    values["optimizer"]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"my.yaml.optimizer: unknown setting\(s\) momentum"):
        settings_from_dict(values, where="my.yaml")


def test_version_1_migrates_and_says_what_it_dropped(caplog):
    shipped = _shipped()
    old = _version_1(shipped)
    with caplog.at_level(logging.WARNING):
        migrated = migrate(old, where="old.yaml")
    assert migrated == shipped
    assert "old.yaml: version-1 settings dropped" in caplog.text
    for dropped in ("losses.part_following=50.0", "losses.part_following_match=slot",
                    "losses.keypoint_concentration=0.0"):  # fmt: skip
        assert dropped in caplog.text
    assert "part_following" in old["losses"]  # the caller's dict is left as it was
    assert settings_from_dict(old) == load_train_config()


def test_the_current_version_passes_unchanged_and_an_unknown_one_is_refused():
    shipped = _shipped()
    assert migrate(shipped) == shipped and migrate(shipped) is not shipped
    with pytest.raises(ValueError, match="settings version 3 is unknown"):
        migrate({**shipped, "version": 3})
    with pytest.raises(ValueError, match="settings version 1: this is version 2"):
        config_io.from_dict(type(load_train_config()), {**shipped, "version": 1})


def test_the_embedded_models_training_settings_read_as_the_current_version():
    """models/fomm-compact-64 records the settings it was trained with (version 1)."""
    meta = read_checkpoint_meta(embedded_model_folder(SYNTHETIC_MODEL))
    recorded = meta["extra_meta"]["train_config"]
    assert "version" not in recorded and recorded["losses"]["mask_balance"] == 1.0
    settings = settings_from_dict(recorded, where="fomm-compact-64 train_config")
    assert settings.losses.extra == {} and settings.losses.mask_balance == 1.0
    assert settings.optimizer.schedule == "cosine" and settings.optimizer.warmup_steps == 0


# The face model's run (models/fomm-face-128): the synthetic recipe with these changes, as
# given on its command line (--set KEY=VALUE; epochs as set when it was resumed).
FACE_RUN_OVERRIDES = [
    "profile=face-128",
    "epochs=80",
    "data.repeats=40",
    "optimizer.schedule=cosine",
    "optimizer.warmup_steps=200",
    "checkpoint_every=500",
    "validation.max_frames=32",
]


def test_the_face_recipe_is_the_face_runs_settings():
    from kp_motion.cli.train_fomm import apply_overrides
    from kp_motion.paths import config_path

    face = load_train_config(config_path("train_face.yaml"))
    run = settings_from_dict(apply_overrides(_shipped(), FACE_RUN_OVERRIDES))
    assert face == run
    # Not the synthetic recipe under another name: the face settings differ from it.
    assert face != load_train_config() and face.profile == "face-128"
    assert face.version == SETTINGS_VERSION
