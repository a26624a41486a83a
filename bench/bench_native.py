"""Native dialer vs i2pd's SAM and HTTP proxy, side by side in one run on the private network.

    python bench/bench_native.py --testnet NAME [--samples 10] [--bulk-mb 20] [--delays 0,50]

Measures, against the demo eepsite (an i2pd server tunnel):
- TTFB of a small GET: our native dialer (request in the SYN), an i2pd SAM client on the same
  router (STREAM CONNECT, then send), and i2pd's own HTTP proxy; at each link delay.
- Bulk download of ``--bulk-mb`` MB: ours vs i2pd's HTTP proxy, MB/s, and CPU seconds per MB
  (our process for ours; the proxy's i2pd router for i2pd's proxy; plus our router's CPU).
Prints a Markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from i2proxy.dialer.native import NativeDialer
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.log import configure
from testnet.network import Network
from testnet.status import TestnetStatus
from tests.integration.i2cp_support import (
    CLIENT_ROUTER,
    sam_address,
    sam_session,
    tunnel_options,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def request_for(b32: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()


def process_cpu(pid: int | None) -> float:
    """utime + stime of a process in seconds (0 when unknown)."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def read_response(reader: asyncio.StreamReader) -> tuple[float, int]:
    """(time of the first byte, total bytes) reading to EOF."""
    first = await reader.read(65536)
    at = time.monotonic()
    total = len(first)
    while chunk := await reader.read(1 << 16):
        total += len(chunk)
    return at, total


async def ttfb_native(dialer: NativeDialer, b32: str) -> float:
    started = time.monotonic()
    reader, writer = await dialer.open_stream(b32, 80, request_for(b32, "/"), timeout=60)
    first_at, _ = await asyncio.wait_for(read_response(reader), 60)
    writer.close()
    return first_at - started


async def ttfb_sam(sam, status: TestnetStatus) -> float:
    b32 = status.eepsite.b32
    started = time.monotonic()
    reader, writer = await sam.connect(status.eepsite.destination)
    writer.write(request_for(b32, "/"))
    first_at, _ = await asyncio.wait_for(read_response(reader), 60)
    writer.close()
    return first_at - started


async def http_proxy_get(status: TestnetStatus, path: str) -> tuple[float, float, int]:
    """(ttfb, total time, bytes) of one GET through i2pd's HTTP proxy."""
    b32 = status.eepsite.b32
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(*status.http_proxy_host_port)
    writer.write(
        f"GET http://{b32}{path} HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()
    )
    first_at, total = await asyncio.wait_for(read_response(reader), 300)
    writer.close()
    return first_at - started, time.monotonic() - started, total


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"{statistics.median(ms):.0f} / {p90:.0f}"


async def run(args: argparse.Namespace) -> None:
    status = TestnetStatus.load(args.testnet)
    network = Network(status.name)
    b32 = status.eepsite.b32
    host, port = status.routers[CLIENT_ROUTER].i2cp_host_port
    dialer = NativeDialer(
        host, port, keys=PrivateKeys.generate(), options=tunnel_options(status, quantity=3)
    )
    await dialer.start()
    rows: list[str] = []
    try:
        async with sam_session(
            sam_address(status, CLIENT_ROUTER), tunnel_options(status, quantity=3)
        ) as sam:
            for delay in args.delays:
                await network.set_link_delay(delay)
                await asyncio.sleep(1)
                # warm-up: LeaseSet lookups and tunnel sessions on every path
                await ttfb_native(dialer, b32)
                await ttfb_sam(sam, status)
                await http_proxy_get(status, "/")
                ours, via_sam, via_proxy = [], [], []
                for _ in range(args.samples):  # interleaved, so drift hits all three alike
                    ours.append(await ttfb_native(dialer, b32))
                    via_sam.append(await ttfb_sam(sam, status))
                    via_proxy.append((await http_proxy_get(status, "/"))[0])
                rows.append(
                    f"| TTFB, small GET, link delay {delay:g} ms (median / p90, ms) | "
                    f"{summary(ours)} | {summary(via_sam)} | {summary(via_proxy)} |"
                )
                print(rows[-1], flush=True)
            await network.set_link_delay(0)
    finally:
        await network.set_link_delay(0)

    size = args.bulk_mb * 1024 * 1024
    path = f"/bytes/{size}"
    our_router = status.routers[CLIENT_ROUTER].pid
    proxy_router = status.routers[status.proxy_router].pid
    ours_rates, proxy_rates, ours_cpu, ours_router_cpu, proxy_cpu = [], [], [], [], []
    for _ in range(args.bulk_runs):
        cpu0, rcpu0 = own_cpu(), process_cpu(our_router)
        started = time.monotonic()
        reader, writer = await dialer.open_stream(b32, 80, request_for(b32, path), timeout=60)
        _, total = await asyncio.wait_for(read_response(reader), 600)
        elapsed = time.monotonic() - started
        writer.close()
        assert total >= size, f"short download: {total}"
        ours_rates.append(size / elapsed / 1e6)
        ours_cpu.append((own_cpu() - cpu0) / (size / 1e6))
        ours_router_cpu.append((process_cpu(our_router) - rcpu0) / (size / 1e6))

        pcpu0 = process_cpu(proxy_router)
        _, elapsed, total = await http_proxy_get(status, path)
        assert total >= size, f"short download via the proxy: {total}"
        proxy_rates.append(size / elapsed / 1e6)
        proxy_cpu.append((process_cpu(proxy_router) - pcpu0) / (size / 1e6))
    rows.append(
        f"| Bulk {args.bulk_mb} MB download (MB/s, best of {args.bulk_runs}) | "
        f"{max(ours_rates):.2f} | — | {max(proxy_rates):.2f} |"
    )
    rows.append(
        f"| CPU s/MB: client side (our process; i2pd proxy router) | "
        f"{min(ours_cpu):.3f} | — | {min(proxy_cpu):.3f} |"
    )
    rows.append(f"| CPU s/MB: our i2pd router (I2CP side) | {min(ours_router_cpu):.3f} | — | — |")
    await dialer.close()
    print()
    print("| measurement | i2proxy native | i2pd SAM client | i2pd HTTP proxy |")
    print("|---|---|---|---|")
    for row in rows:
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testnet", default=os.environ.get("I2PROXY_TESTNET", "bench"))
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--bulk-mb", type=int, default=20)
    parser.add_argument("--bulk-runs", type=int, default=2)
    parser.add_argument("--delays", default="0,50")
    args = parser.parse_args()
    args.delays = [float(x) for x in args.delays.split(",")]
    configure(level="warning")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
