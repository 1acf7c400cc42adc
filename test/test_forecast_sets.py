"""The shipped vox-256 forecaster set: found by one name, tied to its detector, timed by bench."""

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

single_thread()


def test_vox256_set_members_are_tied_to_the_vox256_detector():
    members = forecaster_set_members("vox-256")
    assert set(members) == set(LEARNED_KINDS + LINEAR_KINDS)
    for kind in LEARNED_KINDS:
        _, _, manifest = load_model(members[kind])
        assert manifest["training"]["detector"] == "vox-256"
    forecasters = load_forecaster_set("vox-256")
    assert {kind: f.name for kind, f in forecasters.items()} == {k: k for k in members}


def test_one_name_resolves_a_member():
    folder = resolve_forecaster("vox-256/direct-linear")
    assert load_forecaster(folder).name == "direct-linear"
    with pytest.raises(FileNotFoundError, match="has no transformer forecaster"):
        resolve_forecaster("vox-256/transformer")
    with pytest.raises(ValueError, match="unknown forecaster set"):
        forecaster_set_folder("vox-1024")
    assert set(FORECASTER_SETS) == {"compact-64", "vox-256"}


def test_bench_times_every_shipped_forecaster(capsys):
    status = main(["bench", "--only", "forecaster-sets", "--repeats", "1", "--device", "cpu"])
    assert status == 0
    printed = capsys.readouterr().out
    for kind in LEARNED_KINDS + LINEAR_KINDS:
        assert f"vox-256/{kind} " in printed
    for kind in LEARNED_KINDS:
        assert f"compact-64/{kind} " in printed
