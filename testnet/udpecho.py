"""The UDP echo service behind the eepsite router's i2pd UDP server tunnel (``udpserver``).

Every datagram is sent back, unchanged, to the address it came from. i2pd gives each I2P peer
its own local UDP socket (a per-peer 127.x.y.z address), so the echo goes back through the
tunnel to the peer that sent it. Runs in the eepsite process (``eepsite --udp-echo-port``).

Two ports: ``port`` echoes at once; ``port + 1`` echoes after ``REPLIABLE_DELAY``. i2pd's UDP
server tunnel answers with a *raw* datagram (protocol 18, no sender) when the previous datagram
of the conversation arrived less than 100 ms earlier, else with a signed repliable one — and an
i2pd 2.45.1 SAM DATAGRAM session drops raw datagrams. The delayed port is for such clients.
"""

from __future__ import annotations

import asyncio

from i2proxy.log import get_logger

log = get_logger(__name__)


#: Long enough past i2pd's 100 ms for its UDP tunnel to answer with a repliable datagram.
REPLIABLE_DELAY = 0.15


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, delay: float = 0.0) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.delay = delay
        self.echoed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._echo, data, addr)
        else:
            self._echo(data, addr)

    def _echo(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)
            self.echoed += 1

    def error_received(self, exc: Exception) -> None:
        log.warning("udp echo error", error=repr(exc))


async def start_udp_echo(host: str, port: int) -> list[asyncio.DatagramTransport]:
    """Echo on ``port`` at once and on ``port + 1`` after ``REPLIABLE_DELAY``."""
    loop = asyncio.get_running_loop()
    transports = []
    for listen, delay in ((port, 0.0), (port + 1, REPLIABLE_DELAY)):
        transport, _ = await loop.create_datagram_endpoint(
            lambda delay=delay: UdpEcho(delay), local_addr=(host, listen)
        )
        transports.append(transport)
    log.info("udp echo listening", host=host, ports=[port, port + 1])
    return transports
