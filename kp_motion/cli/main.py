"""`kp-motion`: one console command; each subcommand lives in its own module of this package.

A command module defines
    COMMAND: str | tuple[str, str]   e.g. "animate", or ("train", "fomm") for a nested command
    HELP: str                         one line for `kp-motion --help`
    add_arguments(parser)             declares its options
    run(args) -> int                  does the work; returns the exit status
and imports heavy dependencies (torch, cv2, rclpy) inside run(), so --help stays fast.

Errors meant for the user are raised as CliError (or FileNotFoundError / ValueError) and
printed as one line; the command then exits with status 2. Any other OSError (a full disk, a
permission) is printed the same way, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import kp_motion.cli as cli_package


class CliError(Exception):
    """A problem with the user's input, printed as one line without a traceback."""


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"{cli_package.__name__}.{info.name}")
        if hasattr(module, "COMMAND"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kp-motion",
        description="Keypoint-based motion transfer: FOMM keypoints, forecasting, rendering.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    groups: dict[str, argparse._SubParsersAction] = {}
    for module in _command_modules():
        name = module.COMMAND
        if isinstance(name, tuple):
            group_name, leaf = name
            if group_name not in groups:
                group = commands.add_parser(group_name, help=f"{group_name} a model")
                groups[group_name] = group.add_subparsers(dest="subcommand", metavar="WHAT")
                groups[group_name].required = True
            sub = groups[group_name].add_parser(leaf, help=module.HELP, description=module.HELP)
        else:
            sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CliError, FileNotFoundError, ValueError) as error:
        print(f"kp-motion {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a disk that filled up or a permission lost mid-run
        where = f" ({error.filename})" if error.filename else ""
        print(f"kp-motion {args.command}: error: {error.strerror or error}{where}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kp-motion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run through the imported module, not this __main__ copy: command modules raise the
    # CliError class of kp_motion.cli.main, which is a different object from __main__.CliError.
    from kp_motion.cli import main as cli_main

    sys.exit(cli_main.main())
