"""Mutation fuzzer for everything a client, a peer, a feed or an eepsite can send i2proxy.

Targets (each input is a mutation of a valid seed, a splice of two, or random bytes):

- ``socks``: the SOCKS4/4a/5 handshake state machine, fed in random chunks, with and without
  RFC 1929 authentication (credentials accepted or refused at random);
- ``http``: request targets, Host headers, address-helper paths and values, Basic credentials,
  and the request/response header filters;
- ``session``: a whole proxy session on the mixed port (SOCKS or HTTP by the first byte) with
  in-memory transports: the client's bytes go in, and the "eepsite" behind the in-memory dialer
  answers with fuzzed bytes too (responses with CL+TE, chunked, garbage, truncation);
- ``hosts``: hosts.txt documents (lines, Proposal 112 properties, signatures);
- ``packet``: I2P streaming packets (``streaming.packet.decode``).

An *internal error* is any exception a target's contract does not allow (parsers: anything but
their documented error type; sessions: ``ProxyServer.stats.internal_errors``). The run prints
counts per target and exits 1 when there was any; the first inputs that caused one are printed
as hex so they can be replayed.

    python bench/fuzz.py --inputs 1000000 --seed 1      # the documented run (docs/BENCHMARKS.md)
    python bench/fuzz.py --seconds 20                   # a time-boxed run (the CI test)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from i2proxy import log as i2proxy_log
from i2proxy.config import Config
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.naming.hoststxt import parse_document, split_lines
from i2proxy.proxy import socks
from i2proxy.proxy.headers import (
    Origin,
    filter_request_headers,
    filter_response_headers,
    is_supercookie,
)
from i2proxy.proxy.http import (
    HttpError,
    basic_credentials,
    parse_helper_value,
    parse_request_target,
    split_address_helper,
)
from i2proxy.proxy.server import ProxyServer
from i2proxy.streaming.packet import Flag, Packet, PacketError, decode, encode

B32 = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz.b32.i2p"
TOKENS = [
    b"\r\n", b"\r\n\r\n", b"\n", b"\x00", b"\xff", b"\x05", b"\x04", b"\x01\x00", b":", b"@",
    b"%", b"%00", b"\xc2\xb9", b"\xef\xbb\xbf", b"chunked", b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n", b"Content-Length: -1\r\n", b"Host: ", b".i2p", b".b32.i2p",
    b"?i2paddresshelper=", b"#!sig=", b"#!action=adddest", b"=", b"0\r\n\r\n", b"ffffffff\r\n",
    b"Connection: keep-alive\r\n", b"Upgrade: websocket\r\n", b"Proxy-Authorization: Basic ",
    b"CONNECT ", b"GET ", b"POST ", b"HTTP/1.1", b"HTTP/1.0", b" ", b"\t", b"\xe2\x80\xa8",
    b"65535", b"99999999999999999999", b"\x7f", b"\x80",
]  # fmt: skip


class Mutator:
    """Seed-based mutations: bit flips, interesting bytes, tokens, deletions, duplications,
    truncation, splices; sometimes plain random bytes."""

    def __init__(self, rng: random.Random, seeds: list[bytes], *, light: bool = False) -> None:
        self.rng = rng
        self.seeds = seeds
        #: Fewer mutations per input: whole sessions need to get past the handshake often.
        self.rounds = (0, 0, 1, 1, 2, 3) if light else (0, 1, 1, 2, 3, 5, 8)

    def __call__(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.04:
            return rng.randbytes(rng.randrange(0, 96))
        data = bytearray(rng.choice(self.seeds))
        for _ in range(rng.choice(self.rounds)):
            op = rng.randrange(8)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[pos % len(data)] ^= 1 << rng.randrange(8)
            elif op == 1 and data:
                data[pos % len(data)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x30, 0x39, 0x20))
            elif op == 2:
                data[pos:pos] = rng.choice(TOKENS)
            elif op == 3:
                del data[pos : pos + rng.randrange(1, 16)]
            elif op == 4 and data:
                start = rng.randrange(len(data))
                chunk = data[start : start + rng.randrange(1, 64)]
                data[pos:pos] = chunk * rng.choice((1, 2, 8, 64))
            elif op == 5:
                del data[pos:]
            elif op == 6:
                other = rng.choice(self.seeds)
                cut = rng.randrange(len(other) + 1)
                data[pos:] = other[cut:]
            else:
                data[pos:pos] = rng.randbytes(rng.randrange(1, 8))
        return bytes(data)


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` split at 0-3 random points (parsers must not care how bytes arrive)."""
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(4)))
    parts, last = [], 0
    for cut in [*cuts, len(data)]:
        parts.append(data[last:cut])
        last = cut
    return parts


