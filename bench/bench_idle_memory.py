"""RSS of i2proxy around bursts of idle SOCKS clients (issue 13 item 10: "RSS never went down").

Each variant starts its own ``i2proxy run`` on the network's proxy router, then twice: opens
``--count`` SOCKS5 CONNECTs to the eepsite (``--syn-window-ms 0``: each reply means an
established I2P stream), holds them ``--hold`` seconds, closes them all and samples the
proxy's RSS (``/proc/PID/status``) for ``--after`` seconds. Variants:

- ``off``: ``release_memory = false`` (what i2proxy did before);
- ``on``: the default (after a burst: ``gc.collect()`` + glibc ``malloc_trim(0)``);
- ``malloc``: the default with ``PYTHONMALLOC=malloc`` (no CPython small-object arenas).

    python -m testnet up --name mem
    python bench/bench_idle_memory.py --testnet mem --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bulk import _split, start_i2proxy, testnet

VARIANTS = {
    "off": {"I2PROXY_RELEASE_MEMORY": "false"},
    "on": {},
    "malloc": {"PYTHONMALLOC": "malloc"},
}
#: SOCKS handshakes in flight at once, from 8 loopback addresses: the proxy's pending budget is
#: 64 connections, 16 per address.
HANDSHAKES = 32


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def idle_client(socks: tuple[str, int], b32: str, i: int, gate: asyncio.Semaphore):
    async with gate:
        reader, writer = await asyncio.open_connection(
            *socks, local_addr=(f"127.0.0.{1 + i % 8}", 0)
        )
        writer.write(b"\x05\x01\x00")
        await reader.readexactly(2)
        name = b32.encode()
        writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", 80))
        await writer.drain()
    reply = await asyncio.wait_for(reader.readexactly(10), 120)
    if reply[1] != 0:
        writer.close()
        raise ConnectionError(f"SOCKS reply {reply[1]}")
    return writer


async def burst(pid: int, socks: tuple[str, int], b32: str, args) -> dict[str, object]:
    gate = asyncio.Semaphore(HANDSHAKES)
    started = time.monotonic()
    results = await asyncio.gather(
        *(idle_client(socks, b32, i, gate) for i in range(args.count)), return_exceptions=True
    )
    ramp = time.monotonic() - started
    writers = [r for r in results if isinstance(r, asyncio.StreamWriter)]
    await asyncio.sleep(args.hold)
    held = rss_mb(pid)
    for writer in writers:
        writer.close()
    samples = []
    for _ in range(int(args.after / 5)):
        await asyncio.sleep(5)
        samples.append(rss_mb(pid))
    return {
        "connected": len(writers),
        "failed": len(results) - len(writers),
        "ramp_s": round(ramp, 1),
        "held_mb": held,
        "after_mb": samples,
    }


def run_variant(name: str, status: dict, args) -> dict[str, object]:
    router = status["routers"][status["proxy_router"]]
    b32 = status["eepsite"]["b32"]
    saved = dict(os.environ)
    os.environ.update(VARIANTS[name])
    data_dir = tempfile.mkdtemp(prefix=f"bench-idle-{name}-")
    limit = str(args.count + 10)
    extra = ["--max-clients", limit, "--max-streams", limit, "--syn-window-ms", "0"]
    try:
        proc, _, socks = start_i2proxy(
            router["i2cp"],
            int(status["tunnel_length"]),
            data_dir,
            extra=extra,
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:

        async def bursts():
            # First contact (LeaseSet lookup), then the baseline.
            for _ in range(60):
                try:
                    (await idle_client(_split(socks), b32, 0, asyncio.Semaphore(1))).close()
                    break
                except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                    await asyncio.sleep(2)
            await asyncio.sleep(2)
            out: dict[str, object] = {"variant": name, "start_mb": rss_mb(proc.pid)}
            out["bursts"] = [await burst(proc.pid, _split(socks), b32, args) for _ in range(2)]
            return out

        return asyncio.run(bursts())
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testnet", required=True)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=10)
    parser.add_argument("--after", type=float, default=60)
    parser.add_argument("--variants", default="off,on,malloc")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    status = json.loads(testnet("status", "--name", args.testnet, "--json"))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.count} idle SOCKS")
    for name in args.variants.split(","):
        result = run_variant(name, status, args)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
