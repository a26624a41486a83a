"""What an i2pd 2.58.0 eepsite router does as the sender of single GETs (issue 12, item 6).

For each GET — through i2proxy and through i2pd's own HTTP proxy on the same router,
alternating — the eepsite router's log level is set to ``debug`` for the transfer (console
command ``set_loglevel``) and back to ``info`` after it. Its ``Streaming: Packet N acknowledged
rtt=R sentTime=T`` lines give every ACK's arrival at the sender in ms (``T + R``, the same for
every packet one ACK covers) and its RTT sample (the smallest ``R`` of the packets it covers; a
resent packet gives none, not told apart here); ``Congestion detected`` lines are the
delay-based window drops, ``Resend #`` lines the resend timer's second expiries, ``set initial
window size`` the resets on a tunnel or lease change, ``Packet N NACK`` the NACKed packets.
The console is polled for the stream's Window and Out (packets in flight) every ``--poll`` s.

    python -m testnet up --name far258 --tunnel-length 0 --mix all-2.58 --java 0
    python -m testnet impair --name far258 --loss 1   # and `delay` 200 (docs/TESTNET.md)
    flock /work/bench.lock python bench/trace_sender258.py --testnet far258 --runs 2

Debug logging costs the eepsite router CPU: the figures are for explaining, not for ratios.
Polling the console can crash i2pd 2.58.0 (its Webconsole thread segfaulted on the
``local_destination`` page as a stream ended, killing the eepsite router; docs/TESTNET.md):
if a run stops with a reset connection, check ``testnet status`` and start a new network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_bulk import get, load_average, start_i2proxy, testnet, warm_up  # noqa: E402
from bench.trace_sender import stream_rows  # noqa: E402

ACKED = re.compile(r"Streaming: Packet (\d+) acknowledged rtt=(-?\d+) sentTime=(\d+)")
NACKED = re.compile(r"Streaming: Packet (\d+) NACK")


def console_command(console: str, level: str) -> None:
    """Set the router's log level through its web console (the token is on the commands page)."""
    with urllib.request.urlopen(f"http://{console}/?page=commands", timeout=5) as reply:
        page = reply.read().decode(errors="replace")
    token = re.search(r"token=(\d+)", page)
    if token is None:
        raise RuntimeError("no console token")
    url = f"http://{console}/?cmd=set_loglevel&level={level}&token={token.group(1)}"
    with urllib.request.urlopen(url, timeout=5):
        pass


async def poll(console: str, b32: str, every: float, series: list, stop: asyncio.Event) -> None:
    url = f"http://{console}/?page=local_destination&b32={b32.removesuffix('.b32.i2p')}"
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as reply:
                    page = await reply.text()
                series.append((time.time(), stream_rows(page)))
            await asyncio.sleep(every)


def parse_log(text: str) -> dict:
    """ACKs (arrival ms, packets, sample ms), drops, resets and NACKs, in log order."""
    acks: list[list[int]] = []  # [arrival, packets, sample]
    events: list[tuple[int, str]] = []  # (index of the next ACK, what)
    nacked: set[int] = set()
    nack_lines = 0
    for line in text.splitlines():
        m = ACKED.search(line)
        if m:
            rtt, sent = int(m.group(2)), int(m.group(3))
            arrival = sent + rtt
            if acks and acks[-1][0] == arrival:
                acks[-1][1] += 1
                acks[-1][2] = min(acks[-1][2], rtt)
            else:
                acks.append([arrival, 1, rtt])
            continue
        m = NACKED.search(line)
        if m:
            nack_lines += 1
            nacked.add(int(m.group(1)))
        elif "Congestion detected" in line:
            events.append((len(acks), "drop"))
        elif "Resend #" in line:
            events.append((len(acks), "resend#" + line.split("Resend #")[1].split(",")[0]))
        elif "set initial window size" in line:
            events.append((len(acks), "reset"))
    return {"acks": acks, "events": events, "nacked": nacked, "nack_lines": nack_lines}


def summary(log: dict, series: list, start: float) -> str:
    acks = log["acks"]
    if not acks:
        return "no ACK lines"
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(acks)]
    samples = [a[2] for a in acks]
    windows = [int(r[9]) for _, rs in series for r in rs if r[9].isdigit()]
    outs = [int(r[5]) for _, rs in series for r in rs if r[5].isdigit()]
    kinds: dict[str, int] = {}
    for _, what in log["events"]:
        kinds[what] = kinds.get(what, 0) + 1
    silences = [g for g in gaps if g >= 500]
    return (
        f"ACKs {len(acks)} (packets/ACK median {statistics.median(a[1] for a in acks)},"
        f" gap median {statistics.median(gaps) if gaps else 0} ms); samples ms min"
        f" {min(samples)} median {statistics.median(samples)} max {max(samples)};"
        f" ACK silences >= 0.5 s: {len(silences)} totalling {sum(silences) / 1000:.1f} s;"
        f" events {kinds}; NACKed packets {len(log['nacked'])} ({log['nack_lines']} lines);"
        f" console window min/median/max {min(windows, default=0)}/"
        f"{statistics.median(windows) if windows else 0}/{max(windows, default=0)}"
        f" out median {statistics.median(outs) if outs else 0}"
    )


