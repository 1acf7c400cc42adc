"""A forecaster knows the detector it was trained on, and a model with another detector gets a
clear warning: from the evaluation's loader and from the forecaster node's stream logic."""

from __future__ import annotations

import numpy as np
from forecast_helpers import single_thread

from kp_motion.forecasting.checkpoint import (
    detector_mismatch,
    embedded_forecaster_folder,
    load_forecaster,
    load_model,
)
from kp_motion.forecasting.schedule import Receiver
from kp_motion.keypoints import NUM_VALUES
from kp_motion.stream.receiving import KeypointReceiver

single_thread()


def _compact_vrnn():
    folder = embedded_forecaster_folder("vrnn", "compact-64")
    _, _, manifest = load_model(folder)
    return load_forecaster(folder), manifest["training"]["detector_model_id"]


def test_a_forecaster_carries_its_detector_and_a_mismatch_is_named():
    forecaster, trained_on = _compact_vrnn()
    assert forecaster.detector_model_id == trained_on
    assert detector_mismatch(forecaster, trained_on) is None
    warning = detector_mismatch(forecaster, "ffffffffffffffff", "compact-64/vrnn")
    assert warning is not None and "\n" not in warning
    assert "compact-64/vrnn" in warning and trained_on in warning and "ffffffffffffffff" in warning
    # Nothing to compare: a baseline, and a set that names its detector only by name.
    assert detector_mismatch(load_forecaster("hold-last"), "ffffffffffffffff") is None
    vox = load_forecaster(embedded_forecaster_folder("direct-linear", "vox-256"))
    assert vox.detector_model_id is None and detector_mismatch(vox, "ffff") is None


def test_the_stream_warns_once_when_its_detector_is_not_the_forecasters():
    forecaster, trained_on = _compact_vrnn()
    frame = np.zeros(NUM_VALUES, np.float32)
    frame[20:] = np.tile([1.0, 0.0, 0.0, 1.0], 10)
    for stream_detector, expected in ((trained_on, 0), ("ffffffffffffffff", 1)):
        warnings: list[str] = []
        stream = KeypointReceiver(Receiver(forecaster, 2, 0), warnings.append,
                                  forecaster=forecaster)  # fmt: skip
        for index in range(3):
            stream.receive(stream_detector, index, frame)
        assert len(warnings) == expected
    assert "trained on keypoints of detector" in warnings[0]


def test_the_evaluation_warns_about_a_forecaster_of_another_detector(caplog):
    import dataclasses
    import logging

    from kp_motion.evaluation.pipeline import load_models
    from kp_motion.evaluation.settings import load_settings

    settings = dataclasses.replace(
        load_settings(), checkpoint="fomm-compact-64", device="cpu",
        forecasters=["compact-64/vrnn", "vox-256/direct-linear", "hold-last"],
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        load_models(settings)
        assert not [r for r in caplog.records if "trained on keypoints" in r.getMessage()]
        load_models(dataclasses.replace(settings, checkpoint="fomm-face-128"))
    warned = [r.getMessage() for r in caplog.records if "trained on keypoints" in r.getMessage()]
    assert len(warned) == 1 and "compact-64/vrnn" in warned[0]
