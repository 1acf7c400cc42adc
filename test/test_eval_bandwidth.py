"""Bytes per Keypoint60 message, measured on the message the graph sends, and the stream-rate
arithmetic. The README and the evaluation report must quote that measured size."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import REPO_ROOT
from kp_motion.evaluation.bandwidth import stream_bandwidth
from kp_motion.stream.message import graph_frame_id, keypoint60, keypoint60_bytes, make_typestore


def _graph_model_id() -> str:
    """The model_id the graph's detector sends: its checkpoint default from config/nodes.yaml."""
    from kp_motion.graph_config.parameters import node_parameter_defaults
    from kp_motion.models.checkpoint import load_model, model_id, resolve_checkpoint

    checkpoint = node_parameter_defaults("keypoint_detector")["checkpoint"]
    try:
        folder = resolve_checkpoint(checkpoint)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return model_id(*load_model(folder)[:2])


@pytest.fixture(scope="module")
def graph_message_bytes() -> int:
    return keypoint60_bytes(_graph_model_id())


def test_the_size_is_the_serialised_message_and_grows_with_its_strings():
    # The camera's frame_id is what the graph sends (config/nodes.yaml), not a copy of it.
    assert graph_frame_id() == "camera_optical"
    assert keypoint60_bytes("", "") < keypoint60_bytes("abcdef123456", "camera")
    # CDR counts UTF-8 bytes, not characters; strings are padded to 4-byte alignment.
    assert keypoint60_bytes("", "é") == keypoint60_bytes("", "ab")
    store = make_typestore()
    message = keypoint60(store, "x" * 16, "camera_optical", frame_index=2**40, origin=1,
                         values=np.arange(60, dtype=np.float32))
    data = store.serialize_cdr(message, "kp_motion/msg/Keypoint60")
    assert len(data) == keypoint60_bytes("x" * 16, "camera_optical")  # values do not matter
    assert store.deserialize_cdr(data, "kp_motion/msg/Keypoint60").frame_index == 2**40


def test_stream_rates_with_and_without_prediction():
    size = keypoint60_bytes("abcdef123456", "camera")
    rates = stream_bandwidth(fps=25, sent_frames=6, withheld_frames=6, model_id="abcdef123456",
                             frame_id="camera")
    assert rates.message_bytes == size
    assert rates.full_bytes_per_second == size * 25
    assert rates.predicted_bytes_per_second == size * 25 / 2
    assert rates.ratio == 0.5
    summary = rates.as_dict()
    assert summary["full_kbit_per_second"] == pytest.approx(size * 25 * 8 / 1000)
    uneven = stream_bandwidth(fps=30, sent_frames=5, withheld_frames=15, model_id="")
    assert uneven.ratio == pytest.approx(0.25)
    assert uneven.message_bytes == keypoint60_bytes("", graph_frame_id())
    with pytest.raises(ValueError, match="fps"):
        stream_bandwidth(fps=0, sent_frames=1, withheld_frames=1, model_id="")
    with pytest.raises(ValueError, match="sent frame"):
        stream_bandwidth(fps=25, sent_frames=0, withheld_frames=1, model_id="")


def test_readme_and_evaluation_report_quote_the_size_the_graph_sends(graph_message_bytes):
    readme = (REPO_ROOT / "README.md").read_text()
    quoted = re.search(r"it is (\d+) bytes of CDR", readme)
    assert quoted, "the README's message section states the size"
    assert int(quoted.group(1)) == graph_message_bytes
    results = json.loads((REPO_ROOT / "docs/evaluation/results.json").read_text())
    assert results["bandwidth"], "the evaluation has bandwidth rows"
    for row in results["bandwidth"]:
        assert row["message_bytes"] == graph_message_bytes
        assert row["full_bytes_per_second"] == pytest.approx(graph_message_bytes * row["fps"])
    summary = (REPO_ROOT / "docs/evaluation/README.md").read_text()
    stated = re.search(r"\((\d+)-byte messages at", summary)
    assert stated and int(stated.group(1)) == graph_message_bytes
    report = (REPO_ROOT / "docs/evaluation/report.md").read_text()
    table = report.split("## Bandwidth of the keypoint stream", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[2].strip() for line in table.splitlines()
            if re.match(r"\| \(\d+, \d+\) \|", line)]
    assert rows and all(int(value) == graph_message_bytes for value in rows)


@pytest.mark.ros
def test_the_measured_size_is_what_rclpy_sends():
    """rclpy's serialisation of a Keypoint60 filled by the detector's own conversion."""
    from rclpy.serialization import serialize_message

    from kp_motion.ros.conversions import keypoints_to_message, ns_to_stamp

    for frame_id, model_id in (("", ""), ("camera", "abcdef123456"),
                               (graph_frame_id(), "0123456789abcdef")):
        message = keypoints_to_message(np.zeros(60, np.float32), frame_index=7, origin=0,
                                       model_id=model_id, stamp=ns_to_stamp(10**18),
                                       frame_id=frame_id)
        assert len(serialize_message(message)) == keypoint60_bytes(model_id, frame_id)


def test_settings_files_with_the_retired_frame_id_still_load_with_a_warning(tmp_path):
    from kp_motion.evaluation.settings import load_settings
    from kp_motion.paths import config_path

    old = tmp_path / "evaluate.yaml"
    shipped = config_path("evaluate.yaml").read_text()
    old.write_text(shipped.replace("bandwidth:", "bandwidth:\n  frame_id: camera", 1))
    with pytest.warns(FutureWarning, match="bandwidth.frame_id is no longer used"):
        settings = load_settings(old)
    assert settings.bandwidth.fps == load_settings().bandwidth.fps
