"""The study's training front: `kp-motion train fomm` with its terms, on a tiny synthetic set."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from model_helpers import tiny_model_config

from kp_motion import config as config_io
from kp_motion.data import synthetic
from kp_motion.training import settings as train_settings
from kp_motion.training.csv_log import read_log
from kp_motion.training.losses import unregister_loss
from research.part_supervision.losses import TERMS
from research.part_supervision.train import STUDY_COPY, run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synthetic dataset, a tiny profile and a version-1 settings file that carries the
    part terms the way the core did before they moved here."""
    folder = tmp_path_factory.mktemp("part-supervision")
    tiny = synthetic.SynthConfig(seed=2, size=32, num_train=4, num_test=1, num_frames=10,
                                 format="png", supersample=2)  # fmt: skip
    synthetic.generate_dataset(tiny, folder / "synth", progress=False)
    profile = folder / "tiny-profile.yaml"
    config_io.save(tiny_model_config(), profile)
    values = config_io.to_dict(train_settings.load_train_config())
    values.update(profile=str(profile), epochs=1, batch_size=4, log_every=1)
    values["data"].update(repeats=2)
    values["validation"].update(max_videos=1, max_frames=4, batch_size=4)
    version_1 = copy.deepcopy(values)
    del version_1["version"]
    del version_1["optimizer"]["warmup_steps"]
    del version_1["losses"]["extra"]
    version_1["losses"].update(
        keypoint_concentration=0.0, keypoint_separation=0.0, keypoint_separation_sigma=0.08,
        part_following=5.0, part_following_jacobian=1.0, part_following_match="slot",
        background_mask=0.0, background_mask_margin=0.5,
    )  # fmt: skip
    (folder / "v1.yaml").write_text(yaml.safe_dump(version_1))
    config_io.save(train_settings.settings_from_dict(values), folder / "current.yaml")
    yield folder
    for name in TERMS:
        unregister_loss(name)


def test_a_version_1_run_file_keeps_its_part_terms(setup, tmp_path):
    out = tmp_path / "run"
    assert run([str(setup / "synth"), "-o", str(out), "--config", str(setup / "v1.yaml"),
                "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    log = read_log(out / "train_log.csv")
    assert len(log) == 2
    assert all(float(row[term]) > 0 for row in log
               for term in ("part_following", "part_following_jacobian"))  # fmt: skip
    assert config_io.load_yaml(out / "train_fomm.yaml")["losses"]["extra"] == {
        "part_following": 5.0, "part_following_jacobian": 1.0
    }  # fmt: skip
    assert config_io.load_yaml(out / STUDY_COPY)["part_following_match"] == "slot"


def test_terms_by_option_and_their_errors(setup, tmp_path, capsys):
    common = [str(setup / "synth"), "--config", str(setup / "current.yaml"), "--device", "cpu",
              "--no-progress"]  # fmt: skip
    out = tmp_path / "run"
    terms = ["--term", "background_mask=2", "--term", "keypoint_separation=1"]
    assert run([*common, "-o", str(out), *terms, "--study-set", "background_mask_margin=0.1"]) == 0
    log = read_log(out / "train_log.csv")
    assert all(float(row["background_mask"]) > 0 and float(row["keypoint_separation"]) > 0
               for row in log)  # fmt: skip
    assert config_io.load_yaml(out / STUDY_COPY)["background_mask_margin"] == 0.1
    for extra, message in (
        (["--term", "nope=1"], "--term expects NAME=WEIGHT with NAME one of"),
        (["--term", "part_following_jacobian=1"], "part_following_jacobian needs part_following"),
        (["--study-set", "part_following_match=pose"], "part_following_match must be one of"),
    ):
        assert run([*common, "-o", str(tmp_path / "bad"), *extra]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and len(error.splitlines()) == 1
    no_manifest = setup / "plain"
    (no_manifest / "train").mkdir(parents=True, exist_ok=True)
    assert run([str(no_manifest), "--config", str(setup / "current.yaml"), "-o",
                str(tmp_path / "bad"), "--term", "part_following=1"]) == 2  # fmt: skip
    assert "the part terms need part poses" in capsys.readouterr().err
