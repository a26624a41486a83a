"""TTFB of the same GET through the I2CP (native) backend and the SAM backend, in one run.

Both dialers sit on the same router of a running test network (``python -m testnet up``) and fetch
``GET /headers`` from the demo eepsite, interleaved request by request, each on a new I2P stream.
i2pd's own HTTP proxy on that router is measured alongside as the peer (it puts the request into
the SYN, like the native backend). Expected: with link delay, SAM pays one tunnel round trip
more than I2CP, because i2pd's SAM bridge sends the SYN empty and the request only after the
SYN-ACK.

    python bench/bench_backends.py --testnet NAME [--delays 0,50] [--requests 20] [--router N]

Link delays are applied with ``python -m testnet delay`` (one way, every router-to-router link)
and reset to the network's previous value at the end. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from i2proxy import log  # noqa: E402
from i2proxy.dialer.native import NativeDialer  # noqa: E402
from i2proxy.dialer.sam import SAMDialer  # noqa: E402
from i2proxy.i2p.keys import PrivateKeys  # noqa: E402
from testnet.network import Network  # noqa: E402
from testnet.status import TestnetStatus  # noqa: E402


def request_bytes(b32: str) -> bytes:
    return f"GET /headers HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()


async def _first_byte_time(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, started: float, timeout: float
) -> float:
    """Seconds from ``started`` to the first response byte; drains the response, closes."""
    try:
        first = await asyncio.wait_for(reader.read(1), timeout)
        elapsed = time.perf_counter() - started
        if first != b"H":
            raise RuntimeError(f"unexpected first byte {first!r}")
        await asyncio.wait_for(reader.read(), timeout)
        return elapsed
    finally:
        writer.close()


async def ttfb_dialer(dialer, b32: str, timeout: float = 60) -> float:
    """Seconds from open_stream to the first response byte (stream set-up included)."""
    started = time.perf_counter()
    reader, writer = await dialer.open_stream(b32, 80, request_bytes(b32), timeout=timeout)
    return await _first_byte_time(reader, writer, started, timeout)


async def ttfb_http_proxy(proxy: tuple[str, int], b32: str, timeout: float = 60) -> float:
    """The same through i2pd's HTTP proxy (absolute-form request), connect included."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(*proxy)
    head = f"GET http://{b32}/headers HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode())
    return await _first_byte_time(reader, writer, started, timeout)


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return statistics.median(ordered), p90


async def run(args: argparse.Namespace) -> int:
    log.configure(json=True, level="warning")
    status = TestnetStatus.load(args.testnet)
    network = Network(args.testnet)
    router_index = status.proxy_router if args.router is None else args.router
    router = status.routers[router_index]
    b32 = status.eepsite.b32
    length = str(status.tunnel_length)
    options = {
        "inbound.length": length,
        "outbound.length": length,
        "inbound.quantity": "2",
        "outbound.quantity": "2",
    }
    native = NativeDialer(*router.i2cp_host_port, keys=PrivateKeys.generate(), options=options)
    sam = SAMDialer(*router.sam_host_port, options=options)
    await asyncio.gather(native.start(), sam.start())
    peers: dict[str, object] = {"i2cp (native)": native, "sam": sam}
    use_proxy = router_index == status.proxy_router
    previous_delay = status.link_delay_ms
    rows: list[tuple[float, str, float, float, int]] = []
    try:
        for delay in args.delays:
            await network.set_link_delay(delay)
            await asyncio.sleep(1.0)
            # Warm-up: LeaseSet lookups and the first ratchet sessions, not measured.
            for dialer in peers.values():
                for _ in range(2):
                    await ttfb_dialer(dialer, b32)
            if use_proxy:
                await ttfb_http_proxy(status.http_proxy_host_port, b32)
            samples: dict[str, list[float]] = {name: [] for name in peers}
            if use_proxy:
                samples["i2pd HTTP proxy"] = []
            for _ in range(args.requests):
                for name, dialer in peers.items():
                    samples[name].append(await ttfb_dialer(dialer, b32))
                if use_proxy:
                    samples["i2pd HTTP proxy"].append(
                        await ttfb_http_proxy(status.http_proxy_host_port, b32)
                    )
            for name, values in samples.items():
                median, p90 = summary(values)
                rows.append((delay, name, median, p90, len(values)))
                print(
                    f"delay {delay:g} ms  {name:16s} median {median * 1000:7.1f} ms  "
                    f"p90 {p90 * 1000:7.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        await network.set_link_delay(previous_delay)
        await asyncio.gather(native.close(), sam.close())

    print(f"\nrouter {router_index}, tunnel length {status.tunnel_length}, b32 {b32}\n")
    print("| link delay (one way) | backend | TTFB median | TTFB p90 | requests |")
    print("|---|---|---|---|---|")
    for delay, name, median, p90, n in rows:
        print(f"| {delay:g} ms | {name} | {median * 1000:.1f} ms | {p90 * 1000:.1f} ms | {n} |")
    print()
    for delay in args.delays:
        by_name = {name: median for d, name, median, _, _ in rows if d == delay}
        extra = by_name["sam"] - by_name["i2cp (native)"]
        print(f"- {delay:g} ms: SAM - I2CP median TTFB = {extra * 1000:.1f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", required=True, help="name of a running test network")
    parser.add_argument("--delays", default="0,50", help="one-way link delays in ms, e.g. 0,50")
    parser.add_argument("--requests", type=int, default=20, help="measured requests per backend")
    parser.add_argument("--router", type=int, default=None, help="router index (default: proxy)")
    args = parser.parse_args()
    args.delays = [float(d) for d in args.delays.split(",") if d.strip()]
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
