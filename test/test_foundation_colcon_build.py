"""The package builds with colcon from a clean build folder and the result imports."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.ros


def test_clean_colcon_build_produces_importable_message(tmp_path, python_exe):
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.fail("colcon is not on PATH; run inside scripts/env.sh")
    venv = Path(python_exe).resolve().parent.parent
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = env.get("AMENT_PREFIX_PATH", str(venv))
    # CMake refuses an exported include directory inside the source tree, where the venv is:
    # reach numpy's headers through a link outside it (as scripts/setup.sh does).
    numpy_headers = subprocess.run(
        [python_exe, "-c", "import numpy; print(numpy.get_include())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    numpy_include = tmp_path / "numpy-include"
    numpy_include.symlink_to(numpy_headers)
    cmake_args = [
        f"-DPython3_EXECUTABLE={python_exe}",
        "-DBUILD_TESTING=OFF",
        f"-DPython3_NumPy_INCLUDE_DIR={numpy_include}",
    ]
    result = subprocess.run(
        [colcon, "--log-base", str(tmp_path / "log"), "build", "--paths", str(REPO_ROOT),
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
         "--cmake-args", *cmake_args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    site = tmp_path / "install" / "kp_motion" / "lib" / "python3.11" / "site-packages"
    installed = list((tmp_path / "install" / "kp_motion" / "lib").glob("python3*/site-packages"))
    site = installed[0] if installed else site
    assert (site / "kp_motion" / "msg" / "__init__.py").is_file()
    assert (site / "kp_motion" / "keypoints.py").is_file(), "Python sources were not installed"
    share = tmp_path / "install" / "kp_motion" / "share" / "kp_motion"
    assert (share / "package.xml").is_file()
    assert (share / "config").is_dir()

    probe = (
        "import kp_motion.msg as m, kp_motion.keypoints as k;"
        f"assert m.__file__.startswith({str(site)!r}), m.__file__;"
        "print(m.Keypoint60().NUM_VALUES, k.NUM_VALUES)"
    )
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}"
    check = subprocess.run(
        [python_exe, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.split() == ["60", "60"]
