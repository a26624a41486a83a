"""CPU cost of the streaming protocol in Python: MB/s and CPU seconds per MB.

Two measurements, both in one process with no network:

- ``core``: two sans-IO ``Connection`` cores joined back to back (every packet is encoded,
  decoded and processed; ACKs flow back), virtual clock. This is the protocol's own cost.
- ``manager``: two ``StreamManager``s joined in memory through the event loop, with
  ``asyncio.StreamWriter.write``/``drain`` on one side and ``StreamReader.read`` on the other:
  the whole path an application byte takes above I2CP.
- ``floor``: the same bytes sliced into 1812-byte chunks and concatenated again: what any
  implementation must at least spend in Python.

Usage: ``python bench/bench_streaming_core.py [--mb 20] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2proxy.i2p.keys import PrivateKeys
from i2proxy.streaming.connection import Connection
from i2proxy.streaming.events import DataReceived
from i2proxy.streaming.manager import StreamManager
from i2proxy.streaming.packet import decode


def bench_core(data: bytes, a: PrivateKeys, b: PrivateKeys) -> tuple[float, float, int]:
    now = 0.0
    client = Connection.outgoing(
        keys=a, remote_destination=b.destination, local_stream_id=1, now=now
    )
    client.send(data)
    client.close()
    server: Connection | None = None
    received = 0
    packets = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while received < len(data):
        for raw in client.packets_to_send(now):
            packets += 1
            if server is None:
                server = Connection.incoming(decode(raw), keys=b, local_stream_id=2, now=now)
            else:
                server.receive_packet(raw, now)
        if server is not None:
            while (event := server.next_event()) is not None:
                if isinstance(event, DataReceived):
                    received += len(event.data)
            for raw in server.packets_to_send(now):
                packets += 1
                client.receive_packet(raw, now)
        while client.next_event() is not None:
            pass
        now += 0.001
        for conn in (client, server):
            if conn is not None:
                timer = conn.get_timer()
                if timer is not None and timer <= now:
                    conn.handle_timer(now)
    return time.perf_counter() - wall, time.process_time() - cpu, packets


async def bench_manager(data: bytes, a: PrivateKeys, b: PrivateKeys) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    managers: dict[bytes, StreamManager] = {}

    def wire(destination, payload, src_port, dst_port):
        target = managers[destination.hash]
        loop.call_soon(target.handle_payload, payload)

    client = StreamManager(a, wire)
    server = StreamManager(b, wire)
    managers[a.destination.hash], managers[b.destination.hash] = client, server
    done: asyncio.Future[str] = loop.create_future()

    async def sink(reader, writer):
        digest = hashlib.sha256()
        while chunk := await reader.read(65536):
            digest.update(chunk)
        done.set_result(digest.hexdigest())
        writer.close()

    server.listen(sink)
    wall, cpu = time.perf_counter(), time.process_time()
    _reader, writer = await client.open_stream(b.destination, 80, timeout=10)
    view = memoryview(data)
    for offset in range(0, len(data), 65536):
        writer.write(view[offset : offset + 65536])
        await writer.drain()
    writer.close()
    digest = await done
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    assert digest == hashlib.sha256(data).hexdigest(), "corrupted transfer"
    return elapsed


def bench_floor(data: bytes) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    chunks = [data[i : i + 1812] for i in range(0, len(data), 1812)]
    out = b"".join(chunks)
    assert out == data
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    data = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    data = data[:size]
    a, b = PrivateKeys.generate(), PrivateKeys.generate()
    mb = size / 1_000_000
    rows = []
    best = min((bench_core(data, a, b) for _ in range(args.repeat)), key=lambda r: r[1])
    rows.append(("core (two Connections, in memory)", best[0], best[1], f"{best[2]} packets"))
    best_m = min(
        (asyncio.run(bench_manager(data, a, b)) for _ in range(args.repeat)), key=lambda r: r[1]
    )
    rows.append(("manager (StreamWriter -> StreamReader)", best_m[0], best_m[1], "sha256 ok"))
    best_f = min((bench_floor(data) for _ in range(args.repeat)), key=lambda r: r[1])
    rows.append(("floor (slice 1812 B + join)", best_f[0], best_f[1], ""))
    print(f"{mb:.0f} MB, best of {args.repeat} by CPU time, Python {sys.version.split()[0]}")
    print("| path | wall s | CPU s | MB/s (CPU) | CPU s per MB | note |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, note in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {mb / cpu:.1f} | {cpu / mb:.4f} | {note} |")


if __name__ == "__main__":
    main()
