"""The package knows nothing of research/: studies plug in through public hooks only."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kp_motion"
# The part-supervision study's term names (research/part_supervision/losses.py).
STUDY_NAMES = re.compile(
    r"part_following|background_mask|keypoint_separation|keypoint_concentration|slot_detector"
)
IMPORTS_RESEARCH = re.compile(r"^\s*(from|import)\s+research\b", re.MULTILINE)


def test_no_module_of_the_package_imports_research_or_names_its_terms():
    sources = {path: path.read_text() for path in PACKAGE.rglob("*.py")}
    assert len(sources) > 50
    assert [str(path) for path, text in sources.items() if IMPORTS_RESEARCH.search(text)] == []
    assert [str(path) for path, text in sources.items() if STUDY_NAMES.search(text)] == []
