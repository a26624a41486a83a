"""TTFB and bulk of i2proxy vs each router's own HTTP proxy, router by router, on one network.

Issue 11's comparison across router kinds. Each pair runs on the same router with the same
tunnels and fetches the same eepsite (the i2pd eepsite by default):

- Java I2P: Java's I2PTunnel HTTP proxy vs i2proxy over the Java router's I2CP with the
  proxy's tunnel lengths read from its ``i2ptunnel.config`` (here outbound 1, inbound 0, 2 each:
  Java cannot use an i2pd inbound gateway in the test network).
- i2pd 2.45.1: i2pd's HTTP proxy vs i2proxy over the same router's I2CP with the lengths of
  i2pd's ``[httpproxy]`` section.
- i2pd 2.58.0: the network has no 2.58 HTTP proxy, so i2proxy on the 2.58 client router is an
  extra row without a partner (same lengths as on 2.45.1).

Every request is a fresh client connection (a new I2P stream), all proxies take turns in a
rotating order, every body is checked by sha256, figures are medians.

    python -m testnet up --name jb --java 1
    python bench/bench_routers.py --testnet jb --ttfb 7 --sizes 1,4 --runs 3

Prints Markdown tables; ``--json`` keeps every measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_bulk import MB, Series, _split, free_port, get, testnet, warm_up  # noqa: E402

from testnet.eepsite import expected_bytes  # noqa: E402

FAILURES = (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError)


@dataclass(frozen=True)
class Tunnels:
    """One proxy's tunnel lengths and quantity (inbound/outbound)."""

    inbound: int
    outbound: int
    quantity: int

    def options(self) -> list[str]:
        """The ``i2proxy run`` arguments that give a session these tunnels."""
        return [
            "--quantity",
            str(self.quantity),
            "--option",
            f"inbound.length={self.inbound}",
            "--option",
            f"outbound.length={self.outbound}",
            "--option",
            "inbound.lengthVariance=0",
            "--option",
            "outbound.lengthVariance=0",
        ]

    def __str__(self) -> str:
        return f"out {self.outbound} / in {self.inbound}, {self.quantity} each"


def read_properties(path: Path, prefix: str = "") -> dict[str, str]:
    """``key=value`` (Java) or ``key = value`` (i2pd) lines of one file, or of one i2pd section."""
    values: dict[str, str] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if "=" not in line or line.startswith("#"):
            continue
        if prefix and section != prefix:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def java_proxy_tunnels(state_dir: Path, router: str) -> Tunnels:
    """The tunnels of the Java router's I2PTunnel HTTP client, from its i2ptunnel config."""
    for path in sorted((state_dir / router / "i2ptunnel.config.d").glob("*-i2ptunnel.config")):
        props = read_properties(path)
        if props.get("type") == "httpclient":
            return Tunnels(
                int(props["option.inbound.length"]),
                int(props["option.outbound.length"]),
                int(props.get("option.inbound.quantity", "2")),
            )
    raise LookupError(f"no httpclient tunnel in {router}'s i2ptunnel.config.d")


def i2pd_proxy_tunnels(state_dir: Path, router: str) -> Tunnels:
    """The tunnels of an i2pd router's HTTP proxy, from its ``[httpproxy]`` section."""
    props = read_properties(state_dir / router / "i2pd.conf", "httpproxy")
    return Tunnels(
        int(props["inbound.length"]),
        int(props["outbound.length"]),
        int(props.get("inbound.quantity", "2")),
    )


def start_i2proxy(i2cp: str, tunnels: Tunnels, data_dir: str) -> tuple[subprocess.Popen, str]:
    """``i2proxy run --router i2cp://…`` with these tunnels; returns (process, HTTP proxy)."""
    http = f"127.0.0.1:{free_port()}"
    log_path = Path(data_dir) / "i2proxy.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "i2proxy", "--log-level", "warning", "run"),
            *("--router", f"i2cp://{i2cp}", "--http", http, "--socks", ""),
            *("--data-dir", data_dir, *tunnels.options()),
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
        with contextlib.suppress(OSError), socket.create_connection(_split(http), 1):
            return proc, http
        time.sleep(0.3)
    proc.kill()
    raise TimeoutError("i2proxy did not start")


