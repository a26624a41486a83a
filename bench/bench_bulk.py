"""Bulk GETs and TTFB through i2proxy vs i2pd's own proxies on an impaired test network.

Both proxies sit on the same router of a running test network and fetch from the same eepsite
(i2pd server tunnel). i2proxy gets the same tunnels as i2pd's proxy (``--hops`` = the network's
tunnel length, ``--quantity 2``). Every transfer is a fresh client connection (so a new I2P
stream), the two proxies alternate which goes first, and every body is checked by sha256.

    python -m testnet up --name bench --tunnel-length 0
    python bench/bench_bulk.py --testnet bench --cells 0ms:none,0ms:2loss --sizes 32 --runs 3

A cell is ``DELAYms:CONDITION`` — CONDITION is ``none`` or ``+``-joined ``Nloss``,
``Nreorder``, ``Ndup``, ``Njitter`` (ms), ``rate=RATE`` — or a profile name (``real``: run it on
a network started with ``--tunnel-length 3``). Cells are applied with ``python -m testnet delay``
and ``python -m testnet impair`` and cleared at the end. Prints Markdown tables; ``--json``
keeps every measurement.

On 3-hop tunnels (``real``) a run's TTFB ratio is one draw of paths: each destination keeps its
tunnels for ~10 minutes, and i2proxy's HTTP (a per-site destination) and SOCKS (the shared one)
leave from two destinations where i2pd's two proxies share one. Judge it on several runs ~10
minutes apart, pooled with ``bench/ttfb_pool.py`` (docs/BENCHMARKS.md, the ``real`` row).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testnet.eepsite import expected_bytes  # noqa: E402
from testnet.impair import PROFILES as TESTNET_PROFILES  # noqa: E402

MB = 1 << 20
DEFAULT_CELLS = ",".join(
    f"{delay}ms:{condition}"
    for delay in (0, 50, 200)
    for condition in ("none", "1loss", "5loss", "5reorder")
)
PROFILES = {"real", "ideal"}
CONDITION_FLAGS = {
    "loss": "--loss",
    "reorder": "--reorder",
    "dup": "--duplicate",
    "jitter": "--jitter",
}


@dataclass(frozen=True)
class Cell:
    """One network condition of the matrix."""

    label: str
    delay_ms: float | None  # None: the profile's
    impair_args: tuple[str, ...]


def parse_cell(text: str) -> Cell:
    """``50ms:1loss+5reorder`` → delay 50 and ``impair --loss 1 --reorder 5``; ``real``."""
    text = text.strip()
    if text in PROFILES:
        return Cell(text, None, ("--profile", text))
    delay_text, _, condition = text.partition(":")
    if not delay_text.endswith("ms") or not condition:
        raise ValueError(f"bad cell {text!r}: use DELAYms:CONDITION or a profile name")
    delay = float(delay_text[:-2])
    args: list[str] = []
    if condition != "none":
        for part in condition.split("+"):
            if part.startswith("rate="):
                args += ["--rate", part[5:]]
                continue
            for suffix, flag in CONDITION_FLAGS.items():
                if part.endswith(suffix):
                    args += [flag, str(float(part[: -len(suffix)]))]
                    break
            else:
                raise ValueError(f"bad condition {part!r} in cell {text!r}")
    return Cell(text, delay, tuple(args))


def check_tunnel_length(cells: list[Cell], hops: int) -> None:
    """A profile that sets the tunnel length (``real``: 3 hops) needs a network started with it:
    ``impair`` cannot change the tunnels of running routers, so the row would be mislabelled."""
    for cell in cells:
        known = TESTNET_PROFILES.get(cell.label)
        if known and known.tunnel_length is not None and known.tunnel_length != hops:
            raise ValueError(
                f"cell {cell.label!r} needs {known.tunnel_length}-hop tunnels; this network has "
                f"{hops} (start it with --tunnel-length {known.tunnel_length})"
            )


def network_line(status: dict) -> str:  # type: ignore[type-arg]
    """Which routers the row ran on: ``proxy r2 i2pd 2.58.0, eepsite r4 i2pd 2.58.0; 6 x …``."""
    routers = status["routers"]

    def name(index: int) -> str:
        r = routers[index]
        return f"{r['name']} {r.get('kind', 'i2pd')} {r.get('version', '?')}"

    kinds: dict[str, int] = {}
    for r in routers:
        key = f"{r.get('kind', 'i2pd')} {r.get('version', '?')}"
        kinds[key] = kinds.get(key, 0) + 1
    every = ", ".join(f"{n}x {k}" for k, n in kinds.items())
    return (
        f"proxy {name(status['proxy_router'])}, eepsite {name(status['eepsite']['router'])}; "
        f"{every}; {status['tunnel_length']}-hop tunnels"
    )


def git_head(path: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(path), "log", "--oneline", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()[:72]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def testnet(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "testnet", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python -m testnet {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def apply(name: str, cell: Cell) -> None:
    testnet("impair", "--name", name, *cell.impair_args)
    if cell.delay_ms is not None:
        testnet("delay", "--name", name, f"{cell.delay_ms:g}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_i2proxy(
    i2cp: str,
    hops: int,
    data_dir: str,
    extra: list[str] | None = None,
    *,
    python: list[str] | None = None,
    root: Path = ROOT,
    log_level: str = "warning",
) -> tuple[subprocess.Popen, str, str]:
    """i2proxy on ``i2cp`` with i2pd's proxy tunnels (``extra``: more ``run`` arguments;
    ``python``: the interpreter command, e.g. under cProfile; ``root``: the checkout to run);
    returns (process, http, socks)."""
    http, socks = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log_path = Path(data_dir) / "i2proxy.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [
            *(python or [sys.executable]),
            "-m",
            "i2proxy",
            "--log-json",
            "--log-level",
            log_level,
            "run",
            "--router",
            f"i2cp://{i2cp}",
            "--http",
            http,
            "--socks",
            socks,
            "--hops",
            str(hops),
            "--quantity",
            "2",
            "--data-dir",
            data_dir,
            *(extra or []),
        ],
        cwd=root,
        stdout=log,
        stderr=log,
        env=dict(os.environ, PYTHONPATH=str(root), I2PROXY_SUBSCRIPTIONS="off"),
    )
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        with contextlib.suppress(OSError), socket.create_connection(_split(http), 1):
            return proc, http, socks
        time.sleep(0.3)
    proc.kill()
    raise TimeoutError("i2proxy did not start")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def socks5_connect(
    proxy: str, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A SOCKS5 CONNECT to ``host:port`` by name (no authentication)."""
    reader, writer = await asyncio.open_connection(*_split(proxy))
    writer.write(b"\x05\x01\x00")
    if await reader.readexactly(2) != b"\x05\x00":
        raise RuntimeError(f"{proxy}: SOCKS5 greeting refused")
    name = host.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
    head = await reader.readexactly(4)
    if head[1] != 0:
        raise RuntimeError(f"{proxy}: SOCKS5 CONNECT failed with code {head[1]}")
    skip = {1: 4, 4: 16}.get(head[3])
    if skip is None:
        skip = (await reader.readexactly(1))[0]
    await reader.readexactly(skip + 2)
    return reader, writer


