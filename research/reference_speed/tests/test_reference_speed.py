"""The side-by-side study's own logic (the reference code itself is not available in CI)."""

from __future__ import annotations

import pytest

from research.reference_speed.__main__ import parse_args, time_rounds


def test_a_folder_that_is_not_a_reference_checkout_is_refused(tmp_path, capsys):
    (tmp_path / "modules").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--reference", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not a first-order-model checkout with vox-256.yaml" in capsys.readouterr().err


def test_every_stage_runs_once_per_round_after_a_warm_up():
    calls = []
    medians = time_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4  # warm-up, then three alternating rounds
    assert set(medians) == {"a", "b"} and all(value >= 0 for value in medians.values())
