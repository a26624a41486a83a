"""TTFB and throughput of a GET through i2proxy vs i2pd's own HTTP proxy, same network, same run.

Both proxies sit on the same router of a running test network (``python -m testnet up``) and fetch
from the same demo eepsite. Each request opens a new client connection, so each proxy opens a new
I2P stream (i2pd's proxy cannot do otherwise; it forces ``Connection: close``). An extra row shows
i2proxy with browser keep-alive, where the stream is reused.

    python bench/bench_proxy.py --testnet NAME [--backend i2cp|sam] [--delays 0,50]
                                [--requests 20] [--size 1048576]

Link delays are applied with ``python -m testnet delay --name NAME MS`` (one way, every link) and
reset to the network's previous value at the end. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def testnet_status(name: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "testnet", "status", "--name", name, "--json"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return json.loads(out)


def set_delay(name: str, ms: float) -> None:
    subprocess.run(
        [sys.executable, "-m", "testnet", "delay", "--name", name, str(ms)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def start_i2proxy(router_url: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    http = f"127.0.0.1:{free_port()}"
    log_path = Path(data_dir) / "i2proxy.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "i2proxy",
            "--log-json",
            "--log-level",
            "warning",
            "run",
            "--router",
            router_url,
            "--http",
            http,
            "--socks",
            "",
            "--data-dir",
            data_dir,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env=dict(os.environ, PYTHONPATH=str(ROOT), I2PROXY_SUBSCRIPTIONS="off"),
    )
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            with socket.create_connection(("127.0.0.1", int(http.rsplit(":", 1)[1])), 1):
                return proc, http
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("i2proxy did not start")


async def fetch(proxy: str, url: str, writer_reader=None) -> tuple[float, float, int]:
    """(ttfb, total seconds, body bytes) of one GET through ``proxy`` (new connection)."""
    host, port = proxy.rsplit(":", 1)
    start = time.perf_counter()
    if writer_reader is None:
        reader, writer = await asyncio.open_connection(host, int(port))
        close = True
    else:
        reader, writer = writer_reader
        close = False
    hostname = url.split("/")[2]
    connection = b"close" if close else b"keep-alive"
    writer.write(
        f"GET {url} HTTP/1.1\r\nHost: {hostname}\r\n".encode()
        + b"Connection: "
        + connection
        + b"\r\nUser-Agent: bench\r\n\r\n"
    )
    await writer.drain()
    first = await reader.read(1)
    ttfb = time.perf_counter() - start
    head = first + await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"{proxy} {url}: {head[:200]!r}")
    length = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read(-1)
    total = time.perf_counter() - start
    if close:
        writer.close()
    return ttfb, total, len(body)


async def warm_up(proxy: str, url: str, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await asyncio.wait_for(fetch(proxy, url), 30)
            return
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def measure(proxies: dict[str, str], b32: str, requests: int, size: int) -> dict:
    small = f"http://{b32}/headers"
    big = f"http://{b32}/bytes/{size}"
    results: dict[str, dict[str, list[float]]] = {
        name: {"ttfb": [], "mbps": []} for name in [*proxies, "i2proxy keep-alive"]
    }
    for _ in range(requests):
        for name, proxy in proxies.items():  # interleaved, so drift hits both alike
            ttfb, _, _ = await fetch(proxy, small)
            results[name]["ttfb"].append(ttfb)
            _, total, n = await fetch(proxy, big)
            results[name]["mbps"].append(n / total / 1e6)
    host, port = proxies["i2proxy"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await fetch(proxies["i2proxy"], small, (reader, writer))  # opens the stream
    for _ in range(requests):
        ttfb, _, _ = await fetch(proxies["i2proxy"], small, (reader, writer))
        results["i2proxy keep-alive"]["ttfb"].append(ttfb)
        _, total, n = await fetch(proxies["i2proxy"], big, (reader, writer))
        results["i2proxy keep-alive"]["mbps"].append(n / total / 1e6)
    writer.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testnet", required=True, help="name of a running test network")
    parser.add_argument("--backend", choices=["i2cp", "sam"], default="i2cp")
    parser.add_argument("--delays", default="0,50", help="one-way link delays in ms")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes for the throughput GET")
    args = parser.parse_args()

    status = testnet_status(args.testnet)
    router = status["routers"][status["proxy_router"]]
    router_url = f"sam://{router['sam']}" if args.backend == "sam" else f"i2cp://{router['i2cp']}"
    b32 = status["eepsite"]["b32"]
    previous_delay = float(status.get("link_delay_ms") or 0)
    data_dir = tempfile.mkdtemp(prefix="bench-proxy-")
    proc, http = start_i2proxy(router_url, data_dir)
    proxies = {"i2proxy": http, "i2pd": status["http_proxy"]}
    rows = []
    try:
        for delay in [float(d) for d in args.delays.split(",")]:
            set_delay(args.testnet, delay)
            for proxy in proxies.values():
                asyncio.run(warm_up(proxy, f"http://{b32}/headers"))
            results = asyncio.run(measure(proxies, b32, args.requests, args.size))
            for name, r in results.items():
                rows.append(
                    (
                        delay,
                        name,
                        statistics.median(r["ttfb"]) * 1000,
                        pct(r["ttfb"], 0.9) * 1000,
                        statistics.median(r["mbps"]),
                    )
                )
    finally:
        set_delay(args.testnet, previous_delay)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    command = "python bench/bench_proxy.py " + " ".join(sys.argv[1:])
    print(
        f"`{command}` — backend {args.backend}, {args.requests} requests each, "
        f"GET /headers for TTFB, GET /bytes/{args.size} for throughput\n"
    )
    print("| link delay (one way) | proxy | TTFB median | TTFB p90 | throughput median |")
    print("|---|---|---|---|---|")
    for delay, name, ttfb, p90, mbps in rows:
        print(f"| {delay:.0f} ms | {name} | {ttfb:.1f} ms | {p90:.1f} ms | {mbps:.2f} MB/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
