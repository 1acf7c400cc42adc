"""`kp-motion train fomm`: train a FOMM keypoint detector + generator on a video dataset.

Settings come from config/train_fomm.yaml (or --config FILE; with --resume and no --config, from
the resumed run's own copy, OUTPUT/train_fomm.yaml); `--set KEY=VALUE` changes single settings
(dotted keys, YAML values), e.g. `--set max_steps=200 --set data.repeats=2`. Settings files of
an older version (a run started before 2026-12-07) are migrated when read
(kp_motion.training.settings.migrate), and so are their checkpoints.
Several processes (GPUs): torchrun --nproc_per_node N -m kp_motion.cli.main train fomm ...
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMMAND = ("train", "fomm")
HELP = "train the FOMM keypoint detector and generator (single process or torchrun DDP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", help="dataset root in the first-order-model layout (root/train, root/test)"
    )
    parser.add_argument(
        "-o", "--output", default="out/train-fomm", help="output folder (default: out/train-fomm)"
    )
    parser.add_argument("--config", help="training settings YAML (default: config/train_fomm.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting, e.g. --set epochs=5 --set optimizer.lr_generator=1e-4",
    )
    # One or the other: --resume continues a run, --init-from starts a new one.
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        help="continue from a checkpoint folder, or from an output folder's latest checkpoint; "
        "without --config, with the settings that run was started with (--set may change them)",
    )
    start.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start a new run (step 0, new optimiser) from the weights of a model or checkpoint "
        "folder whose weights fit the profile (settings without weights, such as "
        "generator.output_blend, may differ), e.g. models/fomm-compact-64 to fine-tune the "
        "synthetic-data model",
    )
    parser.add_argument(
        "--vgg19-weights",
        help="torchvision VGG19 state dict (.pth), needed when the perceptual loss weights are "
        "non-zero",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ..."
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def apply_overrides(settings: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply 'a.b=value' strings (values parsed as YAML) to a nested settings dict."""
    import yaml

    from kp_motion.cli.main import CliError

    for item in overrides:
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise CliError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CliError(f"--set {key}: {text!r} is not a YAML value") from None
        section = settings
        *parents, leaf = key.split(".")
        for parent in parents:
            if not isinstance(section.get(parent), dict):
                raise CliError(f"--set {key}: no settings section {parent!r}")
            section = section[parent]
        if leaf not in section:
            raise CliError(f"--set {key}: unknown setting {leaf!r}")
        section[leaf] = value
    return settings


def load_settings(
    args: argparse.Namespace, adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None
):
    """The run's settings: the YAML file (see the module docstring), given to `adjust` as read
    (a front such as research/part_supervision/train.py may change it), migrated to the
    current version, then the --set overrides; extra loss terms must be registered."""
    from kp_motion import config as config_io
    from kp_motion import paths
    from kp_motion.training.losses import extra_losses
    from kp_motion.training.settings import CONFIG_NAME, migrate, settings_from_dict

    source = Path(args.config) if args.config else None
    if source is None and args.resume:
        source = run_settings_file(Path(args.resume))
    source = source or paths.config_path(CONFIG_NAME)
    values = config_io.load_yaml(source)
    if adjust is not None:
        values = adjust(values)
    # Migrated first, so that --set addresses the current names.
    values = migrate(values, where=str(source))
    settings = settings_from_dict(apply_overrides(values, args.overrides), where=str(source))
    extra_losses(settings.losses.extra)  # an unknown term fails here, before any data is read
    return settings


def run_settings_file(resume: Path) -> Path | None:
    """The settings file a resumed run was started with: in the output folder given, or two
    levels above a checkpoint folder (OUTPUT/checkpoints/step_N); None when there is none."""
    from kp_motion.training.csv_log import CONFIG_COPY
    from kp_motion.training.state import CHECKPOINTS_DIR

    run_folder = resume.parent.parent if resume.parent.name == CHECKPOINTS_DIR else resume
    saved = run_folder / CONFIG_COPY
    return saved if saved.is_file() else None


def _train(args: argparse.Namespace, settings, context, pair_targets):
    """Run the training; its DDP modules are gone once this returns."""
    from kp_motion.models.model_config import load_profile
    from kp_motion.training.fomm_trainer import load_training_data, train_fomm

    show_progress = context.is_main and not args.no_progress
    model_config = load_profile(settings.profile)
    data = load_training_data(
        args.dataset, settings, model_config, progress=show_progress, pair_targets=pair_targets
    )
    return train_fomm(
        settings,
        data,
        args.output,
        context=context,
        model_config=model_config,
        resume=args.resume,
        init_from=args.init_from,
        vgg19_weights=args.vgg19_weights,
        extra_meta={"dataset": str(args.dataset)},
        show_progress=show_progress,
    )


def run(args: argparse.Namespace) -> int:
    return train_and_report(args, load_settings(args))


def train_and_report(
    args: argparse.Namespace, settings, pair_targets: Callable | None = None
) -> int:
    """Train with the parsed options and settings (`pair_targets`: see FramesDataset) and
    print one line of results (rank 0)."""
    import gc

    from kp_motion.cli.main import CliError
    from kp_motion.training import distributed
    from kp_motion.training.fomm_trainer import TrainingDivergedError

    # Checked before the data, whose loading can take minutes.
    for what, path in (
        ("checkpoint to resume from", args.resume),
        ("model to start from", args.init_from),
    ):
        if path is not None and not Path(path).exists():
            raise CliError(f"{what} not found: {path}")
    context = distributed.setup_distributed(args.device)
    try:
        result = _train(args, settings, context, pair_targets)
    except TrainingDivergedError as error:
        raise CliError(str(error)) from None
    finally:
        # DDP modules hold the process group: free them before destroying it, so that no
        # gloo thread is left to be torn down at interpreter exit (a rank once aborted there
        # with "terminate called without an active exception").
        gc.collect()
        distributed.cleanup_distributed()
    if context.is_main:
        validation = (
            "no validation (no test split)"
            if result.validation_l1 is None
            else f"validation L1 {result.validation_l1:.5f}"
        )
        print(
            f"trained {result.steps} steps ({result.epochs_completed} epochs) in "
            f"{result.seconds:.1f} s on {context.world_size} x {context.device}; {validation}; "
            f"final model: {result.final_model}"
        )
    return 0