@dataclass
class Proxy:
    """One HTTP proxy of the comparison."""

    label: str
    router: str  # "j6 (Java 2.7.0)"
    tunnels: Tunnels
    address: str
    partner: str | None = None  # the label of the router's own proxy, for i2proxy rows


def rotation(names: list[str], i: int) -> list[str]:
    """Round ``i``'s order: every proxy goes first, last and in between equally often."""
    k = i % len(names)
    order = names[k:] + names[:k]
    return order if i % 2 == 0 else order[::-1]


async def ttfb_round(proxies: dict[str, Proxy], url: str, i: int, out: dict) -> None:
    for name in rotation(list(proxies), i):
        try:
            got = await asyncio.wait_for(get(proxies[name].address, url), 60)
        except FAILURES as exc:
            out[name]["failures"].append(f"{type(exc).__name__}: {exc}"[:200])
            print(f"    ttfb {i} {name}: FAILED {exc!r}"[:200], file=sys.stderr)
            continue
        out[name]["ms"].append(got.ttfb * 1000)
        print(f"    ttfb {i} {name}: {got.ttfb * 1000:.0f} ms", file=sys.stderr)


async def bulk_round(
    proxies: dict[str, Proxy], url: str, size: int, digest: str, i: int, timeout: float, out: dict
) -> None:
    for name in rotation(list(proxies), i):
        series: Series = out[name]
        try:
            got = await asyncio.wait_for(get(proxies[name].address, url), timeout)
        except FAILURES as exc:
            series.failures.append(f"{type(exc).__name__}: {exc}"[:200])
            print(f"    run {i} {name}: FAILED {exc!r}"[:200], file=sys.stderr)
            continue
        if got.size != size or got.sha256 != digest:
            series.failures.append(f"sha256 mismatch ({got.size} bytes)")
            print(f"    run {i} {name}: sha256 MISMATCH ({got.size} B)", file=sys.stderr)
            continue
        series.rates.append(size / got.seconds / MB)
        print(f"    run {i} {name}: {size / got.seconds / MB:.3g} MB/s", file=sys.stderr)


