"""Interleaved GETs through i2pd's HTTP proxy and one or more i2proxy checkouts on one test
network, with what each GET cost on the links and what our stream saw.

For every GET: its time, the link relay's counters over it (``relay-stats.json``: chunks,
segment losses, and ``stall_seconds`` — the head-of-line time those losses added; at 0 ms a
lost lone segment, such as one ACK message, adds 0.202 s, docs/TESTNET.md) and, for i2proxy,
its ``stream_done`` statistics (packets sent — our ACKs —, received, duplicates, ACK holds,
SRTT). Used to compare a change against main on the same network (docs/BENCHMARKS.md):

    python bench/bench_ack_stalls.py --testnet N --cell 0ms:2loss --size 4 --runs 6 \\
        --roots main=/work/wt/main-copy,new=.

The relay's counters are network-wide, so GETs run one at a time, 1.3 s apart (the file is
rewritten every second); background traffic (tunnel builds, lookups) is counted too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_bulk as bulk

from testnet.eepsite import expected_bytes

COUNTERS = ("chunks", "losses", "stall_seconds")


def relay_counters(path: Path) -> dict[str, float]:
    time.sleep(1.3)  # rewritten every second while they change
    return json.loads(path.read_text())


def stream_stats(log: Path, offset: int) -> tuple[str, int]:
    """The ``stream_done`` lines of bulk streams logged since ``offset``; the new offset."""
    text = log.read_text(errors="replace")
    found = []
    for line in text[offset:].splitlines():
        if "stream_done" not in line:
            continue
        try:
            done = json.loads(line)
        except ValueError:
            continue
        if done.get("packets_received", 0) > 100:
            found.append(
                f"sent {done['packets_sent']} recv {done['packets_received']} "
                f"dup {done['duplicates']} holds {done['ack_holds']} srtt {done['srtt']:.3f} "
                f"as-2.45 {done.get('i2pd245_sender')} "
                f"ack-request-answered {done.get('ack_request_answered')}"
            )
    return "; ".join(found), len(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testnet", required=True)
    parser.add_argument("--cell", default="0ms:2loss", help="as bench_bulk.py's --cells")
    parser.add_argument("--size", type=float, default=4, help="MB per GET")
    parser.add_argument("--runs", type=int, default=6, help="GETs per proxy")
    parser.add_argument("--roots", default=f"i2proxy={bulk.ROOT}", help="NAME=CHECKOUT,...")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    status = json.loads(bulk.testnet("status", "--name", args.testnet, "--json"))
    router = status["routers"][status["proxy_router"]]
    b32 = status["eepsite"]["b32"]
    counters = Path(status["state_dir"]) / "relay-stats.json"
    size = int(args.size * bulk.MB)
    digest = hashlib.sha256(expected_bytes(size)).hexdigest()
    url = f"http://{b32}/bytes/{size}"
    print(f"{args.testnet}: {bulk.network_line(status)}; load {bulk.load_average()}")
    proxies = {"i2pd": status["http_proxy"]}
    logs: dict[str, list] = {}  # type: ignore[type-arg]
    procs = []
    results: dict[str, list[dict]] = {"i2pd": []}  # type: ignore[type-arg]
    try:
        for spec in args.roots.split(","):
            name, _, root = spec.partition("=")
            data_dir = tempfile.mkdtemp(prefix="bench-stalls-")
            proc, http, _ = bulk.start_i2proxy(
                router["i2cp"],
                int(status["tunnel_length"]),
                data_dir,
                root=Path(root).resolve(),
                log_level="debug",
            )
            procs.append(proc)
            proxies[name] = http
            logs[name] = [Path(data_dir) / "i2proxy.log", 0]
            results[name] = []
            print(f"{name}: {bulk.git_head(Path(root).resolve())}")
        bulk.apply(args.testnet, bulk.parse_cell(args.cell))
        for proxy in proxies.values():
            asyncio.run(bulk.warm_up(proxy, f"http://{b32}/headers"))
        names = list(proxies)
        for run in range(args.runs):
            for name in names[run % len(names) :] + names[: run % len(names)]:
                before = relay_counters(counters)
                try:
                    got = asyncio.run(asyncio.wait_for(bulk.get(proxies[name], url), args.timeout))
                except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    print(f"run {run} {name}: FAILED {exc!r}"[:200])
                    continue
                after = relay_counters(counters)
                delta = {k: round(after[k] - before[k], 3) for k in COUNTERS}
                ours = ""
                if name in logs:
                    ours, logs[name][1] = stream_stats(logs[name][0], logs[name][1])
                exact = got.size == size and got.sha256 == digest
                rate = size / got.seconds / bulk.MB
                results[name].append(
                    {"seconds": got.seconds, "ttfb": got.ttfb, "mb_per_s": rate, **delta}
                )
                print(
                    f"run {run} {name:8s} {got.seconds:6.2f} s {rate:5.2f} MB/s "
                    f"ttfb {got.ttfb * 1000:5.0f} ms "
                    f"chunks {delta['chunks']:6.0f} losses {delta['losses']:3.0f} "
                    f"stall {delta['stall_seconds']:6.3f} s "
                    f"{'sha256 ok' if exact else 'SHA256 MISMATCH'} "
                    f"load {bulk.load_average()} {ours}",
                    flush=True,
                )
    finally:
        bulk.testnet("impair", "--name", args.testnet)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    for name, runs in results.items():
        if runs:
            print(
                f"{name}: median {statistics.median(r['mb_per_s'] for r in runs):.2f} MB/s, "
                f"mean GET {statistics.mean(r['seconds'] for r in runs):.2f} s, "
                f"median TTFB {statistics.median(r['ttfb'] for r in runs) * 1000:.0f} ms, "
                f"stall {statistics.mean(r['stall_seconds'] for r in runs):.2f} s per GET; "
                f"runs {[round(r['mb_per_s'], 2) for r in runs]}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
