"""Where the package's data lives: config/ YAML, the embedded default models, bundled media.

The same files are found in a source checkout (the repository root), after a colcon build
(<prefix>/share/kp_motion, found through AMENT_PREFIX_PATH) and after `pip install`
(<sys.prefix>/share/kp_motion, installed as data files). KP_MOTION_SHARE overrides all three.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "kp_motion"


def _candidates() -> list[Path]:
    found = []
    override = os.environ.get("KP_MOTION_SHARE")
    if override:
        found.append(Path(override))
    # Source checkout or editable install: the package sits next to package.xml.
    repo_root = Path(__file__).resolve().parent.parent
    found.append(repo_root)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            found.append(Path(prefix) / "share" / PACKAGE_NAME)
    found.append(Path(sys.prefix) / "share" / PACKAGE_NAME)
    return found


def share_dir() -> Path:
    """The first directory that holds the package's config/ folder."""
    for candidate in _candidates():
        if (candidate / "config").is_dir():
            return candidate
    searched = ", ".join(str(c) for c in _candidates())
    raise FileNotFoundError(f"kp_motion's config/ folder was not found (searched {searched})")


def config_path(name: str) -> Path:
    """Path of a YAML file under config/, e.g. config_path('profiles/compact.yaml')."""
    path = share_dir() / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"no config file {name!r} under {path.parent}")
    return path


def models_dir() -> Path:
    """Folder of the embedded default models (committed checkpoints)."""
    return share_dir() / "models"


def assets_dir() -> Path:
    """Folder of bundled media (demo source image and driving video)."""
    return share_dir() / "assets"
