"""Forecasters by name (kp_motion.forecasting.named), as the forecaster node and the graph's
pre-flight checks load them: baselines by name, learned kinds from a folder."""

from __future__ import annotations

import pytest

from kp_motion.forecasting.named import forecaster_folder, load_named_forecaster
from kp_motion.names import BASELINE_FORECASTERS


@pytest.mark.parametrize("name", BASELINE_FORECASTERS)
def test_baselines_load_by_name_without_a_folder(name):
    assert forecaster_folder(name, "") is None
    assert load_named_forecaster(name).name == name


def test_a_learned_kind_needs_its_folder_and_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="forecaster checkpoint not found: .*absent"):
        load_named_forecaster("vrnn", tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown forecaster 'oracle'"):
        forecaster_folder("oracle", "")


def test_a_folder_of_another_kind_is_refused():
    from kp_motion.forecasting.checkpoint import embedded_forecaster_folder

    folder = embedded_forecaster_folder("rnn")
    if not folder.is_dir():
        pytest.skip(f"the embedded rnn forecaster {folder} is not there")
    assert load_named_forecaster("rnn").name == "rnn"  # the embedded default of the kind
    with pytest.raises(ValueError, match="holds a rnn forecaster, not vae"):
        load_named_forecaster("vae", folder)