def timeline(log: dict, series: list, start: float) -> list[str]:
    """One line per 0.5 s: ACKs, packets ACKed, smallest sample, events, console window/out."""
    acks = log["acks"]
    lines = []
    if not acks:
        return lines
    t0 = int(start * 1000)
    buckets: dict[int, list] = {}
    for i, (arrival, packets, sample) in enumerate(acks):
        b = buckets.setdefault((arrival - t0) // 500, [0, 0, [], []])
        b[0] += 1
        b[1] += packets
        b[2].append(sample)
        b[3].extend(w for idx, w in log["events"] if idx == i)
    console: dict[int, str] = {}
    for t, rs in series:
        for r in rs:
            console[int((t - start) * 2)] = f"win {r[9]} out {r[5]}"
    for k in range(max(max(buckets), max(console, default=0)) + 1):
        b = buckets.get(k, [0, 0, [], []])
        lines.append(
            f"  {k / 2:5.1f}s acks {b[0]:3d} pkts {b[1]:3d} samples"
            f" {min(b[2], default='-')}..{max(b[2], default='-')} {console.get(k, '')}"
            f" {' '.join(b[3])}"
        )
    return lines


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", required=True)
    parser.add_argument("--runs", type=int, default=2, help="GETs per proxy")
    parser.add_argument("--size", type=int, default=4, help="MB")
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--only", choices=("i2proxy", "i2pd"), help="one proxy only")
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--keep", help="i2proxy's data directory (its log stays there)")
    parser.add_argument("--save", help="write every GET's parsed trace here (JSON)")
    args = parser.parse_args()
    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    eep = status["eepsite"]
    router = status["routers"][eep["router"]]
    console = router["webconsole"]
    i2cp = status["routers"][status["proxy_router"]]["i2cp"]
    url = f"http://{eep['b32']}/bytes/{args.size << 20}"
    eep_log = Path(status["state_dir"]) / router["name"] / "i2pd.log"
    print(
        f"load {load_average()}; impairment {status['impairment']}; delay {status['link_delay_ms']}"
    )
    saved = []
    with tempfile.TemporaryDirectory() as data_dir:
        if args.keep:
            data_dir = args.keep
            Path(data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        proc, http, _socks = start_i2proxy(
            i2cp, status["tunnel_length"], data_dir, log_level="debug"
        )
        our_log = Path(data_dir) / "i2proxy.log"
        proxies = {"i2proxy": http, "i2pd": status["http_proxy"]}
        if args.only:
            proxies = {args.only: proxies[args.only]}
        try:
            await warm_up(http, f"http://{eep['b32']}/headers")
            for run in range(args.runs):
                for name, proxy in proxies.items():
                    series: list = []
                    stop = asyncio.Event()
                    console_command(console, "debug")
                    offset = eep_log.stat().st_size
                    our_off = our_log.stat().st_size
                    start = time.time()
                    poller = asyncio.create_task(poll(console, eep["b32"], args.poll, series, stop))
                    try:
                        fetch = await get(proxy, url)
                    finally:
                        stop.set()
                        await poller
                        await asyncio.sleep(0.5)
                        console_command(console, "info")
                    with eep_log.open("rb") as f:
                        f.seek(offset)
                        text = f.read().decode(errors="replace")
                    log = parse_log(text)
                    ours = ""
                    if name == "i2proxy":
                        with our_log.open("rb") as f:
                            f.seek(our_off)
                            for line in f.read().decode(errors="replace").splitlines():
                                if "stream_done" in line and "packets_received" in line:
                                    with contextlib.suppress(ValueError):
                                        d = json.loads(line[line.index("{") :])
                                        if d.get("packets_received", 0) > 100:
                                            ours = (
                                                f"; ours sent {d['packets_sent']} received"
                                                f" {d['packets_received']} dup"
                                                f" {d['duplicates']} srtt {d['srtt']}"
                                            )
                    print(
                        f"run {run} {name}: {fetch.seconds:.1f} s"
                        f" {fetch.size / fetch.seconds / 2**20:.3f} MB/s;"
                        f" {summary(log, series, start)}{ours}",
                        flush=True,
                    )
                    if args.timeline:
                        print("\n".join(timeline(log, series, start)), flush=True)
                    saved.append(
                        {
                            "proxy": name,
                            "seconds": fetch.seconds,
                            "start": start,
                            "acks": log["acks"],
                            "events": log["events"],
                            "series": [(t, [r[3:11] for r in rs]) for t, rs in series],
                        }
                    )
        finally:
            proc.terminate()
            proc.wait()
            with contextlib.suppress(Exception):
                console_command(console, "info")
    if args.save:
        Path(args.save).write_text(json.dumps(saved))  # noqa: ASYNC240
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
