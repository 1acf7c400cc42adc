"""A forecaster by the name a user gives a node or a graph: a baseline, a learned or linear kind
from a checkpoint folder (by default the embedded set's member of that kind), or SET/KIND for a
member of a shipped set ("vox-256/direct-linear")."""

from __future__ import annotations

from pathlib import Path

from kp_motion.names import BASELINE_FORECASTERS, FORECASTERS, SET_MEMBERS, spelled


def forecaster_folder(kind: str, folder: str | Path | None) -> Path | None:
    """The checkpoint folder a learned `kind` loads from; None for a baseline.

    Raises FileNotFoundError naming the folder when it is missing (and, for the embedded
    default, how to choose another), ValueError for an unknown kind.
    """
    from kp_motion.forecasting.checkpoint import embedded_forecaster_folder

    if kind not in FORECASTERS + SET_MEMBERS:
        raise ValueError(f"unknown forecaster {kind!r} (expected {spelled(FORECASTERS)}, "
                         "or SET/KIND for a shipped set's member)")
    if kind in BASELINE_FORECASTERS:
        return None
    set_name, _, member = kind.rpartition("/")
    if folder:
        path = Path(folder).expanduser()
    elif set_name:
        path = embedded_forecaster_folder(member, set_name)
    else:
        path = embedded_forecaster_folder(kind)
    if not path.is_dir():
        hint = "" if folder else (" (the embedded default is missing; give a forecaster "
                                  f"folder or a baseline: {spelled(BASELINE_FORECASTERS)})")
        raise FileNotFoundError(f"forecaster checkpoint not found: {path}{hint}")
    return path


def load_named_forecaster(kind: str, folder: str | Path | None = None, device="cpu"):
    """The forecaster `kind` names; a learned one must hold that kind (a vae folder given for
    vrnn is refused, not silently used)."""
    from kp_motion.forecasting.checkpoint import load_forecaster

    path = forecaster_folder(kind, folder)
    if path is None:
        return load_forecaster(kind)
    forecaster = load_forecaster(path, device)
    expected = kind.rpartition("/")[2]
    if forecaster.name != expected:
        raise ValueError(f"{path} holds a {forecaster.name} forecaster, not {expected}")
    return forecaster
