"""The SAM control channel as a sans-IO state machine: commands out, replies in.

One control socket carries HELLO, SESSION CREATE and later NAMING LOOKUP. Routers answer
commands in order and i2pd reads the next command only after answering the previous one, so
replies are matched to a FIFO of outstanding commands. A ``PING`` from the router is answered
with ``PONG`` at once; a stray ``PONG`` is reported and otherwise ignored.

We never PING on this socket: i2pd 2.58 answers ``PONG`` and then closes the socket the PING
came on, and the router ends the session with its control socket (i2pd before 2.46 speaks 3.1
and closes it on any PING). Liveness is checked on a separate socket instead
(``i2proxy.sam.connection.probe_bridge``).

Shape follows aioquic/h11: ``send_command`` queues bytes, ``receive_data(data, now)`` parses,
``next_event()`` drains events, ``data_to_send()`` drains bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from i2proxy.sam import protocol
from i2proxy.sam.protocol import LineReader, Reply, SAMProtocolError

#: SAM 3.2 introduced PING/PONG. i2pd before 2.46 answers 3.1 and closes the socket on PING.
PING_MIN_VERSION = (3, 2)


def supports_ping(version: tuple[int, int] | None) -> bool:
    return version is not None and version >= PING_MIN_VERSION


@dataclass(frozen=True)
class ReplyReceived:
    """The reply to the oldest outstanding command."""

    #: The command words it answers, e.g. ``"SESSION CREATE"``.
    command: str
    #: The parsed reply; its RESULT may be an error (check ``reply.ok``).
    reply: Reply


@dataclass(frozen=True)
class PongReceived:
    """A PONG we did not ask for on this socket (reported, otherwise ignored)."""

    text: str


@dataclass(frozen=True)
class PingReceived:
    """The router pinged us; a PONG is already queued."""

    text: str


Event = ReplyReceived | PongReceived | PingReceived


class ControlChannel:
    """Request/reply bookkeeping for one SAM control socket."""

    def __init__(self, *, max_line: int = protocol.MAX_REPLY_LENGTH) -> None:
        #: Negotiated version, set by the HELLO REPLY.
        self.version: tuple[int, int] | None = None
        self._lines = LineReader(max_line)
        self._outgoing = bytearray()
        self._pending: deque[str] = deque()
        self._events: deque[Event] = deque()

    # ------------------------------------------------------------------ commands out

    @property
    def supports_ping(self) -> bool:
        return supports_ping(self.version)

    @property
    def outstanding(self) -> int:
        """Commands sent and not yet answered."""
        return len(self._pending)

    def send_command(self, line: bytes, now: float) -> None:
        """Queue one command line built by :mod:`i2proxy.sam.protocol`."""
        if not line.endswith(b"\n") or line.count(b"\n") != 1:
            raise ValueError("a SAM command is exactly one line")
        words = line.decode("utf-8").split(" ", 2)
        self._pending.append(" ".join(words[:2]).strip())
        self._outgoing += line

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # ------------------------------------------------------------------ replies in

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes from the socket. Raises SAMProtocolError on garbage or an unasked reply."""
        for line in self._lines.feed(data):
            if not line.strip():
                continue
            self._handle_reply(protocol.parse_reply(line), now)

    def _handle_reply(self, reply: Reply, now: float) -> None:
        if reply.topic == "PING":
            self._outgoing += protocol.pong(reply.text)
            self._events.append(PingReceived(reply.text))
            return
        if reply.topic == "PONG":
            self._events.append(PongReceived(reply.text))
            return
        if not self._pending:
            raise SAMProtocolError(f"unsolicited SAM reply: {reply.topic} {reply.kind}")
        command = self._pending.popleft()
        expected_topic = command.split(" ", 1)[0]
        # i2pd answers some STREAM/NAMING failures with "SESSION STATUS RESULT=I2P_ERROR", so a
        # foreign topic is accepted for errors, but an OK must come from the asked-for topic.
        if reply.topic != expected_topic and reply.ok:
            raise SAMProtocolError(f"{reply.topic} {reply.kind} reply to {command}")
        if reply.topic == "HELLO" and reply.ok:
            self.version = protocol.parse_version(reply.params.get("VERSION", ""))
        self._events.append(ReplyReceived(command, reply))

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None
