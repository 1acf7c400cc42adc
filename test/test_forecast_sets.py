"""The shipped forecaster sets (face-128, the default; compact-64; vox-256): found by one name,
tied to their detector, timed by bench."""

from __future__ import annotations

import pytest
from forecast_helpers import single_thread

from kp_motion.cli.main import main
from kp_motion.forecasting import (
    FORECASTER_SETS,
    forecaster_set_folder,
    forecaster_set_members,
    load_forecaster,
    load_forecaster_set,
    resolve_forecaster,
)
from kp_motion.forecasting.checkpoint import load_model
from kp_motion.forecasting.settings import LEARNED_KINDS, LINEAR_KINDS
from kp_motion.models import checkpoint as models
from kp_motion.names import DEFAULT_FORECASTER_SET

single_thread()


def test_vox256_set_members_are_tied_to_the_vox256_detector():
    members = forecaster_set_members("vox-256")
    assert set(members) == set(LEARNED_KINDS + LINEAR_KINDS)
    for kind in LEARNED_KINDS:
        _, _, manifest = load_model(members[kind])
        assert manifest["training"]["detector"] == "vox-256"
    forecasters = load_forecaster_set("vox-256")
    assert {kind: f.name for kind, f in forecasters.items()} == {k: k for k in members}


def test_face128_set_was_trained_on_the_face_models_keypoints_without_its_held_out_identity():
    """True of any trained face model: the set is rebuilt whenever the model is replaced
    (scripts/train_face_forecasters.sh), and this fails until it is."""
    config, kp_detector, _ = models.load_model(models.embedded_model_folder("fomm-face-128"))
    face_model_id = models.model_id(config, kp_detector)
    members = forecaster_set_members("face-128")
    assert set(members) == set(LEARNED_KINDS + LINEAR_KINDS)
    for kind, forecaster in load_forecaster_set("face-128").items():
        assert forecaster.detector_model_id == face_model_id, f"face-128/{kind}"
    _, _, manifest = load_model(members["vrnn"])
    assert manifest["training"]["detector"] == "face-128"
    assert "id10290" in manifest["training"]["excluded_identities"]
    assert "id10290" not in manifest["training"]["identities"]


def test_a_bare_kind_is_the_default_face_sets_member_and_compact64_stays_by_name():
    assert DEFAULT_FORECASTER_SET == "face-128"
    assert resolve_forecaster("vrnn") == forecaster_set_folder("face-128") / "vrnn"
    compact = resolve_forecaster("compact-64/vrnn")
    assert compact == forecaster_set_folder("compact-64") / "vrnn"
    assert load_forecaster(compact).name == "vrnn"


def test_one_name_resolves_a_member():
    folder = resolve_forecaster("vox-256/direct-linear")
    assert load_forecaster(folder).name == "direct-linear"
    with pytest.raises(FileNotFoundError, match="has no transformer forecaster"):
        resolve_forecaster("vox-256/transformer")
    with pytest.raises(ValueError, match="unknown forecaster set"):
        forecaster_set_folder("vox-1024")
    assert set(FORECASTER_SETS) == {"face-128", "compact-64", "vox-256"}


def test_bench_times_every_shipped_forecaster(capsys):
    status = main(["bench", "--only", "forecaster-sets", "--repeats", "1", "--device", "cpu"])
    assert status == 0
    printed = capsys.readouterr().out
    for kind in LEARNED_KINDS + LINEAR_KINDS:
        assert f"vox-256/{kind} " in printed
        assert f"face-128/{kind} " in printed
    for kind in LEARNED_KINDS:
        assert f"compact-64/{kind} " in printed
