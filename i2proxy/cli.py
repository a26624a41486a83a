"""The ``i2proxy`` command line. Each command group lives in its package's ``cli`` module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from i2proxy import __version__, log

#: Modules that each expose ``register(subparsers)``; one line per command group.
COMMAND_MODULES: list[str] = [
    "i2proxy.proxy.cli",
    "i2proxy.naming.cli",
    "i2proxy.i2p.cli",
    "i2proxy.deploy.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="i2proxy",
        description="SOCKS and HTTP proxy for the I2P network.",
    )
    parser.add_argument("--version", action="version", version=f"i2proxy {__version__}")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSON log lines (default: when stderr is not a terminal)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(json=args.log_json, level=args.log_level)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args) or 0)
