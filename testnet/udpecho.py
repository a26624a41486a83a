"""The UDP echo service behind the eepsite router's i2pd UDP server tunnel (``udpserver``).

Every datagram is sent back, unchanged, to the address it came from. i2pd gives each I2P peer
its own local UDP socket (a per-peer 127.x.y.z address), so the echo goes back through the
tunnel to the peer that sent it. Runs in the eepsite process (``eepsite --udp-echo-port``).
"""

from __future__ import annotations

import asyncio

from i2proxy.log import get_logger

log = get_logger(__name__)


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.echoed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)
            self.echoed += 1

    def error_received(self, exc: Exception) -> None:
        log.warning("udp echo error", error=repr(exc))


async def start_udp_echo(host: str, port: int) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=(host, port))
    log.info("udp echo listening", host=host, port=port)
    return transport
