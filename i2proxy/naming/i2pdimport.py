"""Import an i2pd address book directory (``<i2pd datadir>/addressbook``) — a migration path.

i2pd keeps ``addresses.csv`` (``name,<52-char b32 hash>`` per line; ``local.csv`` the same for
its local names) and one file per destination, ``b<first b32 char>/<b32>.b32``, holding the raw
destination bytes. We read both, check that every destination file hashes to the b32 it is
filed under (a mixed-up or corrupt file is refused, not imported), and hand the result to the
ordinary merge as hosts.txt lines, so the usual name rules and first-come conflicts apply.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from i2proxy.i2p.names import is_b32_name
from i2proxy.naming.storage import read_bounded

#: A destination with the largest key certificate stays far below this.
MAX_IDENTITY_BYTES = 4096
MAX_CSV_BYTES = 64 * 1024 * 1024
CSV_FILES = ("addresses.csv", "local.csv")


@dataclass
class I2pdImport:
    """hosts.txt lines recovered from an i2pd address book, and what could not be used."""

    lines: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def is_i2pd_addressbook(path: Path) -> bool:
    return path.is_dir() and (path / "addresses.csv").is_file()


def read_i2pd_addressbook(directory: Path) -> I2pdImport:
    """Turn i2pd's addresses.csv/local.csv + identity files into hosts.txt lines."""
    from i2proxy.i2p.base64 import b32decode, b64encode

    out = I2pdImport()
    seen: set[str] = set()
    for csv_name in CSV_FILES:
        try:
            data = read_bounded(directory / csv_name, MAX_CSV_BYTES)
        except FileNotFoundError:
            continue
        for raw in data.decode("utf-8", errors="replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, comma, b32 = line.partition(",")
            name, b32 = name.strip().lower(), b32.strip().lower()
            if not comma or not name or name in seen:
                out.skipped["malformed" if not comma or not name else "duplicate"] += 1
                continue
            if not is_b32_name(f"{b32}.b32.i2p"):
                out.skipped["not-b32 (b33 or garbage)"] += 1
                continue
            path = directory / f"b{b32[0]}" / f"{b32}.b32"
            try:
                identity = read_bounded(path, MAX_IDENTITY_BYTES)
            except FileNotFoundError:
                out.skipped["no-identity-file"] += 1
                continue
            except OSError:
                out.skipped["unreadable-identity-file"] += 1
                continue
            if hashlib.sha256(identity).digest() != b32decode(b32):
                out.skipped["identity-hash-mismatch"] += 1
                continue
            seen.add(name)
            out.lines.append(f"{name}={b64encode(identity)}")
    return out