# --- seeds ---------------------------------------------------------------------------------------

KEYS = PrivateKeys.generate()
DEST_B64 = KEYS.destination.to_base64()


def socks_seeds() -> list[bytes]:
    name = B32.encode()
    return [
        b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50GET /",
        b"\x05\x01\x02" + b"\x01\x04user\x04pass" + b"\x05\x01\x00\x03\x08site.i2p\x00\x50",
        b"\x05\x02\x00\x02\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50",
        b"\x05\x01\x00\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00",
        b"\x05\x01\x00\x05\x01\x00\x04" + bytes(16) + b"\x00\x50",
        b"\x04\x01\x00\x50\x00\x00\x00\x01user\x00" + name + b"\x00",
        b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",
    ]


def http_seeds() -> list[bytes]:
    return [
        f"GET http://{B32}/ HTTP/1.1\r\nHost: {B32}\r\nAccept: */*\r\n\r\n".encode(),
        b"GET http://site.i2p/a?i2paddresshelper=" + DEST_B64.encode() + b" HTTP/1.1\r\n"
        b"Host: site.i2p\r\n\r\n",
        f"CONNECT {B32}:443 HTTP/1.1\r\nHost: {B32}:443\r\n\r\n\x16\x03\x01".encode(),
        f"POST http://{B32}/echo HTTP/1.1\r\nHost: {B32}\r\nContent-Length: 5\r\n\r\n"
        "hello".encode(),
        f"POST http://{B32}/ HTTP/1.1\r\nHost: {B32}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n".encode(),
        f"GET http://{B32}/ HTTP/1.1\r\nHost: {B32}\r\nConnection: keep-alive\r\n\r\n"
        f"GET http://{B32}/2 HTTP/1.1\r\nHost: {B32}\r\n\r\n".encode(),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4444\r\n\r\n",
        b"GET /proxy.pac HTTP/1.1\r\nHost: localhost:4444\r\n\r\n",
        b"POST /add HTTP/1.1\r\nHost: 127.0.0.1:4444\r\nContent-Type: "
        b"application/x-www-form-urlencoded\r\nContent-Length: 30\r\n\r\n"
        b"host=a.i2p&token=1.abc&dest=x",
        f"GET http://{B32}/ HTTP/1.1\r\nHost: {B32}\r\nProxy-Authorization: Basic "
        f"{base64.b64encode(b'user:pass').decode()}\r\nCookie: a=b\r\nOrigin: http://x.i2p\r\n"
        "Referer: http://x.i2p/p\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".encode(),
    ]


def response_seeds() -> list[bytes]:
    return [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/html\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"\r\n\x81",
        b"HTTP/1.0 200 OK\r\nSet-Cookie: a=b; Domain=.i2p\r\nLocation: http://x.i2p/\r\n\r\nbody",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ]


def hosts_seeds() -> list[bytes]:
    return [
        f"site.i2p={DEST_B64}\n# comment\n\nother.i2p={DEST_B64}#!date=1#sig=abc\n".encode(),
        f"#!action=remove#name=site.i2p#date=1#sig=xyz\nsub.site.i2p={DEST_B64}"
        "#!action=addsubdomain#oldname=site.i2p#olddest=x#oldsig=y#sig=z\r\n".encode(),
        b"\xef\xbb\xbfa.i2p=AAAA\r;semicolon\rb.i2p=" + b"A" * 516 + b"\n",
    ]


def packet_seeds() -> list[bytes]:
    dest = KEYS.destination
    return [
        encode(Packet(0, 7, flags=Flag.SYNCHRONIZE, from_destination=dest, max_packet_size=1730,
                      payload=b"GET /"), KEYS),
        encode(Packet(7, 9, 1, 0, nacks=(3, 4), resend_delay=5, payload=b"data")),
        encode(Packet(7, 9, 2, 1, flags=Flag.CLOSE), KEYS),
        encode(Packet(7, 9, 0, 5, delay_requested=60001)),
        encode(Packet(0, 11, flags=Flag.ECHO, from_destination=dest), KEYS),
    ]  # fmt: skip


# --- targets --------------------------------------------------------------------------------------


