"""Benchmark: parse + b32 of N destinations (default 100 000).

Usage: python bench/bench_destinations.py [--count N] [--repeat R]

Inputs are N distinct destinations in I2P base64 with the signing-type mix of the real default
address book (Ed25519, DSA/NULL certificate, P-256, P-521).  Measured, best of R runs:

- ``from_base64 + b32``: what a resolver does for each hosts.txt line;
- ``from_bytes + b32``: what the I2CP/streaming layers do with a destination off the wire;
- ``floor``: the same work with no validation or objects at all (stdlib base64 decode, SHA-256,
  base32 encode) — the peer that shows what our structure and checks cost.

Times are CPU time of this process (``time.process_time``), best of R: the machine is shared,
and wall-clock numbers swung by 2x with other jobs running.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2proxy.i2p.base64 import b64encode
from i2proxy.i2p.certificate import Certificate
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.sigtypes import CryptoType, SigType

MIX = [
    (Certificate.key(SigType.ED25519, CryptoType.ELGAMAL), 34),
    (Certificate.null(), 28),
    (Certificate.key(SigType.ECDSA_P256, CryptoType.ELGAMAL), 5),
    (Certificate.key(SigType.ECDSA_P521, CryptoType.ELGAMAL, b"\x01\x02\x03\x04"), 1),
]


def make_inputs(count: int) -> list[bytes]:
    certs = [cert for cert, weight in MIX for _ in range(weight)]
    return [
        os.urandom(384) + certs[i % len(certs)].to_bytes() for i in range(count)
    ]  # fmt: skip


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    raws = make_inputs(args.count)
    texts = [b64encode(r) for r in raws]

    def parse_b64() -> None:
        for t in texts:
            Destination.from_base64(t).b32  # noqa: B018

    def parse_bytes() -> None:
        for r in raws:
            Destination.from_bytes(r).b32  # noqa: B018

    def floor() -> None:
        for t in texts:
            raw = base64.b64decode(t, altchars=b"-~")
            base64.b32encode(hashlib.sha256(raw).digest()).decode().rstrip("=").lower()

    print(f"python {platform.python_version()}, {platform.machine()}, {args.count} destinations")
    for label, fn in (
        ("from_base64 + b32", parse_b64),
        ("from_bytes + b32", parse_bytes),
        ("floor (stdlib b64 + sha256 + b32, no checks)", floor),
    ):
        seconds = best_of(args.repeat, fn)
        print(
            f"{label:46s} {seconds:7.3f} s  {args.count / seconds:10,.0f} /s  "
            f"{seconds / args.count * 1e6:6.2f} µs each"
        )


if __name__ == "__main__":
    main()
