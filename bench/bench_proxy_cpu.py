"""CPU seconds per MB of a bulk GET: i2proxy's HTTP proxy vs i2pd's, same router, same run.

Starts i2proxy on the proxy router of a running test network (as ``bench_bulk.py`` does: the
network's tunnel length, quantity 2), then alternates GETs of ``/bytes/N`` from the eepsite
through both proxies and reads, before and after each transfer, the CPU time (user + system,
``/proc/PID/stat``) of the i2proxy process and of every router of the network. Every body is
sha256-checked. CPU seconds are what this machine (2 shared cores) can compare honestly; wall
time and MB/s are printed beside them, with the load average.

    python -m testnet up --name cpu --tunnel-length 0 --mix all-2.45 --java 0
    python bench/bench_proxy_cpu.py --testnet cpu --size 32 --runs 2

``--py-spy FILE`` records i2proxy with py-spy during its transfers (a speedscope/flamegraph
file, by extension: ``.svg`` flamegraph, otherwise raw collapsed stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_bulk import MB, get, start_i2proxy, testnet, warm_up  # noqa: E402

from testnet.eepsite import expected_bytes  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far ((0, 0) when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS  # utime, stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when it is gone)."""
    return sum(cpu_times(pid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testnet", required=True, help="name of a running test network")
    parser.add_argument("--size", type=float, default=32, help="MB per GET")
    parser.add_argument("--runs", type=int, default=2, help="transfers per proxy")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per transfer")
    parser.add_argument("--only", choices=("i2proxy", "i2pd"), help="measure one proxy only")
    parser.add_argument("--py-spy", type=Path, help="record i2proxy with py-spy into this file")
    parser.add_argument(
        "--cprofile", type=Path, help="run i2proxy under cProfile, its stats into this file"
    )
    parser.add_argument(
        "--strace", type=Path, help="count i2proxy's system calls (strace -c) into this file"
    )
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    router = status["routers"][status["proxy_router"]]
    routers = {r["name"]: r["pid"] for r in status["routers"] if r.get("pid")}
    b32 = status["eepsite"]["b32"]
    size = int(args.size * MB)
    digest = hashlib.sha256(expected_bytes(size)).hexdigest()
    url = f"http://{b32}/bytes/{size}"
    data_dir = tempfile.mkdtemp(prefix="bench-cpu-")
    proc, http, _socks = start_i2proxy(
        router["i2cp"],
        int(status["tunnel_length"]),
        data_dir,
        python=[sys.executable, "-m", "cProfile", "-o", str(args.cprofile)]
        if args.cprofile
        else None,
    )
    proxies = {"i2proxy": http, "i2pd": status["http_proxy"]}
    if args.only:
        proxies = {args.only: proxies[args.only]}
    spy: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, object]] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        for proxy in proxies.values():
            asyncio.run(warm_up(proxy, f"http://{b32}/headers"))
        if args.py_spy is not None:
            fmt = "flamegraph" if args.py_spy.suffix == ".svg" else "raw"
            spy = subprocess.Popen(
                [
                    *("py-spy", "record", "--pid", str(proc.pid), "--rate", "250"),
                    *("--format", fmt, "--output", str(args.py_spy), "--nonblocking"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if args.strace is not None:
            spy = subprocess.Popen(
                ["strace", "-c", "-f", "-o", str(args.strace), "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for run in range(args.runs):
            order = list(proxies) if run % 2 == 0 else list(reversed(proxies))
            for name in order:
                load = os.getloadavg()[0]
                before = {n: cpu_seconds(p) for n, p in routers.items()}
                own_before = cpu_times(proc.pid)
                try:
                    got = asyncio.run(asyncio.wait_for(get(proxies[name], url), args.timeout))
                except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as e:
                    print(f"run {run} {name}: FAILED {e!r}"[:200], file=sys.stderr)
                    continue
                own_after = cpu_times(proc.pid)
                own_user = own_after[0] - own_before[0]
                own = own_user + own_after[1] - own_before[1]
                after = {n: cpu_seconds(p) for n, p in routers.items()}
                ok = got.size == size and got.sha256 == digest
                row = {
                    "run": run,
                    "proxy": name,
                    "mb_per_s": size / got.seconds / MB,
                    "seconds": got.seconds,
                    "sha256_ok": ok,
                    "i2proxy_cpu": own,
                    "i2proxy_user": own_user,
                    "routers_cpu": {n: after[n] - before[n] for n in routers},
                    "load": (load, os.getloadavg()[0]),
                }
                rows.append(row)
                print(
                    f"run {run} {name}: {row['mb_per_s']:.3g} MB/s, i2proxy "
                    f"{own:.2f} CPU s ({own / args.size:.4f}/MB, user {own_user:.2f}), routers "
                    f"{sum(after[n] - before[n] for n in routers):.2f} CPU s, sha256 "
                    f"{'ok' if ok else 'MISMATCH'}, load {load:.2f}",
                    file=sys.stderr,
                )
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    command = "python bench/bench_proxy_cpu.py " + " ".join(sys.argv[1:])
    print(f"`{command}` — {started}, network {args.testnet!r}\n")
    print("| proxy | MB/s (runs) | i2proxy CPU s per MB (runs) | routers CPU s per MB | load |")
    print("|---|---|---|---|---|")
    for name in proxies:
        mine = [r for r in rows if r["proxy"] == name and r["sha256_ok"]]
        if not mine:
            continue
        rates = [float(r["mb_per_s"]) for r in mine]  # type: ignore[arg-type]
        own = [float(r["i2proxy_cpu"]) / args.size for r in mine]  # type: ignore[arg-type]
        rcpu = [sum(r["routers_cpu"].values()) / args.size for r in mine]  # type: ignore[union-attr]
        loads = [f"{r['load'][0]:.1f}" for r in mine]  # type: ignore[index]
        print(
            f"| {name} | {statistics.median(rates):.3g} ({', '.join(f'{x:.3g}' for x in rates)})"
            f" | {statistics.median(own):.4f} ({', '.join(f'{x:.4f}' for x in own)})"
            f" | {statistics.median(rcpu):.3f} | {', '.join(loads)} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