@dataclass
class Fetch:
    ttfb: float
    seconds: float
    size: int
    sha256: str


async def get(proxy: str, url: str, *, socks: bool = False) -> Fetch:
    """One GET on a fresh connection: HTTP proxy request, or origin-form through SOCKS5."""
    host = url.split("/")[2]
    path = "/" + url.split("/", 3)[3]
    start = time.perf_counter()
    if socks:
        reader, writer = await socks5_connect(proxy, host, 80)
        target = path
    else:
        reader, writer = await asyncio.open_connection(*_split(proxy))
        target = url
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            "User-Agent: bench\r\n\r\n".encode()
        )
        first = await reader.readexactly(1)
        ttfb = time.perf_counter() - start
        head = first + await reader.readuntil(b"\r\n\r\n")
        if head.split(b" ", 2)[1] != b"200":
            raise RuntimeError(f"{proxy} {url}: {head[:200]!r}")
        length = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        digest = hashlib.sha256()
        size = 0
        while length is None or size < length:
            chunk = await reader.read(1 << 18)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        return Fetch(ttfb, time.perf_counter() - start, size, digest.hexdigest())
    finally:
        writer.close()


async def warm_up(proxy: str, url: str, timeout: float = 180, *, socks: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await asyncio.wait_for(get(proxy, url, socks=socks), 60)
            return
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


@dataclass
class Series:
    """The runs of one proxy at one cell and size."""

    rates: list[float] = field(default_factory=list)  # MB/s of good transfers
    failures: list[str] = field(default_factory=list)
    #: every transfer in the order taken: run, seconds, TTFB, MB/s (None if it failed)
    transfers: list[dict] = field(default_factory=list)  # type: ignore[type-arg]

    def summary(self) -> str:
        if not self.rates:
            return "—"
        median = statistics.median(self.rates)
        runs = ", ".join(f"{r:.3g}" for r in self.rates)
        return f"{median:.3g} ({runs})"


async def bulk(
    proxies: dict[str, str],
    url: str,
    size: int,
    digest: str,
    run: int,
    timeout: float,
    results: dict[str, Series],
) -> None:
    order = list(proxies) if run % 2 == 0 else list(reversed(proxies))
    for name in order:
        try:
            got = await asyncio.wait_for(get(proxies[name], url), timeout)
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
            results[name].failures.append(f"{type(exc).__name__}: {exc}"[:200])
            results[name].transfers.append({"run": run, "failed": repr(exc)[:200]})
            print(f"    run {run} {name}: FAILED {exc!r}"[:200], file=sys.stderr)
            continue
        if got.size != size or got.sha256 != digest:
            results[name].failures.append(f"sha256 mismatch ({got.size} bytes)")
            results[name].transfers.append({"run": run, "failed": f"sha256 ({got.size} B)"})
            print(f"    run {run} {name}: sha256 MISMATCH ({got.size} B)", file=sys.stderr)
            continue
        rate = size / got.seconds / MB
        results[name].rates.append(rate)
        results[name].transfers.append(
            {
                "run": run,
                "seconds": round(got.seconds, 3),
                "ttfb_ms": round(got.ttfb * 1000, 1),
                "mb_per_s": round(rate, 4),
                "load": load_average(),
            }
        )
        print(f"    run {run} {name}: {rate:.3g} MB/s ({got.seconds:.1f} s)", file=sys.stderr)


def sample_kinds(i: int, http: str, socks: str) -> list[tuple[str, str, bool]]:
    """Round ``i``'s order of the two kinds for one proxy: HTTP first in rounds 0, 1, SOCKS first
    in rounds 2, 3, and so on — with the proxies alternating every round, each kind follows each
    (proxy, kind) equally often; a sample that always came right after its proxy's other GET
    (whose stream is still closing on the same router) would carry that alone."""
    kinds = [("HTTP", http, False), ("SOCKS", socks, True)]
    return kinds if (i // 2) % 2 == 0 else kinds[::-1]


async def ttfb(
    proxies: dict[str, str],
    socks: dict[str, str],
    url: str,
    samples: int,
    order: list[dict] | None = None,  # type: ignore[type-arg]
    gap: float = 0.0,
) -> dict[str, list[float]]:
    """``samples`` rounds of one GET per proxy and kind; ``order`` gets every sample as taken
    (seconds since the first, proxy, kind, ms): on 3-hop tunnels a destination's path stays the
    same until its tunnels are replaced, so samples close in time are not independent."""
    out: dict[str, list[float]] = {}
    start = time.monotonic()
    for name in proxies:  # until a SOCKS GET works (HTTP warmed up): a fresh SOCKS-side
        await warm_up(socks[name], url, socks=True)  # destination may fail its first streams
    for i in range(samples):
        names = list(proxies) if i % 2 == 0 else list(reversed(proxies))
        for name in names:
            for kind, proxy, via_socks in sample_kinds(i, proxies[name], socks[name]):
                if gap:  # the previous GET's stream has finished closing
                    await asyncio.sleep(gap)
                try:
                    got = await asyncio.wait_for(get(proxy, url, socks=via_socks), 60)
                except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    out.setdefault(f"{name} {kind} failed", []).append(repr(exc)[:200])  # type: ignore[arg-type]
                    continue
                out.setdefault(f"{name} {kind}", []).append(got.ttfb * 1000)
                if order is not None:
                    order.append(
                        {
                            "t": round(time.monotonic() - start, 1),
                            "proxy": name,
                            "kind": kind,
                            "ms": round(got.ttfb * 1000, 1),
                        }
                    )
    return out


def proxy_counters(http: str) -> dict[str, str]:
    """i2proxy's health-page counters (``http://proxy.i2p/`` through its HTTP port): streams
    opened, first bytes in the SYN, requests repeated after a lost reply, the pool's figures."""
    with socket.create_connection(_split(http), 10) as sock:
        sock.sendall(
            b"GET http://proxy.i2p/ HTTP/1.1\r\nHost: proxy.i2p\r\nConnection: close\r\n\r\n"
        )
        page = b""
        while chunk := sock.recv(65536):
            page += chunk
    rows = re.findall(rb"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    return {k.decode(): v.decode() for k, v in rows}


def ratio(a: Series, b: Series) -> str:
    if not a.rates or not b.rates:
        return "—"
    return f"{statistics.median(a.rates) / statistics.median(b.rates):.2f}x"


def flags(series: Series) -> str:
    notes = []
    if series.failures:
        notes.append(f"{len(series.failures)} failed")
    if series.rates and min(series.rates) < statistics.median(series.rates) / 2:
        notes.append("a run < ½ median")
    return ", ".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testnet", required=True, help="name of a running test network")
    parser.add_argument("--cells", default=DEFAULT_CELLS, help="comma-separated (see above)")
    parser.add_argument("--sizes", default="4,32", help="MB per GET, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="transfers per proxy, cell and size")
    parser.add_argument(
        "--ttfb",
        type=int,
        default=0,
        metavar="N",
        help="also N TTFB samples (GET /headers) per cell, HTTP and SOCKS",
    )
    parser.add_argument(
        "--ttfb-gap",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="pause before each TTFB sample (default 0: each GET right after the previous one)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per transfer")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument(
        "--i2proxy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more `i2proxy run` argument (repeatable), e.g. --i2proxy-arg=--isolation=none "
        "to have HTTP use the shared destination as SOCKS does (i2pd's two proxies share one)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        help="i2proxy's log level (its JSON log is kept in the data dir printed at the start)",
    )
    args = parser.parse_args()
    # `kill PID` (a background job ignores SIGINT) still clears the links, stops i2proxy and
    # saves the JSON: SystemExit unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cells = [parse_cell(c) for c in args.cells.split(",")]
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]

    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    router = status["routers"][status["proxy_router"]]
    b32 = status["eepsite"]["b32"]
    hops = int(status["tunnel_length"])
    check_tunnel_length(cells, hops)
    before_delay = float(status.get("link_delay_ms") or 0)
    command = "python bench/bench_bulk.py " + " ".join(sys.argv[1:])
    header = {
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "network": f"{args.testnet}: {network_line(status)}",
        "commit": git_head(ROOT),
        "hops": hops,
        "load_start": load_average(),
    }
    print(f"{header['network']}; commit {header['commit']}", file=sys.stderr)
    data_dir = tempfile.mkdtemp(prefix="bench-bulk-")
    proc, http, socks = start_i2proxy(
        router["i2cp"], hops, data_dir, args.i2proxy_arg, log_level=args.log_level
    )
    print(f"i2proxy log: {data_dir}/i2proxy.log", file=sys.stderr)
    proxies = {"i2proxy": http, "i2pd": status["http_proxy"]}
    socks_proxies = {"i2proxy": socks, "i2pd": status["socks_proxy"]}
    digests = {size: hashlib.sha256(expected_bytes(size)).hexdigest() for size in sizes}
    table: list[tuple[Cell, int, dict[str, Series]]] = []
    ttfbs: list[tuple[Cell, dict[str, list[float]]]] = []
    ttfb_order: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    counters: dict[str, dict[str, str]] = {}
    loads: dict[str, list[str]] = {}

    def save() -> None:
        """Everything so far (after every cell, so an interrupted matrix keeps its cells)."""
        if not args.json:
            return
        document = {
            **header,
            "load_end": load_average(),
            "cell_load": loads,
            "bulk": [
                {
                    "cell": c.label,
                    "size": s,
                    **{
                        n: {"mb_per_s": r.rates, "failures": r.failures, "transfers": r.transfers}
                        for n, r in res.items()
                    },
                }
                for c, s, res in table
            ],
            "ttfb_ms": [{"cell": c.label, **v} for c, v in ttfbs],
            "ttfb_samples": ttfb_order,
            "i2proxy_counters": counters,
        }
        args.json.write_text(json.dumps(document, indent=2))

    try:
        for cell in cells:
            print(f"cell {cell.label} (load {load_average()})", file=sys.stderr)
            loads[cell.label] = [load_average()]
            apply(args.testnet, cell)
            for proxy in proxies.values():
                asyncio.run(warm_up(proxy, f"http://{b32}/headers"))
            if args.ttfb:
                ttfbs.append(
                    (
                        cell,
                        asyncio.run(
                            ttfb(
                                proxies,
                                socks_proxies,
                                f"http://{b32}/headers",
                                args.ttfb,
                                ttfb_order.setdefault(cell.label, []),
                                args.ttfb_gap,
                            )
                        ),
                    )
                )
                print(f"    TTFB {ttfb_row(cell, ttfbs[-1][1])}", file=sys.stderr)
            with contextlib.suppress(OSError):
                counters[cell.label] = proxy_counters(http)
            for size in sizes:
                results = {name: Series() for name in proxies}
                table.append((cell, size, results))
                for run in range(args.runs):
                    asyncio.run(
                        bulk(
                            proxies,
                            f"http://{b32}/bytes/{size}",
                            size,
                            digests[size],
                            run,
                            args.timeout,
                            results,
                        )
                    )
                    save()
                print(f"    {bulk_row(cell, size, results)}", file=sys.stderr)
            loads[cell.label].append(load_average())
            save()
    finally:
        with contextlib.suppress(RuntimeError):
            testnet("impair", "--name", args.testnet)
            testnet("delay", "--name", args.testnet, f"{before_delay:g}")
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        save()

    print(
        f"`{command}` — {header['started']}, network {header['network']} (both proxies), "
        f"commit {header['commit']}, load {header['load_start']} → {load_average()}, "
        f"{args.runs} runs per proxy, MB/s median (runs in order), every body sha256-checked\n"
    )
    print("| cell | size | i2proxy MB/s | i2pd MB/s | i2proxy / i2pd | notes |")
    print("|---|---|---|---|---|---|")
    for cell, size, results in table:
        print(bulk_row(cell, size, results))
    if ttfbs:
        print(
            "\n| cell | TTFB median ms: i2proxy HTTP | i2pd HTTP | ratio | "
            "i2proxy SOCKS | i2pd SOCKS | ratio |"
        )
        print("|---|---|---|---|---|---|---|")
        for cell, values in ttfbs:
            print(ttfb_row(cell, values))
    return 0


def bulk_row(cell: Cell, size: int, results: dict[str, Series]) -> str:
    notes = "; ".join(
        f"{name}: {note}" for name, series in results.items() if (note := flags(series))
    )
    return (
        f"| {cell.label} | {size / MB:g} MB | {results['i2proxy'].summary()} | "
        f"{results['i2pd'].summary()} | {ratio(results['i2proxy'], results['i2pd'])} | {notes} |"
    )


def ttfb_row(cell: Cell, values: dict[str, list[float]]) -> str:
    med = {k: statistics.median(v) for k, v in values.items() if v and not k.endswith("failed")}
    cols = []
    for kind in ("HTTP", "SOCKS"):
        a, b = med.get(f"i2proxy {kind}"), med.get(f"i2pd {kind}")
        cols += [
            f"{a:.0f} ({len(values[f'i2proxy {kind}'])})" if a else "—",
            f"{b:.0f} ({len(values[f'i2pd {kind}'])})" if b else "—",
            f"{a / b:.2f}x" if a and b else "—",
        ]
    failed = sum(len(v) for k, v in values.items() if k.endswith("failed"))
    return f"| {cell.label} | " + " | ".join(cols) + f" |{f' {failed} failed' if failed else ''}"


if __name__ == "__main__":
    sys.exit(main())
