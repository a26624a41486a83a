"""CPU cost of the streaming protocol in Python: MB/s and CPU seconds per MB.

Two measurements, both in one process with no network:

- ``core``: two sans-IO ``Connection`` cores joined back to back (every packet is encoded,
  decoded and processed; ACKs flow back), virtual clock. This is the protocol's own cost.
- ``manager``: two ``StreamManager``s joined in memory through the event loop, with
  ``asyncio.StreamWriter.write``/``drain`` on one side and ``StreamReader.read`` on the other:
  the whole path an application byte takes above I2CP.
- ``receive``: the receiving end alone, from the router's bytes up: MessagePayload frames (as
  i2pd writes them on the I2CP socket, 12 packets per read) into an ``I2CPSession``, its
  payloads into a ``StreamManager`` (as ``NativeDialer`` dispatches them), the data read from
  the ``StreamReader``, every ACK built and queued as a SendMessageExpires. The peer's packets
  are built beforehand (not timed): this is the per-MB cost of i2proxy's side of a bulk GET,
  less the sockets and the relay.
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

from i2proxy.i2cp import events as i2cp_events
from i2proxy.i2cp import messages as i2cp_messages
from i2proxy.i2cp.payload import decode_payload, encode_payload
from i2proxy.i2cp.session import I2CPSession
from i2proxy.i2cp.session import State as SessionState
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.streaming.connection import Connection
from i2proxy.streaming.events import DataReceived
from i2proxy.streaming.manager import StreamManager
from i2proxy.streaming.packet import Packet, decode, encode


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


#: Packets per socket read on the I2CP connection: a 32 MB GET through the HTTP proxy on the
#: test network saw ~19 000 packets in 1 300-1 800 reads (cProfile of i2proxy, 0-hop).
PACKETS_PER_READ = 12
#: Payload per data packet: what i2pd sends at its default MTU.
PAYLOAD = 1730


async def bench_receive(data: bytes, a: PrivateKeys, b: PrivateKeys) -> tuple[float, float]:
    """(wall, CPU) seconds of the receiving side only; see the module docstring.

    Deterministic: the peer's SYN reply comes from a real core, its data packets are built
    beforehand (as i2pd sends them: no options, in order) and handed over
    ``PACKETS_PER_READ`` per read, so every run does the same work whatever the machine's load.
    """
    loop = asyncio.get_running_loop()
    session = I2CPSession(identity=None)  # type: ignore[arg-type]  # no handshake here
    session.state, session.session_id = SessionState.READY, 1

    def send(destination, payload, src_port, dst_port):
        session.send_payload(
            destination.to_bytes(),
            payload,
            time.time(),
            protocol=6,
            src_port=src_port,
            dst_port=dst_port,
        )

    def frame(message_id: int, packet: bytes) -> bytes:
        body = encode_payload(packet, protocol=6, src_port=80)
        return i2cp_messages.encode_message(i2cp_messages.MessagePayload(1, message_id, body))

    manager = StreamManager(b, send)
    opening = asyncio.ensure_future(manager.open_stream(a.destination, 80, b"GET /", timeout=10))
    await asyncio.sleep(0)
    syn_frame = i2cp_messages.FrameDecoder().feed(session.data_to_send())[0]  # then the pre-ACK
    message = syn_frame.decode()
    assert isinstance(message, i2cp_messages.SendMessageExpires)
    syn = decode(decode_payload(message.payload).data)
    server = Connection.incoming(syn, keys=a, local_stream_id=7, now=loop.time())
    server.flush()
    (syn_reply,) = server.packets_to_send(loop.time())
    reads = []
    for first in range(0, len(data), PAYLOAD * PACKETS_PER_READ):
        wire = bytearray()
        for offset in range(first, min(len(data), first + PAYLOAD * PACKETS_PER_READ), PAYLOAD):
            seq = offset // PAYLOAD + 1
            packet = Packet(
                syn.receive_stream_id, 7, seq, 0, payload=data[offset : offset + PAYLOAD]
            )
            wire += frame(seq, encode(packet))
        reads.append(bytes(wire))

    wall, cpu = time.perf_counter(), time.process_time()
    session.receive_data(frame(0, syn_reply), time.time())
    digest = hashlib.sha256()
    reader = None
    for wire in [b"", *reads]:
        session.receive_data(wire, time.time())
        while (event := session.next_event()) is not None:
            if isinstance(event, i2cp_events.PayloadReceived):
                p = event.payload
                manager.handle_payload(p.data, src_port=p.src_port, dst_port=p.dst_port)
        session.data_to_send()  # the ACKs: gone to the router
        await asyncio.sleep(0)
        if reader is None:
            reader, _writer = await opening
        while len(reader._buffer):  # what a relay's read(1 MiB) takes per turn
            digest.update(await reader.read(1 << 20))
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest(), "corrupted transfer"
    await manager.close()
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
    parser.add_argument(
        "--only", choices=("core", "manager", "receive", "floor"), help="run one path only"
    )
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    data = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    data = data[:size]
    a, b = PrivateKeys.generate(), PrivateKeys.generate()
    mb = size / 1_000_000
    rows = []
    wanted = {args.only} if args.only else {"core", "manager", "receive", "floor"}
    if "core" in wanted:
        best = min((bench_core(data, a, b) for _ in range(args.repeat)), key=lambda r: r[1])
        rows.append(("core (two Connections, in memory)", best[0], best[1], f"{best[2]} packets"))
    if "manager" in wanted:
        best_m = min(
            (asyncio.run(bench_manager(data, a, b)) for _ in range(args.repeat)),
            key=lambda r: r[1],
        )
        rows.append(("manager (StreamWriter -> StreamReader)", *best_m, "sha256 ok"))
    if "receive" in wanted:
        best_r = min(
            (asyncio.run(bench_receive(data, a, b)) for _ in range(args.repeat)),
            key=lambda r: r[1],
        )
        rows.append(("receive (I2CP bytes -> StreamReader, ACKs out)", *best_r, "receiver only"))
    if "floor" in wanted:
        best_f = min((bench_floor(data) for _ in range(args.repeat)), key=lambda r: r[1])
        rows.append(("floor (slice 1812 B + join)", best_f[0], best_f[1], ""))
    print(f"{mb:.0f} MB, best of {args.repeat} by CPU time, Python {sys.version.split()[0]}")
    print("| path | wall s | CPU s | MB/s (CPU) | CPU s per MB | note |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, note in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {mb / cpu:.1f} | {cpu / mb:.4f} | {note} |")


if __name__ == "__main__":
    main()
