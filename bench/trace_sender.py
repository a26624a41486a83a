"""What the eepsite's i2pd sender does during single GETs through i2proxy (issue 12).

Runs i2proxy on the network's proxy router and fetches one file several times, interleaved
with the same GET through i2pd's own HTTP proxy (``--via``); during each GET it polls the
eepsite router's web console (every ``--poll`` s) for the stream's row (Sent, Received, Out,
RTT, Window), counts the i2pd log's resend-attempt-2 lines ("Another remote lease has been
selected") of that interval, and reads our own ``streaming.stream_done`` statistics. Prints one
summary line per GET, the sender's window per second (``--windows``: the largest the console
showed in each second, so a halving shows as a step down) and, with ``--series``, the rows.

    python -m testnet up --name trace --tunnel-length 0 --mix all-2.45 --java 0
    python bench/trace_sender.py --testnet trace --cell 50ms:none --via i2proxy,i2pd --windows
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_bulk import (  # noqa: E402
    apply,
    get,
    load_average,
    parse_cell,
    start_i2proxy,
    testnet,
    warm_up,
)
from testnet.eepsite import expected_bytes  # noqa: E402

ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
TAG = re.compile(r"<[^>]+>")


def stream_rows(page: str) -> list[list[str]]:
    """The rows of the console's Streams table (StreamID, a close button, Destination, Sent,
    Received, Out, In, Buf, RTT, Window, Status)."""
    _, _, table = page.partition("Streams")
    rows = []
    for row in ROW.findall(table):
        cells = [TAG.sub("", c).strip() for c in CELL.findall(row)]
        if len(cells) >= 10 and cells[0].isdigit():
            rows.append(cells)
    return rows


async def poll(console: str, b32: str, every: float, series: list, stop: asyncio.Event) -> None:
    url = f"http://{console}/?page=local_destination&b32={b32.removesuffix('.b32.i2p')}"
    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as reply:
                    page = await reply.text()
                series.append((time.perf_counter() - start, stream_rows(page)))
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(every)


def lease_switches(log: Path, offset: int) -> tuple[int, int]:
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return text.count("Another remote lease has been selected"), offset + len(text.encode())


def stream_done(log: Path, offset: int) -> tuple[list[dict], int]:
    with log.open("rb") as f:
        f.seek(offset)
        data = f.read()
    events = []
    for line in data.decode(errors="replace").splitlines():
        if "stream_done" in line:
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events, offset + len(data)


def the_stream(rows: list[list[str]]) -> list[str] | None:
    """The GET's row: the stream that has sent the most (a warm-up's may linger)."""
    sent = [r for r in rows if r[3].isdigit()]
    return max(sent, key=lambda r: int(r[3]), default=None)


def windows_per_second(series: list) -> list[int]:
    """The largest window the console showed in each second of the GET (0: no row)."""
    seconds: dict[int, int] = {}
    for t, rows in series:
        row = the_stream(rows)
        if row is not None and row[9].isdigit():
            seconds[int(t)] = max(seconds.get(int(t), 0), int(row[9]))
    return [seconds.get(i, 0) for i in range(max(seconds, default=-1) + 1)]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", required=True)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--size", type=int, default=32, help="MB")
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--series", action="store_true")
    parser.add_argument("--windows", action="store_true", help="print the window per second")
    parser.add_argument("--cell", help="impair the network first, as bench_bulk's --cells")
    parser.add_argument("--via", default="i2proxy", help="i2proxy, i2pd or both, interleaved")
    args = parser.parse_args()
    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    eep = status["eepsite"]
    router = status["routers"][eep["router"]]
    i2cp = status["routers"][status["proxy_router"]]["i2cp"]
    url = f"http://{eep['b32']}/bytes/{args.size << 20}"
    expected = hashlib.sha256(expected_bytes(args.size << 20)).hexdigest()
    eep_log = Path(status["state_dir"]) / router["name"] / "i2pd.log"
    if args.cell:
        apply(args.testnet, parse_cell(args.cell))
    vias = args.via.split(",")
    print(f"load {load_average()}; {args.cell or 'as the network is'}; via {vias}")
    with tempfile.TemporaryDirectory() as data_dir:
        proc, http, _socks = start_i2proxy(
            i2cp, status["tunnel_length"], data_dir, log_level="debug"
        )
        our_log = Path(data_dir) / "i2proxy.log"
        try:
            proxies = {"i2proxy": http, "i2pd": status["http_proxy"]}
            for via in vias:
                await warm_up(proxies[via], f"http://{eep['b32']}/headers")
            log_off = eep_log.stat().st_size
            our_off = our_log.stat().st_size
            for run, via in ((r, v) for r in range(args.runs) for v in vias):
                series: list = []
                stop = asyncio.Event()
                poller = asyncio.create_task(
                    poll(router["webconsole"], eep["b32"], args.poll, series, stop)
                )
                fetch = await get(proxies[via], url)
                stop.set()
                await poller
                await asyncio.sleep(1.5)  # our stream_done line comes after the close
                switches, log_off = lease_switches(eep_log, log_off)
                done, our_off = stream_done(our_log, our_off)
                rows = [r for _, rs in series if (r := the_stream(rs)) is not None]
                rtts = sorted({int(r[8]) for r in rows if r[8].isdigit()})
                windows = [int(r[9]) for r in rows if r[9].isdigit()]
                sent = rows[-1][3] if rows else "?"
                ours = [
                    {k: v for k, v in d.items() if k not in ("event", "timestamp", "level")}
                    for d in done
                    if d.get("packets_received", 0) > 100  # not the warm-up's
                ]
                rate = fetch.size / fetch.seconds / 2**20
                print(
                    f"run {run} {via}: {fetch.seconds:.2f} s {rate:.2f} MB/s"
                    f" {'sha256 ok' if fetch.sha256 == expected else 'SHA256 MISMATCH'};"
                    f" console RTT {rtts} window min {min(windows, default=0)} last"
                    f" {windows[-1] if windows else '?'} sent {sent}; lease switches {switches};"
                    f" ours {ours}"
                )
                if args.windows:
                    print(f"  window/s {windows_per_second(series)}")
                if args.series:
                    for t, rs in series:
                        for r in rs:
                            print(f"  {t:6.2f} " + " | ".join(r[3:10]))
        finally:
            if args.cell:  # as bench_ack_stalls: the next command starts unimpaired
                testnet("impair", "--name", args.testnet)
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