def median_or_dash(values: list[float], fmt: str) -> str:
    return format(statistics.median(values), fmt) if values else "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testnet", required=True, help="name of a running test network")
    parser.add_argument("--site", choices=("i2pd", "java"), default="i2pd", help="eepsite")
    parser.add_argument("--ttfb", type=int, default=7, help="TTFB samples (GET /headers)")
    parser.add_argument("--sizes", default="1,4", help="MB per GET, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="transfers per proxy and size")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per transfer")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]

    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    state_dir = Path(status["state_dir"])
    routers = status["routers"]
    site = status["eepsite"] if args.site == "i2pd" else status["java_eepsite"]
    b32 = site["b32"]
    site_router = routers[site["router"]]
    java = next(r for r in routers if r["kind"] == "java" and r.get("http_proxy"))
    i2pd_old = routers[status["proxy_router"]]
    new_clients = [
        r
        for r in routers
        if r["kind"] == "i2pd" and r["version"].startswith("2.58") and not r["floodfill"]
    ]

    def where(router: dict) -> str:
        return f"{router['name']} ({router['kind']} {router['version']})"

    java_tunnels = java_proxy_tunnels(state_dir, java["name"])
    i2pd_tunnels = i2pd_proxy_tunnels(state_dir, i2pd_old["name"])
    proxies: dict[str, Proxy] = {
        "Java I2PTunnel": Proxy("Java I2PTunnel", where(java), java_tunnels, java["http_proxy"]),
        "i2pd 2.45.1 proxy": Proxy(
            "i2pd 2.45.1 proxy", where(i2pd_old), i2pd_tunnels, i2pd_old["http_proxy"]
        ),
    }
    processes: list[subprocess.Popen] = []
    plan = [(java, java_tunnels, "Java I2PTunnel"), (i2pd_old, i2pd_tunnels, "i2pd 2.45.1 proxy")]
    if new_clients and not any(r.get("http_proxy") for r in new_clients):
        plan.append((new_clients[0], i2pd_tunnels, None))
    digests = {size: hashlib.sha256(expected_bytes(size)).hexdigest() for size in sizes}
    ttfbs: dict[str, dict] = {}
    bulks: dict[int, dict[str, Series]] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        for router, tunnels, partner in plan:
            data_dir = tempfile.mkdtemp(prefix="bench-routers-")
            proc, http = start_i2proxy(router["i2cp"], tunnels, data_dir)
            processes.append(proc)
            label = f"i2proxy on {router['name']}"
            proxies[label] = Proxy(label, where(router), tunnels, http, partner)
        for proxy in proxies.values():
            print(f"warm-up {proxy.label}", file=sys.stderr)
            asyncio.run(warm_up(proxy.address, f"http://{b32}/headers"))
        ttfbs = {name: {"ms": [], "failures": []} for name in proxies}
        for i in range(args.ttfb):
            asyncio.run(ttfb_round(proxies, f"http://{b32}/headers", i, ttfbs))
        for size in sizes:
            bulks[size] = {name: Series() for name in proxies}
            for i in range(args.runs):
                asyncio.run(
                    bulk_round(
                        proxies,
                        f"http://{b32}/bytes/{size}",
                        size,
                        digests[size],
                        i,
                        args.timeout,
                        bulks[size],
                    )
                )
    finally:
        for proc in processes:
            proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    command = "python bench/bench_routers.py " + " ".join(sys.argv[1:])
    delay = float(status.get("link_delay_ms") or 0)
    print(
        f"`{command}` — {started}, network {args.testnet!r}, link delay {delay:g} ms, "
        f"eepsite on {where(site_router)}, {args.ttfb} TTFB samples (GET /headers) and "
        f"{args.runs} runs per size per proxy, fresh connection each, medians, "
        "every body sha256-checked\n"
    )
    size_cols = " | ".join(f"{s / MB:g} MB: MB/s (min)" for s in sizes)
    print(f"| proxy | router | tunnels | TTFB ms | {size_cols} | vs router's proxy | failures |")
    print("|---|---|---|---|" + "---|" * len(sizes) + "---|---|")
    for name, proxy in proxies.items():
        ms = ttfbs[name]["ms"]
        cols = [bulks[s][name].summary() for s in sizes]
        versus = "—"
        if proxy.partner:
            parts = []
            other = ttfbs[proxy.partner]["ms"]
            if ms and other:
                parts.append(f"TTFB {statistics.median(ms) / statistics.median(other):.2f}x")
            for s in sizes:
                a, b = bulks[s][name].rates, bulks[s][proxy.partner].rates
                if a and b:
                    rate = statistics.median(a) / statistics.median(b)
                    parts.append(f"{s / MB:g} MB {rate:.2f}x")
            versus = ", ".join(parts) or "—"
        failed = len(ttfbs[name]["failures"]) + sum(len(bulks[s][name].failures) for s in sizes)
        print(
            f"| {name} | {proxy.router} | {proxy.tunnels} | {median_or_dash(ms, '.0f')} | "
            + " | ".join(cols)
            + f" | {versus} | {failed or ''} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "started": started,
                    "link_delay_ms": delay,
                    "eepsite": b32,
                    "proxies": {
                        name: {
                            "router": p.router,
                            "tunnels": str(p.tunnels),
                            "ttfb_ms": ttfbs[name],
                            "bulk": {
                                str(s): {
                                    "mb_per_s": bulks[s][name].rates,
                                    "failures": bulks[s][name].failures,
                                }
                                for s in sizes
                            },
                        }
                        for name, p in proxies.items()
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
