"""The pre-ACK against a real i2pd server: time to open vs time to first byte, on and off.

Needs a running private network (``python -m testnet up --name NAME``). Dials the demo
eepsite (i2pd 2.45.1 HTTP server tunnel) from router 3 through our native stack, with the
request in the SYN, ``--count`` times with ``i2proxy.streaming.preAck`` on and then off, at the
given one-way link delay. With the pre-ACK the first answer byte should arrive together with
the SYN reply (one round trip); without it one round trip later (i2pd holds the answer until
its SYN reply is ACKed).

Usage: ``python bench/bench_streaming_preack.py --name NAME [--delay 50] [--count 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2proxy.dialer.native import NativeDialer
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.keys import PrivateKeys

REQUEST = b"GET / HTTP/1.0\r\nHost: eepsite\r\n\r\n"


def testnet(name: str, *args: str) -> str:
    command = [sys.executable, "-m", "testnet", *args, "--name", name]
    return subprocess.check_output(command, text=True)


async def run(host: str, port: int, eepsite: Destination, pre_ack: bool, count: int, length):
    options = {
        "inbound.length": length,
        "outbound.length": length,
        "inbound.quantity": "2",
        "outbound.quantity": "2",
        "i2proxy.streaming.preAck": "true" if pre_ack else "false",
    }
    dialer = NativeDialer(host, port, keys=PrivateKeys.generate(), options=options)
    await dialer.start()
    samples = []
    try:
        await (await dialer.open_stream(eepsite, 80, REQUEST, timeout=60))[0].read()  # warm up
        for _ in range(count):
            started = time.monotonic()
            reader, writer = await dialer.open_stream(eepsite, 80, REQUEST, timeout=60)
            opened = time.monotonic() - started
            await asyncio.wait_for(reader.read(1), 30)
            first = time.monotonic() - started
            await reader.read()
            writer.close()
            samples.append((opened, first))
    finally:
        await dialer.close()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="test network name")
    parser.add_argument("--delay", type=int, default=50, help="one-way link delay, ms")
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    status = json.loads(testnet(args.name, "status", "--json"))
    host, port = status["routers"][3]["i2cp"].rsplit(":", 1)
    eepsite = Destination.from_base64(status["eepsite"]["destination"])
    length = str(status.get("tunnel_length", 1))
    previous = int(status.get("link_delay_ms", 0))
    testnet(args.name, "delay", str(args.delay))
    try:
        print(f"link delay {args.delay} ms, tunnels {length} hop(s), {args.count} dials each")
        print("| pre-ACK | open (SYN → SYN reply) ms, median | first byte ms, median | ratio |")
        print("|---|---|---|---|")
        for pre_ack in (True, False):
            samples = await run(host, int(port), eepsite, pre_ack, args.count, length)
            opened = statistics.median(s[0] for s in samples) * 1000
            first = statistics.median(s[1] for s in samples) * 1000
            label = "on" if pre_ack else "off"
            print(f"| {label} | {opened:.0f} | {first:.0f} | {first / opened:.2f} |")
    finally:
        testnet(args.name, "delay", str(previous))


if __name__ == "__main__":
    asyncio.run(main())
