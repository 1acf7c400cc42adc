"""`kp-motion train forecaster`: train VRNN / RNN / VAE forecasters on extracted keypoint
sequences, then score them and the baselines with the block protocol on the validation data.

Each model is written to OUT/<kind>/ (forecaster.yaml + weights.safetensors); the protocol
table goes to the terminal and to OUT/evaluation.yaml.

With --keypoints FILE.npz (a keypoint set, e.g. the shared VoxCeleb keypoints) instead of
--data, the linear kinds can be trained too, `--model all` means every kind, and
--cross-validate first runs leave-one-identity-out cross-validation (closed loop, see
forecasting/crossval.py), writing its table, per-step plot and JSON to --report (default
OUT/report); the final models are then trained on every clip. --exclude-identity leaves
an identity's clips out of everything (e.g. the one the detector was validated on). Each model
records the detector: its model_id where the set holds one (`kp-motion extract --set`), else the
name given with --detector.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kp_motion.cli.main import CliError

if TYPE_CHECKING:  # heavy imports stay inside run() so that `kp-motion --help` is fast
    from kp_motion.data.keypoint_sequences import KeypointSequence
    from kp_motion.forecasting.settings import ForecasterSettings

COMMAND = ("train", "forecaster")
HELP = "Train keypoint forecasters (VRNN, RNN, VAE) on extracted keypoint sequences."

MODEL_CHOICES = ("vrnn", "rnn", "vae", "linear-ar", "direct-linear", "all")
SAMPLE_MEAN_ROLLOUTS = 20  # sampled VRNN rollouts averaged in the cross-validation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        metavar="SEQ_FOLDER",
        help="keypoint sequence folder written by `kp-motion extract`",
    )
    source.add_argument(
        "--keypoints",
        metavar="FILE.npz",
        help="a keypoint set (names, lengths, value, jacobian), split by identity",
    )
    parser.add_argument(
        "--cross-validate",
        action="store_true",
        help="with --keypoints: leave-one-identity-out cross-validation before the final models",
    )
    parser.add_argument(
        "--report", metavar="DIR", help="with --cross-validate: where the table and plot go"
    )
    parser.add_argument(
        "--detector",
        help="with --keypoints: the detector that gave the keypoints, recorded in each model "
        "(default: the name the set records, else 'unknown')",
    )
    parser.add_argument(
        "--exclude-identity",
        action="append",
        default=[],
        metavar="idNNNNN",
        help="with --keypoints: leave this identity's clips out of training and "
        "cross-validation (repeatable)",
    )
    parser.add_argument(
        "--val-data",
        metavar="SEQ_FOLDER",
        help="validation sequences (default: hold out train.val_fraction of --data)",
    )
    parser.add_argument(
        "--test-data",
        metavar="SEQ_FOLDER",
        help="also score the trained models and the baselines on these sequences (e.g. the "
        "test split); never used for training or model selection",
    )
    parser.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        default="vrnn",
        help="which forecaster to train (default: vrnn); 'all' is vrnn, rnn and vae with "
        "--data, and every kind with --keypoints (the linear kinds need --keypoints)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder; each model goes to DIR/<model>/"
    )
    parser.add_argument("--steps", type=int, help="optimiser steps (default: from the config)")
    parser.add_argument("--seed", type=int, help="random seed (default: from the config)")
    parser.add_argument(
        "--device", help="torch device, e.g. cpu or cuda (default: from the config)"
    )
    parser.add_argument(
        "--config", metavar="YAML", help="forecaster settings (default: config/forecaster.yaml)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load_data(
    args: argparse.Namespace, settings: ForecasterSettings
) -> tuple[list[KeypointSequence], list[KeypointSequence], dict, str]:
    from kp_motion.data.keypoint_sequences import load_sequences
    from kp_motion.forecasting.train import split_sequences
    from kp_motion.keypoints import NUM_KEYPOINTS

    sequences, meta = load_sequences(args.data)
    if meta["num_keypoints"] != NUM_KEYPOINTS:
        raise CliError(
            f"{args.data}: {meta['num_keypoints']} keypoints, forecasters need {NUM_KEYPOINTS}"
        )
    if args.val_data:
        val_sequences, val_meta = load_sequences(args.val_data)
        if val_meta["model_id"] != meta["model_id"]:
            raise CliError(
                f"--val-data keypoints come from detector {val_meta['model_id']!r}, "
                f"--data from {meta['model_id']!r}"
            )
        return sequences, val_sequences, meta, f"{len(val_sequences)} sequence(s) of --val-data"
    train, val = split_sequences(sequences, settings.train.val_fraction, settings.train.seed)
    if val is train:
        return train, val, meta, "the training data (only one sequence: nothing to hold out)"
    return train, val, meta, f"{len(val)} held-out sequence(s)"


def _load_test_data(folder: str, model_id: str) -> list[KeypointSequence]:
    from kp_motion.data.keypoint_sequences import load_sequences

    sequences, meta = load_sequences(folder)
    if meta["model_id"] != model_id:
        raise CliError(
            f"--test-data keypoints come from detector {meta['model_id']!r}, "
            f"--data from {model_id!r}"
        )
    return sequences


def _evaluate(
    forecaster_folders: dict[str, str],
    val_sequences: list[KeypointSequence],
    settings: ForecasterSettings,
) -> list[dict]:
    from kp_motion.forecasting.baselines import BASELINES
    from kp_motion.forecasting.checkpoint import load_forecaster
    from kp_motion.forecasting.protocol import compare_forecasters, contiguous_runs

    longest = max(len(run) for run in contiguous_runs(val_sequences))
    block_sizes = [k for k in settings.evaluation.block_sizes if 2 * k <= longest]
    forecasters = {kind: load_forecaster(folder) for kind, folder in forecaster_folders.items()}
    forecasters.update({name: load_forecaster(name) for name in BASELINES})
    return compare_forecasters(
        forecasters, val_sequences, block_sizes, settings.evaluation.reset_per_block
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import yaml

    from kp_motion.forecasting.protocol import format_table
    from kp_motion.forecasting.settings import LEARNED_KINDS, LINEAR_KINDS, load_settings
    from kp_motion.forecasting.train import SELECTION_SCORES, train_forecaster

    settings = load_settings(args.config)
    overrides = {name: getattr(args, name) for name in ("steps", "seed", "device")}
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if overrides.get("steps", 1) < 1:
        raise CliError(f"--steps must be >= 1, got {args.steps}")
    settings.train = dataclasses.replace(settings.train, **overrides)
    if args.keypoints:
        if args.val_data or args.test_data:
            raise CliError("--val-data and --test-data go with --data, not --keypoints")
        return _run_keypoint_set(args, settings)
    if args.cross_validate or args.report or args.exclude_identity or args.detector:
        raise CliError(
            "--cross-validate, --report, --exclude-identity and --detector need --keypoints "
            "(a keypoint set)"
        )
    if args.model in LINEAR_KINDS:
        raise CliError(f"--model {args.model} needs --keypoints (a keypoint set)")

    train_sequences, val_sequences, meta, val_note = _load_data(args, settings)
    # Checked before any training, so a wrong folder fails at once.
    test_sequences = _load_test_data(args.test_data, meta["model_id"]) if args.test_data else None
    print(f"training on {len(train_sequences)} sequence(s), validating on {val_note}")
    out = Path(args.out)
    kinds = LEARNED_KINDS if args.model == "all" else (args.model,)
    folders = {}
    for kind in kinds:
        result = train_forecaster(
            kind,
            train_sequences,
            val_sequences,
            settings,
            out / kind,
            progress=not args.no_progress,
            record={"detector_model_id": meta["model_id"], "dataset": meta["dataset"]},
        )
        folders[kind] = str(result.checkpoint)
        criterion = SELECTION_SCORES[result.selected_by]
        print(
            f"{kind}: best {criterion} {result.best_score:.4g} at step "
            f"{result.best_step}/{result.steps_run} ({result.seconds:.0f} s) -> {result.checkpoint}"
        )

    rows = _evaluate(folders, val_sequences, settings)
    if rows:
        print(format_table(rows))
    report = {
        "detector_model_id": meta["model_id"],
        "dataset": meta["dataset"],
        "validation": val_note,
        "reset_per_block": settings.evaluation.reset_per_block,
        "protocol": rows,
    }
    if test_sequences is not None:
        test_rows = _evaluate(folders, test_sequences, settings)
        print(f"\ntest data ({len(test_sequences)} sequence(s) of {args.test_data}):")
        print(format_table(test_rows))
        report["test"] = {"sequences": len(test_sequences), "protocol": test_rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.yaml").write_text(yaml.safe_dump(report, sort_keys=False))
    return 0


def _run_keypoint_set(args: argparse.Namespace, settings: ForecasterSettings) -> int:
    from pathlib import Path

    from kp_motion.data.keypoint_sets import load_keypoint_set
    from kp_motion.forecasting.closed_loop import format_scores
    from kp_motion.forecasting.crossval import ALL_KINDS, cross_validate, train_set

    # Read and checked before any training: a bad file fails at once, in one line.
    keypoint_set = load_keypoint_set(args.keypoints)
    if args.exclude_identity:
        try:
            keypoint_set = keypoint_set.excluding(args.exclude_identity)
        except ValueError as error:
            raise CliError(f"--exclude-identity: {error}") from None
    if args.cross_validate and len(keypoint_set.identities()) < 2:
        raise CliError(f"{args.keypoints}: cross-validation needs >= 2 identities")
    kinds = ALL_KINDS if args.model == "all" else (args.model,)
    out = Path(args.out)
    record = _training_record(args, keypoint_set)
    print(
        f"{args.keypoints}: {len(keypoint_set.clips)} clips, {keypoint_set.frames} frames "
        f"of {', '.join(keypoint_set.identities())}"
    )
    if args.cross_validate:
        block_sizes = list(settings.evaluation.block_sizes)
        result = cross_validate(
            keypoint_set, kinds, settings, block_sizes, out / "crossval",
            SAMPLE_MEAN_ROLLOUTS,
        )  # fmt: skip
        scores = {k: {n: s.score() for n, s in per_k.items()} for k, per_k in result.sums.items()}
        print(format_scores(scores))
        _write_crossval_report(
            Path(args.report or out / "report"), scores, result, args, keypoint_set
        )
    final = train_set(kinds, keypoint_set.clips, settings, out, record, not args.no_progress)
    for kind, folder in final.folders.items():
        note = final.notes.get(kind, "least squares")
        print(f"{kind}: {note} ({final.seconds[kind]:.0f} s) -> {folder}")
    return 0


def _training_record(args: argparse.Namespace, keypoint_set) -> dict:
    """What each model's forecaster.yaml records about its data: the detector (its model_id
    where the set holds one, so that a renderer with another detector can be told) and the
    identities trained on."""
    from pathlib import Path

    record = {"detector": args.detector or keypoint_set.detector.get("model", "unknown")}
    if "model_id" in keypoint_set.detector:
        record["detector_model_id"] = keypoint_set.detector["model_id"]
    record["dataset"] = Path(args.keypoints).name
    record["identities"] = keypoint_set.identities()
    if args.exclude_identity:
        record["excluded_identities"] = sorted(set(args.exclude_identity))
    return record


def _write_crossval_report(report_dir, scores, result, args, keypoint_set) -> None:
    import os

    from kp_motion.forecasting.crossval import change_structure, linear_predictability
    from kp_motion.forecasting.report import (
        detailed_json,
        markdown_table,
        plot_per_step,
        write_json,
    )

    report_dir.mkdir(parents=True, exist_ok=True)
    runs = [run for clip in keypoint_set.clips for run in clip.segments()]
    predictable = linear_predictability(runs)
    structure = change_structure(runs)
    write_json(
        report_dir / "crossval.json",
        {
            # Relative to the working folder: the record names no machine's absolute path.
            "keypoints": os.path.relpath(args.keypoints),
            "identities": keypoint_set.identities(),
            "training_record": _training_record(args, keypoint_set),
            "training_seconds": result.seconds,
            "in_sample_linear_r2_of_next_change": predictable,
            "change_structure": structure,
            "per_fold_all_mse": result.per_fold,
            "scores": detailed_json(scores),
        },
    )
    plot_per_step(
        scores, report_dir / "crossval-per-step.png", "leave-one-identity-out, closed loop"
    )
    seconds = ", ".join(f"{kind} {spent:.0f} s" for kind, spent in result.seconds.items())
    (report_dir / "crossval-table.md").write_text(
        f"{markdown_table(scores)}\n\nTraining wall time summed over the folds: {seconds}.\n\n"
        "Share of the next frame-to-frame change that a linear map of the last 5 changes of "
        "all 60 values (and the pull to the running mean) explains, fit and scored on the same "
        f"frames (an optimistic bound): positions {predictable['positions']:.2f}, "
        f"Jacobians {predictable['jacobians']:.2f}.\n\n"
        f"{_structure_lines(structure)}"
    )
    print(f"cross-validation report -> {report_dir}")


def _structure_lines(structure: dict) -> str:
    lines = []
    for part, found in structure.items():
        variogram = ", ".join(f"{value:.2e}" for value in found["variogram"])
        lines.append(
            f"{part}: mean squared change over 1, 2, 3 frames {variogram}; correlation of "
            f"successive changes {found['successive_change_correlation']:+.2f}; white-noise "
            f"variance from the line through them at 0 frames {found['white_noise_variance']:.2e}."
        )
    return "\n".join(lines) + "\n"
