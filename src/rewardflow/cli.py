"""The `rewardflow` command: a thin dispatcher over the modules in `rewardflow.commands`."""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys

from rewardflow import __version__, commands
from rewardflow.utils.errors import LicenseNotAccepted
from rewardflow.utils.locks import FolderLockedError

# OS errors that are the machine's state, not a bug: a one-line message, no traceback.
_OS_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


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
    except (ValueError, FileNotFoundError, KeyError, FolderLockedError, LicenseNotAccepted) as exc:
        # Library errors carry a message meant for the user; no traceback for bad input.
        print(f"rewardflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in _OS_FAULTS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(
            f"rewardflow {args.command}: error: {_OS_FAULTS[exc.errno]}{where}. Free space, fix the permissions "
            "or choose another output folder and rerun; finished work is kept.",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
