"""``i2proxy keys ...``: create, inspect, import and export destination key files.

The proxy's persistent identity is a key file in our JSON format (docs/I2P-CORE.md); these
commands make one, show its b32 address, and convert from/to the binary files of i2pd and Java's
I2PTunnel and SAM's base64 (read by :mod:`i2proxy.i2p.keyfile`), so an existing identity can be
kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from i2proxy.i2p.destination import Destination
from i2proxy.i2p.errors import I2PFormatError
from i2proxy.i2p.keyfile import KeyFileError, read_key_file, save_key_file
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.signing import SIGNABLE_TYPES
from i2proxy.i2p.sigtypes import SigType

_SIG_NAMES = {t.name.lower(): t for t in SIGNABLE_TYPES} | {"ed25519": SigType.ED25519}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "keys",
        help="create, inspect, import and export destination key files",
        description="Destination key files: our JSON format, binary i2pd .dat or Java I2PTunnel "
        "private key files, SAM base64.",
    )
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = sub.add_parser("generate", help="create a new key file (mode 0600) and print its b32")
    p.add_argument("file", type=Path)
    p.add_argument("--sig-type", default="ed25519", choices=sorted(_SIG_NAMES))
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=_generate)

    p = sub.add_parser("show", help="print the b32, types and destination of a key file")
    p.add_argument(
        "file", type=Path, help="our key file, an i2pd .dat or Java private key file, or SAM base64"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)

    p = sub.add_parser(
        "import", help="convert an i2pd .dat, a Java private key file or SAM base64 to our format"
    )
    p.add_argument("source", type=Path)
    p.add_argument("file", type=Path, help="the key file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=_import)

    p = sub.add_parser("export-sam", help="print the SAM private-key base64 (a secret!)")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=_export_sam)

    p = sub.add_parser("inspect", help="b32 and types of a base64 destination")
    p.add_argument(
        "destination",
        help="I2P base64 destination (I2P's base64 uses '-': one that starts with it goes "
        "after '--', as in: i2proxy keys inspect -- -abc...)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_inspect)


def describe(dest: Destination) -> dict[str, Any]:
    """The facts a user wants about a destination."""
    return {
        "b32": dest.b32,
        "sig_type": dest.sig_type.name,
        "crypto_type": dest.crypto_type.name,
        "length": len(dest.to_bytes()),
        "destination": dest.to_base64(),
    }


def _print(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")


def _fail(message: str) -> int:
    print(f"i2proxy keys: {message}", file=sys.stderr)
    return 1


def _generate(args: argparse.Namespace) -> int:
    if args.file.exists() and not args.force:
        return _fail(f"{args.file} exists (use --force to replace it)")
    keys = PrivateKeys.generate(_SIG_NAMES[args.sig_type])
    try:
        save_key_file(keys, args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    print(keys.destination.b32)
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        keys = read_key_file(args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    info = describe(keys.destination)
    info["encryption_keys"] = [k.crypto_type.name for k in keys.encryption_keys]
    _print(info, args.json)
    return 0


def _import(args: argparse.Namespace) -> int:
    if args.file.exists() and not args.force:
        return _fail(f"{args.file} exists (use --force to replace it)")
    try:
        keys = read_key_file(args.source)
        save_key_file(keys, args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    print(keys.destination.b32)
    return 0


def _export_sam(args: argparse.Namespace) -> int:
    try:
        keys = read_key_file(args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    print(keys.to_sam_base64())
    return 0


def _inspect(args: argparse.Namespace) -> int:
    try:
        dest = Destination.from_base64(args.destination.strip())
    except I2PFormatError as exc:
        return _fail(str(exc))
    _print(describe(dest), args.json)
    return 0
