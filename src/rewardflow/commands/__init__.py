"""CLI subcommands. Each module here defines `register(subparsers)`; cli.py discovers them.

A module adds one top-level subcommand (e.g. `data`, `score`, `train`) and may nest its own
sub-subcommands. Keep them thin: parse arguments, call library code.
"""
