"""Datagram round trip vs streaming round trip on the same path, and datagram loss.

Two native dialers of a running test network (``python -m testnet up``): a *server* on router 2
that echoes both ways — a stream echo (I2P port 7) and a datagram echo (a datagram endpoint on
local I2P port 7) — and a *client* on router 3. The same two destinations and the same tunnels
carry both, so the only difference is the protocol:

- ``stream``: one stream, opened once, then N sequential 64-byte request/echo round trips;
- ``datagram``: N sequential 64-byte repliable datagrams, each waiting for its echo;
- ``i2pd udp``: the same datagrams to the test network's i2pd UDP echo (router 2, zero-hop
  tunnels, answers raw) — the reference the SOCKS tests use.

The three are interleaved sample by sample. Then ``--loss-count`` datagrams (default 1000) go to
the i2pd echo paced ``--pace-ms`` apart; echoes are matched byte for byte (sha256 of every
payload), lost = sent - echoed intact. With ``--impair "--loss 2"`` (arguments of
``python -m testnet impair``) the loss run is repeated on impaired links, which are cleared at
the end.

    python bench/bench_datagrams.py --testnet NAME [--samples 50] [--loss-count 1000]
        [--pace-ms 10] [--impair "--loss 2"]

Prints Markdown tables (milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from i2proxy import log  # noqa: E402
from i2proxy.dialer.datagrams import DatagramEndpoint  # noqa: E402
from i2proxy.dialer.native import NativeDialer  # noqa: E402
from i2proxy.i2p.keys import PrivateKeys  # noqa: E402
from testnet.status import TestnetStatus  # noqa: E402

ECHO_PORT = 7
SIZE = 64
SERVER_ROUTER, CLIENT_ROUTER = 2, 3


def options(status: TestnetStatus) -> dict[str, str]:
    length = str(status.tunnel_length)
    return {"inbound.length": length, "outbound.length": length}


async def start_server(status: TestnetStatus) -> tuple[NativeDialer, asyncio.Task[None]]:
    host, port = status.routers[SERVER_ROUTER].i2cp_host_port
    server = NativeDialer(host, port, keys=PrivateKeys.generate(), options=options(status))
    await server.start()

    async def stream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server.listen(stream_echo, ECHO_PORT)
    endpoint = await server.open_datagram_endpoint(ECHO_PORT)

    async def datagram_echo() -> None:
        while True:
            datagram = await endpoint.receive()
            await endpoint.send(datagram.sender, datagram.payload, datagram.src_port)

    task = asyncio.create_task(datagram_echo())
    await server.wait_published(120)
    return server, task


async def datagram_rtt(endpoint: DatagramEndpoint, target: str, port: int) -> float | None:
    payload = os.urandom(SIZE)
    started = time.perf_counter()
    await endpoint.send(target, payload, port)
    deadline = started + 10
    while (left := deadline - time.perf_counter()) > 0:
        try:
            datagram = await asyncio.wait_for(endpoint.receive(), left)
        except TimeoutError:
            break
        if datagram.payload == payload:
            return time.perf_counter() - started
    return None  # lost


async def stream_rtt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    payload = os.urandom(SIZE)
    started = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    echoed = await asyncio.wait_for(reader.readexactly(SIZE), 30)
    if echoed != payload:
        raise RuntimeError("stream echo differs")
    return time.perf_counter() - started


async def loss_run(
    endpoint: DatagramEndpoint, target: str, port: int, count: int, pace: float
) -> tuple[int, int, float]:
    """(sent, echoed intact, seconds): paced sends, echoes matched by sha256."""
    expected = {}
    echoed: set[bytes] = set()

    async def collect() -> None:
        while True:
            datagram = await endpoint.receive()
            digest = hashlib.sha256(datagram.payload).digest()
            if digest in expected:
                echoed.add(digest)

    collector = asyncio.create_task(collect())
    started = time.perf_counter()
    for i in range(count):
        payload = i.to_bytes(4, "big") + os.urandom(SIZE - 4)
        expected[hashlib.sha256(payload).digest()] = i
        await endpoint.send(target, payload, port)
        await asyncio.sleep(pace)
    await asyncio.sleep(10)  # stragglers
    collector.cancel()
    return count, len(echoed), time.perf_counter() - started


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(values) * 1000:.1f} (p90 {p90 * 1000:.1f})"


def impair(name: str, args: str) -> None:
    argv = [sys.executable, "-m", "testnet", "impair", "--name", name, *shlex.split(args)]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", required=True)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--loss-count", type=int, default=1000)
    parser.add_argument("--pace-ms", type=float, default=10.0)
    parser.add_argument("--impair", default="", help='e.g. "--loss 2" (testnet impair options)')
    args = parser.parse_args()
    log.configure(level="WARNING")
    status = TestnetStatus.load(args.testnet)
    echo = status.udp_echo
    assert echo is not None, "this test network has no UDP echo service"
    server, echo_task = await start_server(status)
    host, port = status.routers[CLIENT_ROUTER].i2cp_host_port
    client = NativeDialer(host, port, keys=PrivateKeys.generate(), options=options(status))
    await client.start()
    try:
        endpoint = await client.open_datagram_endpoint()
        server_b32 = server.destination.b32
        reader, writer = await client.open_stream(server_b32, ECHO_PORT, timeout=60)
        for target, target_port in ((server_b32, ECHO_PORT), (echo.b32, echo.port)):
            for _ in range(3):  # warm-up: LeaseSet lookups, ratchet sessions
                await datagram_rtt(endpoint, target, target_port)
        await stream_rtt(reader, writer)
        results: dict[str, list[float]] = {"stream": [], "datagram": [], "i2pd udp": []}
        lost = {"datagram": 0, "i2pd udp": 0}
        for _ in range(args.samples):
            results["stream"].append(await stream_rtt(reader, writer))
            for name, target, target_port in (
                ("datagram", server_b32, ECHO_PORT),
                ("i2pd udp", echo.b32, echo.port),
            ):
                rtt = await datagram_rtt(endpoint, target, target_port)
                if rtt is None:
                    lost[name] += 1
                else:
                    results[name].append(rtt)
        writer.close()
        print(
            f"\nRound trips, {SIZE}-byte payloads, {args.samples} interleaved samples each, "
            f"tunnel length {status.tunnel_length}, link delay {status.link_delay_ms} ms\n"
        )
        print("| path | RTT ms median (p90) | lost |")
        print("|---|---|---|")
        for name, values in results.items():
            print(f"| {name} | {ms(values)} | {lost.get(name, 0)} |")
        conditions = [("ideal", "")] + ([(args.impair, args.impair)] if args.impair else [])
        if args.loss_count <= 0:
            return
        print(
            f"\nLoss: {args.loss_count} datagrams to the i2pd UDP echo, "
            f"one every {args.pace_ms} ms, echoes matched by sha256\n"
        )
        print("| links | sent | echoed intact | lost | seconds |")
        print("|---|---|---|---|---|")
        for label, impairment in conditions:
            if impairment:
                impair(args.testnet, impairment)
            try:
                sent, back, took = await loss_run(
                    endpoint, echo.b32, echo.port, args.loss_count, args.pace_ms / 1000
                )
            finally:
                if impairment:
                    impair(args.testnet, "")
            print(
                f"| {label} | {sent} | {back} | {sent - back} ({(sent - back) / sent:.1%}) "
                f"| {took:.1f} |"
            )
    finally:
        echo_task.cancel()
        await client.close()
        await server.close()


if __name__ == "__main__":
    asyncio.run(main())
