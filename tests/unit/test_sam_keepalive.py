"""SAM keepalive: the control socket is never pinged; the bridge is probed on its own sockets.

The peer is a scripted bridge on a real local socket that answers like i2pd 2.58 (HELLO 3.3,
PING → PONG and then it closes that socket), so a PING on the control socket would end the
session exactly as it did on 2.58. The live proof is ``tests/integration/test_sam_keepalive.py``.
"""

from __future__ import annotations

import asyncio

from i2proxy.sam.client import SAMClient


class ScriptedBridge:
    """Counts what arrives; ``silent`` makes new sockets get no HELLO reply (a wedged router)."""

    def __init__(self) -> None:
        self.connections = 0
        self.pings_on_session_sockets = 0
        self.sessions = 0
        self.silent = False
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        has_session = False
        try:
            while line := await reader.readline():
                if self.silent and not has_session:
                    await asyncio.sleep(3600)
                word = line.split(b" ", 1)[0]
                if word == b"HELLO":
                    writer.write(b"HELLO REPLY RESULT=OK VERSION=3.3\n")
                elif line.startswith(b"SESSION CREATE"):
                    has_session = True
                    self.sessions += 1
                    writer.write(b"SESSION STATUS RESULT=OK DESTINATION=priv\n")
                elif line.startswith(b"NAMING LOOKUP"):
                    writer.write(b"NAMING REPLY RESULT=OK NAME=ME VALUE=pub\n")
                elif word == b"PING":
                    self.pings_on_session_sockets += has_session
                    writer.write(b"PONG" + line[4:])
                    await writer.drain()
                    break  # i2pd 2.58: SendReplyWithMessage(..., close=true)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def test_an_idle_session_survives_probes_on_a_bridge_that_closes_after_pong() -> None:
    bridge = ScriptedBridge()
    port = await bridge.start()
    client = SAMClient("127.0.0.1", port, keepalive_interval=0.1, keepalive_timeout=1.0)
    try:
        await client.start()
        await asyncio.sleep(1.2)
        assert client.sessions_created == 1 and client.ready
        assert bridge.sessions == 1
        assert bridge.pings_on_session_sockets == 0
        assert bridge.connections >= 6  # the control socket + one probe per interval
        assert client.probe_failures == 0
        rtt = await client.ping(timeout=2.0)  # PING on a probe socket, which the bridge closes
        assert 0 <= rtt < 2.0 and client.ready and client.sessions_created == 1
    finally:
        await client.close()
        await bridge.close()


async def test_two_unanswered_probes_recreate_the_session() -> None:
    bridge = ScriptedBridge()
    port = await bridge.start()
    client = SAMClient("127.0.0.1", port, keepalive_interval=0.1, keepalive_timeout=0.2)
    try:
        await client.start()
        bridge.silent = True
        for _ in range(100):
            if not client.ready:
                break
            await asyncio.sleep(0.05)
        assert not client.ready and client.probe_failures >= 2
        bridge.silent = False
        await client.wait_ready(30.0)
        assert client.sessions_created == 2 and bridge.sessions == 2
    finally:
        await client.close()
        await bridge.close()


async def test_flavour_i2pd_2_58_closes_after_one_pong_java_answers_two() -> None:
    from i2proxy.sam.client import RouterFlavour, detect_flavour

    bridge = ScriptedBridge()  # answers PONG, then closes: i2pd 2.58
    port = await bridge.start()
    try:
        assert await detect_flavour("127.0.0.1", port, (3, 3)) is RouterFlavour.I2PD
        assert await detect_flavour("127.0.0.1", port, (3, 1)) is RouterFlavour.I2PD  # no PING
    finally:
        await bridge.close()

    async def java(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line.startswith(b"HELLO"):
                writer.write(b"HELLO REPLY RESULT=OK VERSION=3.3\n")
            elif line.startswith(b"PING"):
                writer.write(b"PONG" + line[4:])
        writer.close()

    server = await asyncio.start_server(java, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        assert await detect_flavour("127.0.0.1", port, (3, 3)) is RouterFlavour.JAVA
    finally:
        server.close()
