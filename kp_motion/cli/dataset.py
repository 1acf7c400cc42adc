"""`kp-motion dataset`: a first-order-model-layout dataset from a folder of clips, split by
identity (kp_motion.data.identity_split).

    kp-motion dataset ../shared/data/voxceleb-seed/clips out/datasets/voxceleb-seed \\
        --hold-out id10290

The held-out identities make the test split, every other identity the train split. The
entries are symbolic links to the clips, never copies.
"""

from __future__ import annotations

import argparse

COMMAND = "dataset"
HELP = "link a folder of clips into train/ and test/ folders, split by identity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "clips", help="folder of clips named '<identity>#...' (e.g. VoxCeleb 'id10290#...mp4')"
    )
    parser.add_argument("output", help="dataset folder to create (output/train, output/test)")
    parser.add_argument(
        "--hold-out",
        nargs="+",
        required=True,
        metavar="IDENTITY",
        help="identities whose clips make the test split (the others make the train split)",
    )
    parser.add_argument(
        "--no-frame-count", action="store_true", help="do not read the clips' frame counts"
    )


def run(args: argparse.Namespace) -> int:
    from kp_motion.data.identity_split import (
        describe_split,
        find_clips,
        split_by_identity,
        write_links,
    )

    split = split_by_identity(find_clips(args.clips), args.hold_out)
    created = write_links(split, args.output)
    for line in describe_split(split, count_frames=not args.no_frame_count):
        print(line)
    total = sum(len(clips) for clips in split.clips.values())
    print(f"{args.output}: {len(created)} links created, {total - len(created)} already there")
    return 0
