"""The headroom study: the cross-value model learns a person's own coupling between
values when that person's other clips are in the training data, and not otherwise."""

from __future__ import annotations

import json

import numpy as np
from forecast_helpers import single_thread

from kp_motion.data.keypoint_sets import save_keypoint_set
from research.forecast_headroom.__main__ import main

single_thread()


def _coupled_clip(shift: int, length: int, seed: int) -> np.ndarray:
    """(length, 60) frames whose change of value d + shift follows 0.8 times the previous
    change of value d (a person-specific link between values), around a valid frame."""
    rng = np.random.default_rng(seed)
    changes = np.zeros((length, 60))
    for t in range(1, length):
        changes[t] = 0.8 * np.roll(changes[t - 1], shift) + rng.normal(0, 1e-3, 60)
    base = np.concatenate([np.zeros(20), np.tile([1.0, 0.0, 0.0, 1.0], 10)])
    return base + np.cumsum(changes, axis=0)


def test_knowing_the_person_is_measured(tmp_path, capsys):
    clips = {
        f"id0000{person}#{clip}.mp4": _coupled_clip(person, 150, seed=10 * person + clip)
        for person in (1, 2)
        for clip in range(3)
    }
    keypoints = save_keypoint_set(tmp_path / "coupled.npz", clips)
    out = tmp_path / "headroom.json"
    assert main(["--keypoints", str(keypoints), "--k", "6",
                 "--ridge", "0.001", "--json", str(out)]) == 0  # fmt: skip
    scores = {
        setting: per_k["6"]["all"]
        for setting, per_k in json.loads(out.read_text())["scores"].items()
    }
    assert set(scores) == {"hold-last", "in-sample", "leave-one-clip-out", "leave-one-identity-out"}
    # Fit on the other person only, the model applies a link this person does not have and
    # misses their own; with their other clips in the training data it learns part of it.
    assert scores["leave-one-identity-out"] > scores["hold-last"]
    assert scores["leave-one-clip-out"] < scores["leave-one-identity-out"]
    assert scores["in-sample"] < min(0.8 * scores["hold-last"], scores["leave-one-clip-out"])
    # The shipped direct-linear model, refit the same three ways (its features carry no
    # link between values, so it cannot learn this one; it is only measured).
    direct = json.loads(out.read_text())["direct_linear"]
    assert set(direct) == {"in-sample", "leave-one-clip-out", "leave-one-identity-out"}
    assert all(np.isfinite(per_k["6"]["all"]) for per_k in direct.values())
    printed = capsys.readouterr().out
    assert "leave-one-identity-out" in printed and "direct-linear with the settings of" in printed


def test_bad_arguments_fail_in_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.npz"
    assert main(["--keypoints", str(tmp_path / "x.npz"), "--k", "13"]) == 2
    assert "--k values must be in 1..12" in capsys.readouterr().err
    assert main(["--keypoints", str(missing)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
