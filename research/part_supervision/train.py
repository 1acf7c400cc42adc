"""`kp-motion train fomm` with the part-supervision terms registered (losses.TERMS).

Every option of `kp-motion train fomm` works the same (--config, --set, --resume, --init-from,
torchrun); on top of them:

    --term NAME=WEIGHT    switch a term on: its weight goes to the run's losses.extra
    --study-config FILE   the terms' knobs (default: config.yaml here; a resumed run: its own
                          copy, OUTPUT/part_supervision.yaml)
    --study-set KEY=VALUE change one knob, e.g. --study-set part_following_match=slot

    python -m research.part_supervision.train out/datasets/synth-64 -o out/runs/slot \\
        --init-from models/fomm-compact-64 --term part_following=50 \\
        --term part_following_jacobian=10 --study-set part_following_match=slot \\
        --set data.augmentation.horizontal_flip=0

Run files written before the terms left the core (settings version 1, whose `losses` held
them) keep them: their weights move to losses.extra and their knobs to the study's settings.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from kp_motion import config as config_io
from kp_motion.cli import train_fomm
from kp_motion.cli.main import CliError
from research.part_supervision.losses import (
    PART_TERMS,
    TERMS,
    StudySettings,
    check_weights,
    register_terms,
)
from research.part_supervision.poses import part_pose_targets, training_part_poses

STUDY_CONFIG = Path(__file__).with_name("config.yaml")
STUDY_COPY = "part_supervision.yaml"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_fomm.add_arguments(parser)
    parser.add_argument("--term", action="append", default=[], metavar="NAME=WEIGHT",
                        help=f"switch a term on ({', '.join(TERMS)})")  # fmt: skip
    parser.add_argument("--study-config", help="the terms' knobs (default: config.yaml here)")
    parser.add_argument("--study-set", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def from_version_1(values: dict[str, Any], knobs: dict[str, Any]) -> dict[str, Any]:
    """A version-1 settings file's research entries: weights to losses.extra, knobs into
    `knobs` (unless given); the core's migration drops what is left of them."""
    losses = values.get("losses")
    if values.get("version", 1) != 1 or not isinstance(losses, dict):
        return values
    extra = losses.setdefault("extra", {})
    for name in TERMS:
        weight = losses.pop(name, 0)
        if weight:
            extra[name] = weight
    for name in StudySettings.__dataclass_fields__:
        if name in losses:
            knobs.setdefault(name, losses.pop(name))
    return values


def with_terms(values: dict[str, Any], terms: list[str]) -> dict[str, Any]:
    """--term NAME=WEIGHT options into losses.extra."""
    extra = values.setdefault("losses", {}).setdefault("extra", {})
    for item in terms:
        name, separator, weight = item.partition("=")
        if not separator or name not in TERMS:
            raise CliError(f"--term expects NAME=WEIGHT with NAME one of {', '.join(TERMS)}")
        try:
            extra[name] = float(weight)
        except ValueError:
            raise CliError(f"--term {name}: {weight!r} is not a number") from None
    return values


def study_settings(args: argparse.Namespace, from_run_file: dict[str, Any]) -> StudySettings:
    source = Path(args.study_config) if args.study_config else None
    if source is None and args.resume:
        run_file = train_fomm.run_settings_file(Path(args.resume))
        copy = run_file.with_name(STUDY_COPY) if run_file is not None else None
        source = copy if copy is not None and copy.is_file() else None
    knobs = config_io.load_yaml(source or STUDY_CONFIG)
    knobs.update(from_run_file)  # a version-1 run file's own knobs
    knobs = train_fomm.apply_overrides(knobs, args.study_set)
    return config_io.from_dict(StudySettings, knobs, where=str(source or STUDY_CONFIG))


def train(args: argparse.Namespace) -> int:
    # The core checks that every term of losses.extra is registered when it reads the
    # settings, whose version-1 entries may hold the knobs: registered with the shipped knobs
    # first, again with the run's once they are known.
    register_terms(config_io.from_dict(StudySettings, config_io.load_yaml(STUDY_CONFIG)))
    knobs_v1: dict[str, Any] = {}
    settings = train_fomm.load_settings(
        args, lambda values: with_terms(from_version_1(values, knobs_v1), args.term)
    )
    check_weights(settings.losses.extra)
    study = study_settings(args, knobs_v1)
    register_terms(study)
    if os.environ.get("RANK", "0") == "0":  # rank 0 writes the run's files, as the core does
        Path(args.output).mkdir(parents=True, exist_ok=True)
        config_io.save(study, Path(args.output) / STUDY_COPY)
    pair_targets = None
    if any(settings.losses.extra.get(name, 0) > 0 for name in PART_TERMS):
        pair_targets = part_pose_targets(training_part_poses(args.dataset))
    return train_fomm.train_and_report(args, settings, pair_targets)


def run(argv: list[str] | None = None) -> int:
    """Like `kp-motion train fomm`: bad input is one line on stderr and exit status 2."""
    args = parse_arguments(argv)
    try:
        return train(args)
    except (CliError, FileNotFoundError, ValueError) as error:
        print(f"part_supervision.train: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