@dataclass
class Result:
    inputs: int = 0
    internal_errors: int = 0
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: How far the inputs got (sessions: requests parsed, streams dialled), to show they do.
    reached: dict[str, int] = field(default_factory=dict)

    def fail(self, data: bytes, exc: BaseException | str) -> None:
        self.internal_errors += 1
        if len(self.examples) < 5:
            self.examples.append(f"{exc!r}: {data[:300].hex()}")


def fuzz_socks(rng: random.Random, data: bytes) -> None:
    handshake = socks.SocksHandshake(require_auth=rng.random() < 0.5)
    for part in chunks(rng, data):
        for event in handshake.receive_data(part):
            if isinstance(event, socks.CredentialsReceived):
                handshake.accept_credentials(rng.random() < 0.7)
        handshake.data_to_send()
    if handshake.request is not None and not handshake.failed:
        handshake.reply_success(("127.0.0.1", 1) if rng.random() < 0.5 else None)
        handshake.take_trailing_data()


def fuzz_http(rng: random.Random, data: bytes) -> None:
    text = data.decode("latin-1")
    head, _, rest = text.partition("\r\n")
    method, _, target = head.partition(" ")
    target = target.rsplit(" HTTP/", 1)[0]
    host = None
    headers: list[tuple[bytes, bytes]] = []
    for line in rest.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.encode("latin-1"), value.strip().encode("latin-1")))
            if name.lower() == "host":
                host = value.strip()
    with contextlib.suppress(HttpError):
        parse_request_target(method or "GET", target, host)
    with contextlib.suppress(HttpError):
        split_address_helper(target)
    with contextlib.suppress(HttpError):
        parse_helper_value(target[-600:])
    basic_credentials(data[-80:])
    origin = Origin.from_url(target) or Origin("http", "site.i2p", 80)
    filter_request_headers(headers, origin=origin, b32_host=B32, user_agent=None)
    filter_response_headers(headers)
    for _, value in headers[:4]:
        is_supercookie(value)


def fuzz_hosts(rng: random.Random, data: bytes) -> None:
    for _ in parse_document(split_lines(data if rng.random() < 0.8 else data.decode("latin-1"))):
        pass


