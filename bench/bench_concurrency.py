"""Many simultaneous small GETs through i2proxy vs i2pd's HTTP proxy (issue 12 item 7).

``--count`` clients connect at the same instant, each on its own connection (so its own I2P
stream), and fetch ``/bytes/SIZE`` from the test network's eepsite. i2proxy runs on the
network's proxy router with the same tunnels as i2pd's proxy (``--hops`` = the network's tunnel
length, ``--quantity 2``); the rounds alternate which proxy goes first. Every body is checked
by sha256. Reports per round p50/p90/p99/max, errors by kind and a latency histogram, so a
timer step (a bump of requests at one retransmission timeout) shows; the completion rate, the
longest time without any completion (a stall, which piles completions into the next second and
looks like a step in the histogram), and the CPU seconds the proxy process and the routers spent
on the burst (all clients start together, so the median is about half the burst: throughput,
that is CPU per request on a shared machine, decides it).

    python -m testnet up --name cc --tunnel-length 0 --mix all-2.45 --java 0
    python bench/bench_concurrency.py --testnet cc --count 1000 --size 10240 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bulk import _split, load_average, start_i2proxy, testnet

from testnet.eepsite import expected_bytes

#: Histogram bucket width in seconds.
BUCKET = 1.0


@dataclass
class Round:
    """One burst through one proxy."""

    proxy: str
    latencies: list[float] = field(default_factory=list)  # seconds, good answers only
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    wall: float = 0.0
    #: Seconds from each client's start to its request written: the benchmark's own delay
    #: (one Python process opening every connection competes for the same CPU).
    written: list[float] = field(default_factory=list)
    #: CPU seconds (user + system) spent during the burst, by process name.
    cpu: dict[str, float] = field(default_factory=dict)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile of the good answers (nan when there are none)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def histogram(self) -> dict[int, int]:
        counts: collections.Counter[int] = collections.Counter(
            int(t // BUCKET) for t in self.latencies
        )
        return dict(sorted(counts.items()))

    def longest_gap(self) -> tuple[float, float]:
        """(seconds, start): the longest time without a completed fetch, from the start."""
        times = [0.0, *sorted(self.latencies)]
        gaps = [(b - a, a) for a, b in itertools.pairwise(times)]
        return max(gaps, default=(math.nan, math.nan))

    def share_between(self, low: float, high: float) -> float:
        total = len(self.latencies) + sum(self.errors.values())
        return sum(low <= t < high for t in self.latencies) / total if total else 0.0


async def fetch(
    proxy: str,
    url: str,
    digest: str,
    size: int,
    timeout: float,
    written: list[float] | None = None,
    write_after: float = 0.0,
) -> float:
    """One GET on a fresh connection; returns seconds to the whole verified body. Appends to
    ``written`` when the request was handed to the kernel (this client's own delay);
    ``write_after``: seconds to wait between connecting and writing (a slow client)."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(*_split(proxy))
    try:
        if write_after:
            await asyncio.sleep(write_after)
        host = url.split("/")[2]
        writer.write(
            f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            "User-Agent: bench\r\n\r\n".encode()
        )
        if written is not None:
            written.append(time.perf_counter() - start)
        data = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError(f"no response head ({len(data)} bytes)")
    status = head.split(b" ", 2)[1].decode(errors="replace") if b" " in head else "?"
    if status != "200":
        raise RuntimeError(f"HTTP {status}")
    if len(body) != size or hashlib.sha256(body).hexdigest() != digest:
        raise RuntimeError(f"sha256 mismatch ({len(body)} bytes)")
    return time.perf_counter() - start


async def burst(
    proxy: str,
    name: str,
    url: str,
    count: int,
    size: int,
    timeout: float,
    write_after: float = 0.0,
) -> Round:
    """``count`` fetches started together; each outcome lands in the round."""
    digest = hashlib.sha256(expected_bytes(size)).hexdigest()
    result = Round(name)
    gate = asyncio.Event()

    async def one() -> None:
        await gate.wait()
        try:
            result.latencies.append(
                await asyncio.wait_for(
                    fetch(proxy, url, digest, size, timeout, result.written, write_after),
                    timeout + write_after + 5,
                )
            )
        except TimeoutError:
            result.errors["timeout"] += 1
        except RuntimeError as exc:
            result.errors[str(exc)[:60]] += 1
        except OSError as exc:
            result.errors[type(exc).__name__] += 1

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await asyncio.sleep(0.1)  # every task parked on the gate
    started = time.perf_counter()
    gate.set()
    await asyncio.gather(*tasks)
    result.wall = time.perf_counter() - started
    return result


async def warm_up(proxy: str, url: str, digest: str, size: int) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            await fetch(proxy, url, digest, size, 60)
            return
        except (OSError, RuntimeError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_burst(pids: dict[str, int], run: Callable[[], Round]) -> Round:
    """``run()`` with the CPU seconds each of ``pids`` spent meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run()
    for name, pid in pids.items():
        start, end = before[name], cpu_seconds(pid)
        if start is not None and end is not None:
            result.cpu[name] = end - start
    return result


def describe(r: Round) -> str:
    answered = len(r.latencies)
    errors = ", ".join(f"{k}: {v}" for k, v in r.errors.most_common()) or "none"
    gap, gap_at = r.longest_gap()
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in r.cpu.items()) or "?"
    return (
        f"| {r.proxy} | {answered} | {r.quantile(0.5):.2f} | {r.quantile(0.9):.2f} | "
        f"{r.quantile(0.99):.2f} | {max(r.latencies, default=math.nan):.2f} | "
        f"{r.quantile(0.99) / r.quantile(0.5):.1f} | {100 * r.share_between(9, 11):.1f} % | "
        f"{r.wall:.1f} | {answered / r.wall if r.wall else math.nan:.0f} | "
        f"{gap:.2f} at {gap_at:.1f} | {cpu} | {errors} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testnet", required=True, help="name of a running test network")
    parser.add_argument("--count", type=int, default=1000, help="simultaneous fetches")
    parser.add_argument("--size", type=int, default=10240, help="body bytes per fetch")
    parser.add_argument("--rounds", type=int, default=2, help="bursts per proxy (interleaved)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per fetch")
    parser.add_argument("--pause", type=float, default=20, help="seconds between bursts")
    parser.add_argument("--only", choices=("i2proxy", "i2pd"), help="measure one proxy only")
    parser.add_argument(
        "--write-after",
        type=float,
        default=0.0,
        metavar="S",
        help="each client waits S seconds between connecting and writing its request (a slow "
        "client process, as the benchmark itself is on a loaded machine)",
    )
    parser.add_argument(
        "--i2proxy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `i2proxy run` (repeat; e.g. --i2proxy-arg=--max-clients=2000)",
    )
    parser.add_argument(
        "--i2proxy-http",
        metavar="HOST:PORT",
        help="measure an i2proxy already running here (e.g. under a profiler) instead",
    )
    parser.add_argument("--json", type=Path, help="write every latency here")
    args = parser.parse_args()

    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    router = status["routers"][status["proxy_router"]]
    url = f"http://{status['eepsite']['b32']}/bytes/{args.size}"
    hops = int(status["tunnel_length"])
    digest = hashlib.sha256(expected_bytes(args.size)).hexdigest()
    proxies = {"i2pd": status["http_proxy"]}
    # CPU per burst: the proxy process, the router both proxies use, the eepsite's router.
    pids = {"router": int(router["pid"])}
    site_router = status["routers"][status["eepsite"]["router"]]
    if site_router.get("pid"):
        pids["site router"] = int(site_router["pid"])
    proc = None
    if args.i2proxy_http:
        proxies["i2proxy"] = args.i2proxy_http
    elif args.only != "i2pd":
        data_dir = tempfile.mkdtemp(prefix="bench-concurrency-")
        proc, http, _ = start_i2proxy(router["i2cp"], hops, data_dir, extra=args.i2proxy_arg)
        proxies["i2proxy"] = http
        pids["i2proxy"] = proc.pid
        print(f"i2proxy log: {data_dir}/i2proxy.log", file=sys.stderr)
    if args.only == "i2proxy":
        del proxies["i2pd"]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loads = [load_average()]
    rounds: list[Round] = []
    try:
        for proxy in proxies.values():
            asyncio.run(warm_up(proxy, url, digest, args.size))
        for n in range(args.rounds):
            order = sorted(proxies, reverse=n % 2 == 1)
            for name in order:
                if rounds:
                    time.sleep(args.pause)  # let the last burst's streams close
                loads.append(load_average())
                watched = {k: v for k, v in pids.items() if k != "i2proxy" or name == "i2proxy"}
                r = measured_burst(
                    watched,
                    lambda name=name: asyncio.run(
                        burst(
                            proxies[name],
                            name,
                            url,
                            args.count,
                            args.size,
                            args.timeout,
                            args.write_after,
                        )
                    ),
                )
                rounds.append(r)
                print(f"round {n} {name}: {describe(r)}", file=sys.stderr)
                print(f"  histogram (s: count): {r.histogram()}", file=sys.stderr)
                lags = sorted(r.written)
                if lags:
                    print(
                        f"  requests written after (s): p50 {lags[len(lags) // 2]:.2f}, "
                        f"max {lags[-1]:.2f}",
                        file=sys.stderr,
                    )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    command = "python bench/bench_concurrency.py " + " ".join(sys.argv[1:])
    print(
        f"`{command}` — {started}, network {args.testnet!r}, {hops}-hop tunnels (both), "
        f"{args.count} simultaneous GETs of {args.size} B, each on its own connection; "
        f"load average before each burst: {'; '.join(loads)}\n"
    )
    print(
        "| proxy | answered | p50 s | p90 s | p99 s | max s | p99/p50 | at 9-11 s | "
        "burst s | answers/s | longest gap s | CPU s | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rounds:
        print(describe(r))
    print()
    for r in rounds:
        print(f"- {r.proxy} histogram (s: count): {r.histogram()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "started": started,
                    "loads": loads,
                    "rounds": [
                        {
                            "proxy": r.proxy,
                            "latencies": r.latencies,
                            "errors": dict(r.errors),
                            "wall": r.wall,
                            "written": r.written,
                            "cpu": r.cpu,
                        }
                        for r in rounds
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
