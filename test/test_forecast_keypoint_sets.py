"""Keypoint sets in the shared .npz layout: the real VoxCeleb file, identity splits, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from kp_motion.data.keypoint_sets import (
    identity_of,
    load_keypoint_set,
    save_keypoint_set,
)
from kp_motion.forecasting.synthetic import synthetic_sequences


def test_loads_the_shared_voxceleb_keypoints():
    keypoint_set = load_keypoint_set(shared_path("data/voxceleb-seed/keypoints.npz"))
    assert len(keypoint_set.clips) == 33
    assert keypoint_set.frames == 8229
    assert all(clip.values.shape == (len(clip), 60) for clip in keypoint_set.clips)
    assert all(clip.values.dtype == np.float32 for clip in keypoint_set.clips)
    identities = ["id10283", "id10284", "id10286", "id10287", "id10289", "id10290"]
    assert keypoint_set.identities() == identities
    assert keypoint_set.detector == {}  # the shared file names no detector of this project
    folds = list(keypoint_set.leave_one_identity_out())
    assert [identity for identity, _, _ in folds] == identities
    for identity, train, held_out in folds:
        # Every clip is in exactly one side, and no identity is on both.
        assert len(train) + len(held_out) == 33
        assert {identity_of(clip.name) for clip in held_out} == {identity}
        assert identity not in {identity_of(clip.name) for clip in train}


def test_round_trip_keeps_values_and_order(tmp_path):
    clips = dict(zip(["id00001#a", "id00002#b"], synthetic_sequences(2, 15, seed=3), strict=True))
    loaded = load_keypoint_set(save_keypoint_set(tmp_path / "set.npz", clips))
    assert [clip.name for clip in loaded.clips] == list(clips)
    for clip, values in zip(loaded.clips, clips.values(), strict=True):
        np.testing.assert_array_equal(clip.values, values)
        np.testing.assert_array_equal(clip.frame_indices, np.arange(15))


def test_the_detector_record_round_trips_and_bad_ones_are_refused(tmp_path):
    clips = {"id00001#a": synthetic_sequences(1, 10, seed=1)[0]}
    detector = {"model_id": "0123456789abcdef", "model": "face-128"}
    loaded = load_keypoint_set(save_keypoint_set(tmp_path / "set.npz", clips, detector))
    assert loaded.detector == detector
    with pytest.raises(ValueError, match="unknown detector field"):
        save_keypoint_set(tmp_path / "other.npz", clips, {"checkpoint": "x"})
    bad = _write(tmp_path / "bad.npz", model_id=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="model_id must be a single string"):
        load_keypoint_set(bad)


def test_excluding_identities(tmp_path):
    names = ["id00001#a", "id00002#b", "id00002#c", "id00003#d"]
    clips = dict(zip(names, synthetic_sequences(4, 8, seed=2), strict=True))
    keypoint_set = load_keypoint_set(
        save_keypoint_set(tmp_path / "set.npz", clips, {"model": "m"})
    )
    kept = keypoint_set.excluding(["id00002"])
    assert [clip.name for clip in kept.clips] == ["id00001#a", "id00003#d"]
    assert kept.detector == {"model": "m"} and keypoint_set.frames == 32
    with pytest.raises(ValueError, match="no clips of identity id00009"):
        keypoint_set.excluding(["id00009"])
    with pytest.raises(ValueError, match="leaves no clips"):
        keypoint_set.excluding(["id00001", "id00002", "id00003"])


def _write(path, **overrides):
    frames = synthetic_sequences(1, 12, seed=0)[0]
    arrays = {
        "names": np.array(["id00001#clip"]),
        "lengths": np.array([12]),
        "value": frames[:, :20].reshape(12, 10, 2),
        "jacobian": frames[:, 20:].reshape(12, 10, 2, 2),
    }
    arrays.update(overrides)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jacobian": None}, "missing array(s) jacobian"),
        ({"lengths": np.array([11])}, "value must be (11, 10, 2)"),
        ({"value": np.zeros((12, 10, 3), np.float32)}, "value must be (12, 10, 2)"),
        ({"value": np.full((12, 10, 2), np.nan, np.float32)}, "value must be finite"),
        ({"lengths": np.array([0])}, "at least one frame"),
    ],
)
def test_malformed_files_give_one_line_errors(tmp_path, overrides, message):
    with pytest.raises(ValueError) as error:
        load_keypoint_set(_write(tmp_path / "bad.npz", **overrides))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_not_an_npz_and_no_identity(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a keypoint set"):
        load_keypoint_set(garbage)
    with pytest.raises(FileNotFoundError):
        load_keypoint_set(tmp_path / "absent.npz")
    loaded = load_keypoint_set(_write(tmp_path / "x.npz", names=np.array(["clip-without-id"])))
    with pytest.raises(ValueError, match="does not start with an identity"):
        loaded.identities()