def fuzz_packet(rng: random.Random, data: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode(data, signature_length=rng.choice((None, 64, 40)))


# --- whole sessions, in memory --------------------------------------------------------------------


class MemoryTransport(asyncio.Transport):
    """The client's (or eepsite's) socket: collects what the proxy writes, never blocks."""

    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__()
        self.peer = peer
        self.written = 0
        self.closed = False
        self._protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.written += len(data)

    def write_eof(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._protocol is not None:
                asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 4446)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def memory_stream(
    data: bytes, peer: tuple[str, int]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = MemoryTransport(peer)
    transport._protocol = protocol
    protocol.connection_made(transport)
    reader.feed_data(data)
    reader.feed_eof()
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class MemoryDialer:
    """The I2P side: every stream answers with the next fuzzed eepsite response, then EOF."""

    def __init__(self, rng: random.Random, responses: Mutator) -> None:
        self.rng = rng
        self.responses = responses
        self.opened = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def open_stream(self, target: Any, port: int = 0, initial_data: bytes = b"", **_: Any):
        self.opened += 1
        if self.rng.random() < 0.1:
            from i2proxy.dialer.base import PeerUnreachable

            raise PeerUnreachable("fuzz: unreachable")
        return memory_stream(self.responses(), ("i2p", port))


class Book:
    def lookup(self, name: str) -> Any:
        return B32 if name == "site.i2p" else None

    def add(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_session(self, *args: Any, **kwargs: Any) -> None:
        pass


def session_server(rng: random.Random, users: bool) -> tuple[ProxyServer, MemoryDialer]:
    config = Config(
        mixed_listen="127.0.0.1:0",
        http_listen="",
        socks_listen="",
        users={"user": "pass"} if users else {},
        syn_window_ms=0,
        handshake_timeout=0.2,
        header_timeout=0.2,
        idle_timeout=0.2,
        connect_timeout=0.2,
        auth_timeout=0.5,
    )
    dialer = MemoryDialer(rng, Mutator(rng, response_seeds(), light=True))
    return ProxyServer(config, dialer, Book()), dialer  # type: ignore[arg-type]


async def fuzz_sessions(
    rng: random.Random, inputs: Callable[[], bytes], count: int, deadline: float, result: Result
) -> None:
    servers = [session_server(rng, users=False), session_server(rng, users=True)]
    batch = 16
    done = 0
    while done < count and time.monotonic() < deadline:
        server, _ = servers[done // batch % 2]
        before = server.stats.internal_errors
        sent: list[bytes] = []
        for i in range(min(batch, count - done)):
            data = inputs()
            sent.append(data)
            reader, writer = memory_stream(data, (f"10.0.{i}.{rng.randrange(256)}", 40000 + i))
            server._spawn(reader, writer, server._handle_mixed)
        tasks = set(server._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                result.fail(b"", "session still running after 10 s")
                task.cancel()
        result.inputs += len(sent)
        done += len(sent)
        result.reached = {
            "http_requests": sum(s.stats.http_requests for s, _ in servers),
            "socks_connects": sum(s.stats.socks_connects for s, _ in servers),
            "streams_opened": sum(d.opened for _, d in servers),
        }
        if server.stats.internal_errors != before:
            for data in sent:
                result.fail(data, "internal_errors in ProxyServer.stats (batch)")
                break
            result.internal_errors += server.stats.internal_errors - before - 1


# --- driver ---------------------------------------------------------------------------------------

SYNC_TARGETS: dict[str, tuple[Callable[[random.Random, bytes], None], Callable[[], list[bytes]]]]
SYNC_TARGETS = {
    "socks": (fuzz_socks, socks_seeds),
    "http": (fuzz_http, http_seeds),
    "hosts": (fuzz_hosts, hosts_seeds),
    "packet": (fuzz_packet, packet_seeds),
}
#: Share of the inputs per target (sessions are ~100 times slower than a parser call).
WEIGHTS = {"socks": 0.25, "http": 0.25, "hosts": 0.2, "packet": 0.2, "session": 0.1}


def run_sync(name: str, rng: random.Random, count: int, deadline: float) -> Result:
    target, seeds = SYNC_TARGETS[name]
    mutate = Mutator(rng, seeds())
    result = Result()
    started = time.monotonic()
    for i in range(count):
        if i % 256 == 0 and time.monotonic() > deadline:
            break
        data = mutate()
        try:
            target(rng, data)
        except Exception as exc:
            result.fail(data, exc)
        result.inputs += 1
    result.seconds = time.monotonic() - started
    return result


def run(inputs: int, seconds: float | None, seed: int) -> dict[str, Result]:
    rng = random.Random(seed)
    results: dict[str, Result] = {}
    started = time.monotonic()
    budget = seconds if seconds is not None else float("inf")
    share_used = 0.0
    for name, weight in WEIGHTS.items():
        # A time-boxed run gives each target its share of the time; a counted one its inputs.
        deadline = started + budget * (share_used + weight)
        share_used += weight
        count = int(inputs * weight) if seconds is None else sys.maxsize
        if name == "session":
            result = Result()
            t0 = time.monotonic()
            mutate = Mutator(rng, socks_seeds() + http_seeds(), light=True)
            asyncio.run(fuzz_sessions(rng, mutate, count, deadline, result))
            result.seconds = time.monotonic() - t0
        else:
            result = run_sync(name, rng, count, deadline)
        results[name] = result
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="total inputs (default 1e5)")
    parser.add_argument("--seconds", type=float, help="time-box the run instead of counting")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    i2proxy_log.configure(json=False, level="critical")
    results = run(args.inputs, args.seconds, args.seed)
    total = sum(r.inputs for r in results.values())
    errors = sum(r.internal_errors for r in results.values())
    summary = {
        "seed": args.seed,
        "inputs": total,
        "internal_errors": errors,
        "targets": {
            name: {
                "inputs": r.inputs,
                "internal_errors": r.internal_errors,
                "seconds": round(r.seconds, 1),
                "examples": r.examples,
                "reached": r.reached,
            }
            for name, r in results.items()
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for name, r in results.items():
            rate = r.inputs / r.seconds if r.seconds else 0.0
            print(
                f"{name:8} {r.inputs:>9} inputs  {r.internal_errors} internal errors  "
                f"{r.seconds:6.1f} s  {rate:8.0f}/s"
            )
            if r.reached:
                print("         reached: " + ", ".join(f"{k} {v}" for k, v in r.reached.items()))
            for example in r.examples:
                print(f"         {example}")
        print(f"total    {total:>9} inputs  {errors} internal errors (seed {args.seed})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
