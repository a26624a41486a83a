"""What isolation costs: TTFB of a first visit to a new site with and without a spare
destination, and memory and router load per destination.

    python -m testnet up --name isobench --tunnel-length 0
    python bench/bench_isolation.py --testnet isobench --visits 7 --backend i2cp

Three ``i2proxy run`` on the same i2pd 2.58 client router, same tunnels (``--hops`` = the
network's length, ``--quantity 2``), fetching the demo eepsite's ``/`` (sha256 checked):

- ``shared``: ``--isolation none``, the one destination, already warm (the floor);
- ``spare``: ``--isolation site --spare-destinations 1``: each visit uses a new isolation key
  (a fresh ``Proxy-Authorization`` token) once the spare is ready, so it takes the spare;
- ``no-spare``: ``--spare-destinations 0``: the new key's destination is made on the spot.

Visits alternate between the three (rotating who goes first). Then ``--destinations N`` keys
are opened on one more proxy, and its RSS and the router's RSS and CPU time are read from
/proc before and after, and over one idle minute (tunnel upkeep). Prints Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testnet.status import TestnetStatus  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    def __init__(self, name: str, router_url: str, hops: int, extra: list[str]) -> None:
        self.name = name
        self.http = f"127.0.0.1:{free_port()}"
        self.dir = tempfile.mkdtemp(prefix=f"isobench-{name}-")
        argv = [
            sys.executable, "-m", "i2proxy", "--log-json", "run", "--router", router_url,
            "--http", self.http, "--socks", "", "--hops", str(hops), "--quantity", "2",
            "--data-dir", self.dir, *extra,
        ]  # fmt: skip
        self.log = open(Path(self.dir) / "log", "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONPATH=str(ROOT), I2PROXY_SUBSCRIPTIONS="off")
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self.log, stderr=self.log, env=env)
        self.tokens = 0

    def health(self) -> dict[str, int]:
        page = curl("-x", f"http://{self.http}", "http://proxy.i2p/")[0].decode("utf-8", "replace")
        return {k: int(v) for k, v in re.findall(r"<td>(\w+)</td><td>(\d+)</td>", page)}

    def wait_spare(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if self.health().get("pool_spares_ready", 0) >= 1:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no spare ready")

    def visit(self, url: str, *, new_key: bool) -> tuple[float, str]:
        args = ["-x", f"http://{self.http}"]
        if new_key:
            self.tokens += 1
            args += ["--proxy-user", f"visit{self.tokens}:x"]
        elif self.tokens:
            args += ["--proxy-user", f"visit{self.tokens}:x"]
        body, _ = curl(*args, "-w", "\n%{time_starttransfer}", url)
        content, _, seconds = body.rpartition(b"\n")
        return float(seconds), hashlib.sha256(content).hexdigest()

    def rss_kib(self) -> int:
        return rss_kib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self.log.close()


def curl(*args: str, timeout: float = 180) -> tuple[bytes, float]:
    started = time.monotonic()
    result = subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=True,
    )
    return result.stdout, time.monotonic() - started


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_ok(proxy: Proxy, url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            proxy.visit(url, new_key=False)
            return
        time.sleep(1)
    raise TimeoutError(f"{proxy.name}: {url} unreachable")


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f}, n={len(ms)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testnet", required=True)
    parser.add_argument("--visits", type=int, default=7)
    parser.add_argument("--backend", choices=("i2cp", "sam"), default="i2cp")
    parser.add_argument("--destinations", type=int, default=10)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of upkeep measured")
    parser.add_argument("--memory-only", action="store_true", help="skip the TTFB part")
    args = parser.parse_args()
    status = TestnetStatus.load(args.testnet)
    router = status.client_router("i2pd", "2.58")
    url = f"{args.backend}://{router.i2cp if args.backend == 'i2cp' else router.sam}"
    hops = status.tunnel_length
    site = f"http://{status.eepsite.b32}/"
    print(f"router r{router.index} (i2pd {router.version}) over {url}, tunnels {hops} hops, {site}")

    if not args.memory_only:
        ttfb(args, url, hops, site)
    memory(args, url, hops, site, router)
    return 0


def ttfb(args: argparse.Namespace, url: str, hops: int, site: str) -> None:
    site_mode = ["--isolation", "site", "--max-destinations", str(args.visits + 4)]
    proxies = [
        Proxy("shared", url, hops, ["--isolation", "none"]),
        Proxy("spare", url, hops, [*site_mode, "--spare-destinations", "1"]),
        Proxy("no-spare", url, hops, [*site_mode, "--spare-destinations", "0"]),
    ]
    results: dict[str, list[float]] = {p.name: [] for p in proxies}
    again: list[float] = []
    digests: set[str] = set()
    try:
        for proxy in proxies:
            wait_ok(proxy, site)
        for visit in range(args.visits):
            order = proxies[visit % 3 :] + proxies[: visit % 3]
            for proxy in order:
                if proxy.name == "spare":
                    proxy.wait_spare()
                seconds, digest = proxy.visit(site, new_key=proxy.name != "shared")
                results[proxy.name].append(seconds)
                digests.add(digest)
                if proxy.name == "spare":
                    seconds, digest = proxy.visit(site, new_key=False)
                    again.append(seconds)
                    digests.add(digest)
    finally:
        for proxy in proxies:
            proxy.stop()
    print("\n| first visit to a new site | TTFB median |\n|---|---|")
    print(f"| shared destination (no isolation, warm) | {summary(results['shared'])} |")
    print(f"| new key, spare ready | {summary(results['spare'])} |")
    print(f"| new key, no spare | {summary(results['no-spare'])} |")
    print(f"| second visit, same key | {summary(again)} |")
    print(f"\nbodies: {len(digests)} distinct sha256 ({', '.join(d[:12] for d in digests)})")


def memory(args: argparse.Namespace, url: str, hops: int, site: str, router) -> None:

    memory_flags = ["--isolation", "site", "--spare-destinations", "0"]
    memory_flags += ["--max-destinations", str(args.destinations + 1)]
    proxy = Proxy("memory", url, hops, memory_flags)
    try:
        wait_ok(proxy, site)
        time.sleep(5)
        before = (proxy.rss_kib(), rss_kib(router.pid), cpu_seconds(router.pid))
        for _ in range(args.destinations):
            proxy.visit(site, new_key=True)
        time.sleep(5)
        after = (proxy.rss_kib(), rss_kib(router.pid), cpu_seconds(router.pid))
        time.sleep(args.idle)
        idle_cpu = cpu_seconds(router.pid) - after[2]
        made = proxy.health().get("pool_destinations", 0)
    finally:
        proxy.stop()
    n = args.destinations
    print(f"\n{made} isolated destinations opened (one I2CP/SAM connection each):")
    print(
        f"- i2proxy RSS: {before[0]} -> {after[0]} KiB, {(after[0] - before[0]) / n:.0f} KiB each"
    )
    print(f"- router RSS: {before[1]} -> {after[1]} KiB, {(after[1] - before[1]) / n:.0f} KiB each")
    print(f"- router CPU to create them: {after[2] - before[2]:.2f} s, "
          f"{(after[2] - before[2]) / n * 1000:.0f} ms each")  # fmt: skip
    print(f"- router CPU over {args.idle:.0f} s idle with them open: {idle_cpu:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
