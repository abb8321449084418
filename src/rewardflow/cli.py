"""The `rewardflow` command: a thin dispatcher over the modules in `rewardflow.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from rewardflow import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardflow",
        description=(
            "Train text-to-image flow-matching models conditioned on reward scores (MIRO) "
            "and sample with per-reward control. Run `rewardflow <command> --help` for details."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rewardflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    # Discovery keeps each subcommand in its own module, so adding one never edits this file.
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"rewardflow.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Library errors carry a message meant for the user; no traceback for bad input.
        print(f"rewardflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
