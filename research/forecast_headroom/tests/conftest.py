"""The study's tests use the project's test helpers (test/forecast_helpers.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "test"))
