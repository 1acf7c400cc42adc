"""`kp-motion train fomm`: single process, DDP on CPU (gloo, 2 processes), errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import make_tiny_dataset, tiny_model_config, tiny_train_config

from kp_motion import config as config_io
from kp_motion.cli.main import main
from kp_motion.models.checkpoint import load_model, read_checkpoint_meta
from kp_motion.training.csv_log import read_log
from kp_motion.training.distributed import find_free_port
from kp_motion.training.state import list_checkpoints, read_training_state

torch.set_num_threads(1)
REPO_ROOT = Path(__file__).resolve().parent.parent
DDP_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """A tiny dataset, a tiny profile YAML and training settings YAML pointing at it."""
    folder = tmp_path_factory.mktemp("train-cli")
    profile = folder / "tiny-profile.yaml"
    config_io.save(tiny_model_config(), profile)
    settings = folder / "train.yaml"
    config_io.save(tiny_train_config(profile=str(profile), log_every=2), settings)
    return {"data": make_tiny_dataset(folder / "data"), "config": settings}


def test_train_then_resume_from_the_output_folder(setup, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "fomm", str(setup["data"]), "-o", str(out), "--config", str(setup["config"])]
    # 1e-4 is a string to YAML 1.1 (no dot); the settings still read it as a number.
    lr = ["--set", "optimizer.lr_generator=1e-4"]
    assert main([*common, "--set", "epochs=1", *lr, "--no-progress", "--device", "cpu"]) == 0
    assert "trained 2 steps (1 epochs)" in capsys.readouterr().out
    assert config_io.load_yaml(out / "train_fomm.yaml")["optimizer"]["lr_generator"] == 1e-4
    assert main([*common, "--resume", str(out), "--no-progress"]) == 0
    assert "trained 4 steps (2 epochs)" in capsys.readouterr().out
    assert [int(row["step"]) for row in read_log(out / "train_log.csv")] == [2, 4]
    assert read_checkpoint_meta(out / "model")["extra_meta"]["dataset"] == str(setup["data"])


def test_resume_without_config_takes_the_runs_own_settings(setup, tmp_path, capsys):
    out = tmp_path / "run"
    first = ["train", "fomm", str(setup["data"]), "-o", str(out), "--config", str(setup["config"]),
             "--set", "epochs=1", "--set", "optimizer.lr_generator=0.0003", "--no-progress"]
    assert main([*first, "--device", "cpu"]) == 0
    capsys.readouterr()
    # No --config: the shipped settings (another profile) would refuse the checkpoint.
    checkpoint = sorted((out / "checkpoints").iterdir())[-1]
    resumed = ["train", "fomm", str(setup["data"]), "-o", str(out), "--resume", str(checkpoint),
               "--set", "epochs=2", "--no-progress", "--device", "cpu"]
    assert main(resumed) == 0, capsys.readouterr().err
    assert "trained 4 steps (2 epochs)" in capsys.readouterr().out
    rows = read_log(out / "train_log.csv")
    assert [float(row["lr_generator"]) for row in rows] == pytest.approx([3e-4, 3e-4])
    assert config_io.load_yaml(out / "train_fomm.yaml")["epochs"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "epochs"], "--set expects KEY=VALUE"),
        (["--set", "optimizer.nope=1"], "unknown setting 'nope'"),
        (["--set", "nosection.lr=1"], "no settings section 'nosection'"),
        (["--set", "optimizer.schedule=linear"], "optimizer.schedule must be one of"),
        (["--set", "optimizer.lr_generator=fast"], "expected a number, got 'fast'"),
        (["--set", "losses.extra={nope: 1}"], "losses.extra: unknown loss term(s) nope"),
        (["--resume", "/nonexistent/ckpt"], "checkpoint to resume from not found"),
        (["--vgg19-weights", "/nonexistent/vgg.pth"], "VGG19 weights file not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(setup, tmp_path, capsys, extra, message):
    argv = ["train", "fomm", str(setup["data"]), "-o", str(tmp_path), "--no-progress"]
    assert main([*argv, "--config", str(setup["config"]), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_a_run_file_of_version_1_trains_and_is_saved_as_the_current_version(setup, tmp_path):
    """Settings files written before `version` existed (research terms in `losses`)."""
    old = config_io.load_yaml(setup["config"])
    del old["version"], old["optimizer"]["warmup_steps"], old["losses"]["extra"]
    old["losses"].update(keypoint_concentration=0.0, part_following=0.0,
                         part_following_match="motion")  # fmt: skip
    old_file = tmp_path / "old.yaml"
    old_file.write_text(yaml.safe_dump(old))
    out = tmp_path / "run"
    argv = ["train", "fomm", str(setup["data"]), "-o", str(out), "--config", str(old_file),
            "--set", "epochs=1", "--set", "optimizer.warmup_steps=1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    saved = config_io.load_yaml(out / "train_fomm.yaml")
    assert saved["version"] == 2 and saved["losses"]["extra"] == {}
    assert saved["optimizer"]["warmup_steps"] == 1 and "part_following" not in saved["losses"]


def test_missing_dataset_and_perceptual_weights_without_vgg(setup, tmp_path, capsys):
    argv = ["train", "fomm", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")]
    assert main([*argv, "--config", str(setup["config"])]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    argv = ["train", "fomm", str(setup["data"]), "-o", str(tmp_path / "o")]
    perceptual = ["--set", "losses.perceptual_weights=[1, 1, 1, 1, 1]"]
    assert main([*argv, "--config", str(setup["config"]), *perceptual, "--no-progress"]) == 2
    assert "no VGG19 weights were given" in capsys.readouterr().err


@pytest.mark.parametrize("gan", [False, True], ids=["reconstruction", "with-gan"])
def test_ddp_on_cpu_with_gloo_two_processes(setup, tmp_path, gan):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(find_free_port()),
        "-m", "kp_motion.cli.main", "train", "fomm", str(setup["data"]), "-o", str(out),
        "--config", str(setup["config"]), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    if gan:  # the discriminator is a second DDP module with its own optimiser
        command += ["--set", "adversarial.generator_gan=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    finished = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=DDP_TIMEOUT_S
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    # 8 pairs per epoch shared by 2 processes at batch 4: one step per epoch, 2 epochs.
    assert "trained 2 steps (2 epochs) in" in finished.stdout
    assert "on 2 x cpu" in finished.stdout
    assert finished.stdout.count("trained") == 1  # only rank 0 reports
    checkpoints = list_checkpoints(out / "checkpoints")
    assert [step for step, _ in checkpoints] == [1, 2]
    state = read_training_state(checkpoints[-1][1])
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    config, _, _ = load_model(out / "model")
    assert config == tiny_model_config()
    log = read_log(out / "train_log.csv")
    assert [int(row["step"]) for row in log] == [2]
    assert ("adversarial" in state) == gan
    assert (log[0]["discriminator_gan"] != "") == gan


def test_gpu_train_script_fits_epochs_to_the_budget_and_collects_the_results(setup, tmp_path):
    """scripts/gpu_train.sh, run here on the CPU: probe, fitted run, samples, files copied."""
    out = tmp_path / "collected"
    env = {
        **os.environ, "DEVICE": "cpu", "BUDGET_S": "2", "BATCH": "4", "WORKERS": "0",
        "REPEATS": "2", "INIT": "none", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    finished = subprocess.run(
        ["bash", "scripts/gpu_train.sh", str(setup["data"]), str(out), "--config",
         str(setup["config"])],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=DDP_TIMEOUT_S,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-2000:]
    # Whatever the probe measured, at least one whole epoch is trained.
    fitted = re.search(r"gpu_train: (\d+) epochs in about 2 s", finished.stdout)
    assert fitted, finished.stdout
    epochs = int(fitted.group(1))
    assert epochs >= 1
    assert f"({epochs} epochs) in" in finished.stdout
    assert "diagnostics (mean L1" in finished.stdout
    wanted = {"model.yaml", "weights.safetensors", "train_log.csv", "validation.csv",
              "run.log", "reconstructions.png", "keypoints40.png"}  # fmt: skip
    assert {path.name for path in out.iterdir()} == wanted
    config, _, _ = load_model(out)
    assert config == tiny_model_config()
    rows = read_log(out / "validation.csv")
    assert [int(row["epochs_completed"]) for row in rows] == list(range(1, epochs + 1))
    usage = subprocess.run(["bash", "scripts/gpu_train.sh"], cwd=REPO_ROOT, capture_output=True)
    assert usage.returncode == 2 and b"usage:" in usage.stderr


def test_resume_and_init_from_are_checked_before_any_data_is_read(tmp_path, capsys):
    missing = tmp_path / "absent"
    base = ["train", "fomm", str(tmp_path / "no-dataset"), "-o", str(tmp_path / "run")]
    assert main([*base, "--init-from", str(missing)]) == 2
    assert f"model to start from not found: {missing}" in capsys.readouterr().err
    assert main([*base, "--resume", str(missing)]) == 2
    assert f"checkpoint to resume from not found: {missing}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as both:
        main([*base, "--resume", str(tmp_path), "--init-from", str(tmp_path)])
    assert both.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
