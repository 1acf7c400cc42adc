"""`kp-motion synth`: generate the synthetic motion dataset (first-order-model layout).

    kp-motion synth --out data/synth                      # the default dataset (config/synth.yaml)
    kp-motion synth --out out/tiny --train 8 --test 2 --frames 32 --format png --seed 3
    kp-motion synth --out out/arms --kinds arm           # only robot arms
    kp-motion synth --demo-assets assets                  # the bundled demo source + driving

Options override the YAML config; the same seed and settings always give the same frames.
User errors are raised as ValueError (the dispatcher prints them as one line, exit status 2;
CliError is avoided because under `python -m kp_motion.cli.main` the module runs as __main__
and a CliError imported from kp_motion.cli.main is a different class there).
"""

from __future__ import annotations

import argparse

COMMAND = "synth"
HELP = "generate the synthetic motion dataset (train/ and test/ videos + manifest)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="dataset folder to create (train/, test/, manifest.yaml)")
    parser.add_argument("--config", help="YAML settings (default: the package's config/synth.yaml)")
    parser.add_argument("--seed", type=int, help="dataset seed")
    parser.add_argument("--size", type=int, help="frame side in pixels (e.g. 64, 128, 256)")
    parser.add_argument("--train", type=int, help="number of training videos")
    parser.add_argument("--test", type=int, help="number of test videos")
    parser.add_argument("--frames", type=int, help="frames per video")
    parser.add_argument("--fps", type=float, help="frame rate")
    parser.add_argument("--format", choices=("mp4", "png"), help="mp4 files or PNG frame folders")
    parser.add_argument(
        "--kinds",
        help="kinds mix, e.g. 'quadruped,arm' (equal shares) or 'quadruped=3,blob=1'; "
        "kinds left out get none (kinds: quadruped, biped, arm, blob)",
    )
    parser.add_argument("--supersample", type=int, help="render at size x N, then shrink")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset already in --out (only the videos its manifest lists)",
    )
    parser.add_argument(
        "--demo-assets",
        metavar="DIR",
        help="instead of a dataset, write demo_source.png and demo_driving.mp4 to DIR",
    )
    parser.add_argument(
        "--demo-kind",
        default="quadruped",
        help="kind of the demo videos (default: quadruped)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_kinds(text: str):
    """'quadruped=3,blob' -> KindMix(quadruped=3, blob=1, others 0)."""
    from kp_motion.data.synthetic import KindMix
    from kp_motion.data.synthetic_scenes import KINDS

    weights = dict.fromkeys(KINDS, 0.0)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in weights:
            raise ValueError(f"--kinds: unknown kind {name!r} (expected {', '.join(KINDS)})")
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"--kinds: {item!r} is not kind=number") from None
    if sum(weights.values()) <= 0:
        raise ValueError(f"--kinds: no kind with a positive share in {text!r}")
    return KindMix(**weights)


def build_config(args: argparse.Namespace):
    """YAML config with the command-line overrides applied, validated."""
    import dataclasses

    from kp_motion.data.synthetic import load_config

    config = load_config(args.config)
    overrides = {
        "seed": args.seed,
        "size": args.size,
        "num_train": args.train,
        "num_test": args.test,
        "num_frames": args.frames,
        "fps": args.fps,
        "format": args.format,
        "supersample": args.supersample,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if args.kinds is not None:
        overrides["kinds"] = parse_kinds(args.kinds)
    return dataclasses.replace(config, **overrides).validate()


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from kp_motion.data import synthetic

    if not args.out and not args.demo_assets:
        raise ValueError("give --out DIR (a dataset) or --demo-assets DIR")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1 (got {args.workers})")
    config = build_config(args)
    if args.demo_assets:
        info = synthetic.write_demo_assets(args.demo_assets, args.demo_kind, config.seed, config)
        print(
            f"wrote {Path(args.demo_assets) / 'demo_source.png'} and demo_driving.mp4 "
            f"({info['driving']['frames']} frames, {config.size} px, kind {info['kind']}, "
            f"seed {info['seed']})"
        )
        return 0
    start = time.perf_counter()
    manifest = synthetic.generate_dataset(
        config, args.out, workers=args.workers, overwrite=args.overwrite, progress=not args.quiet
    )
    elapsed = time.perf_counter() - start
    counts = ", ".join(
        f"{split} {sum(kinds.values())}" for split, kinds in manifest["counts"].items()
    )
    print(
        f"wrote {len(manifest['videos'])} videos ({counts}; {config.size} px, "
        f"{config.num_frames} frames, {config.format}) to {args.out} in {elapsed:.1f} s"
    )
    return 0
