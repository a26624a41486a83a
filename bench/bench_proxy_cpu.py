"""CPU seconds per MB of a bulk GET: i2proxy's HTTP proxy vs i2pd's, same router, same run.

Starts i2proxy on the proxy router of a running test network (as ``bench_bulk.py`` does: the
network's tunnel length, quantity 2), then alternates GETs of ``/bytes/N`` from the eepsite
through both proxies and reads, before and after each transfer, the CPU time (user + system,
``/proc/PID/stat``) of the i2proxy process and of every router of the network. Every body is
sha256-checked. CPU seconds are what this machine (2 shared cores) can compare honestly; wall
time and MB/s are printed beside them, with the load average.

    python -m testnet up --name cpu --tunnel-length 0 --mix all-2.45 --java 0
    python bench/bench_proxy_cpu.py --testnet cpu --size 32 --runs 2

``--baseline DIR`` runs a second i2proxy from another checkout (``git archive COMMIT | tar -x
-C DIR``) on the same router, interleaved with the others: before/after in one run.
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
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. `git worktree add /tmp/old COMMIT`): its i2proxy runs "
        "beside this one on the same router as 'i2proxy-baseline', interleaved",
    )
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
    hops = int(status["tunnel_length"])
    size = int(args.size * MB)
    digest = hashlib.sha256(expected_bytes(size)).hexdigest()
    url = f"http://{b32}/bytes/{size}"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    proxies: dict[str, str] = {}
    spy: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, object]] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        if args.only != "i2pd":
            python = None
            if args.cprofile:
                python = [sys.executable, "-m", "cProfile", "-o", str(args.cprofile)]
            procs["i2proxy"], proxies["i2proxy"], _ = start_i2proxy(
                router["i2cp"], hops, tempfile.mkdtemp(prefix="bench-cpu-"), python=python
            )
            if args.baseline is not None:
                procs["i2proxy-baseline"], proxies["i2proxy-baseline"], _ = start_i2proxy(
                    router["i2cp"],
                    hops,
                    tempfile.mkdtemp(prefix="bench-cpu-"),
                    root=args.baseline.resolve(),
                )
        if args.only != "i2proxy":
            proxies["i2pd"] = status["http_proxy"]
        for proxy in proxies.values():
            asyncio.run(warm_up(proxy, f"http://{b32}/headers"))
        if "i2proxy" in procs and args.py_spy is not None:
            fmt = "flamegraph" if args.py_spy.suffix == ".svg" else "raw"
            spy = subprocess.Popen(
                [
                    *("py-spy", "record", "--pid", str(procs["i2proxy"].pid), "--rate", "250"),
                    *("--format", fmt, "--output", str(args.py_spy), "--nonblocking"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        elif "i2proxy" in procs and args.strace is not None:
            spy = subprocess.Popen(
                ["strace", "-c", "-f", "-o", str(args.strace), "-p", str(procs["i2proxy"].pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for run in range(args.runs):
            order = list(proxies) if run % 2 == 0 else list(reversed(proxies))
            for name in order:
                rows.append(measure(name, proxies[name], procs.get(name), routers, url, args))
                row = rows[-1]
                if not row:
                    continue
                print(
                    f"run {run} {name}: {row['mb_per_s']:.3g} MB/s, proxy process "
                    f"{row['proxy_cpu']:.2f} CPU s ({row['proxy_cpu'] / args.size:.4f}/MB, "
                    f"user {row['proxy_user']:.2f}), routers "
                    f"{sum(row['routers_cpu'].values()):.2f} CPU s, sha256 "
                    f"{'ok' if row['size'] == size and row['sha256'] == digest else 'MISMATCH'}, "
                    f"load {row['load'][0]:.2f}",  # type: ignore[index]
                    file=sys.stderr,
                )
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    command = "python bench/bench_proxy_cpu.py " + " ".join(sys.argv[1:])
    print(f"`{command}` — {started}, network {args.testnet!r}, {hops}-hop tunnels\n")
    print(
        "| proxy | MB/s median (runs) | proxy process CPU s per MB (runs) "
        "| routers CPU s per MB | load (1 min) |"
    )
    print("|---|---|---|---|---|")
    for name in proxies:
        good = [r for r in rows if r and r["proxy"] == name]
        good = [r for r in good if r["size"] == size and r["sha256"] == digest]
        if not good:
            continue
        rates = [float(r["mb_per_s"]) for r in good]  # type: ignore[arg-type]
        own = [float(r["proxy_cpu"]) / args.size for r in good]  # type: ignore[arg-type]
        rcpu = [sum(r["routers_cpu"].values()) / args.size for r in good]  # type: ignore[union-attr]
        loads = [f"{r['load'][0]:.1f}" for r in good]  # type: ignore[index]
        cpu = (
            "—"
            if name == "i2pd"
            else (f"{statistics.median(own):.4f} ({', '.join(f'{x:.4f}' for x in own)})")
        )
        print(
            f"| {name} | {statistics.median(rates):.3g} ({', '.join(f'{x:.3g}' for x in rates)})"
            f" | {cpu} | {statistics.median(rcpu):.3f} | {', '.join(loads)} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    return 0


def measure(
    name: str,
    proxy: str,
    proc: subprocess.Popen[bytes] | None,
    routers: dict[str, int],
    url: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    """One GET through ``proxy`` with the CPU seconds every process spent meanwhile."""
    load = os.getloadavg()[0]
    before = {n: cpu_seconds(p) for n, p in routers.items()}
    own_before = cpu_times(proc.pid) if proc else (0.0, 0.0)
    try:
        got = asyncio.run(asyncio.wait_for(get(proxy, url), args.timeout))
    except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
        print(f"{name}: FAILED {exc!r}"[:200], file=sys.stderr)
        return {}
    own_after = cpu_times(proc.pid) if proc else (0.0, 0.0)
    after = {n: cpu_seconds(p) for n, p in routers.items()}
    user = own_after[0] - own_before[0]
    return {
        "proxy": name,
        "mb_per_s": got.size / got.seconds / MB,
        "seconds": got.seconds,
        "size": got.size,
        "sha256": got.sha256,
        "proxy_cpu": user + own_after[1] - own_before[1],
        "proxy_user": user,
        "routers_cpu": {n: after[n] - before[n] for n in routers},
        "load": (load, os.getloadavg()[0]),
    }


if __name__ == "__main__":
    sys.exit(main())
