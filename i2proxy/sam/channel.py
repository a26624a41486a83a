"""The SAM control channel as a sans-IO state machine: commands out, replies and timers in.

One control socket carries HELLO, SESSION CREATE and later NAMING LOOKUP / PING. Routers answer
commands in order and i2pd reads the next command only after answering the previous one, so
replies are matched to a FIFO of outstanding commands. A ``PING`` from the router is answered
with ``PONG`` at once. Keepalive: when the channel has been idle for ``keepalive_interval`` and
the negotiated version has PING (3.2+), a PING goes out; no PONG within ``keepalive_timeout``
yields :class:`KeepaliveTimeout` so the adapter can drop the socket and reconnect.

Shape follows aioquic/h11: ``send_*`` queues bytes, ``receive_data(data, now)`` parses,
``next_event()`` drains events, ``data_to_send()`` drains bytes, ``get_timer()`` /
``handle_timer(now)`` drive time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from i2proxy.sam import protocol
from i2proxy.sam.protocol import LineReader, Reply, SAMProtocolError

#: SAM 3.2 introduced PING/PONG. i2pd before 2.46 answers 3.1 and closes the socket on PING.
PING_MIN_VERSION = (3, 2)


@dataclass(frozen=True)
class ReplyReceived:
    """The reply to the oldest outstanding command."""

    #: The command words it answers, e.g. ``"SESSION CREATE"``.
    command: str
    #: The parsed reply; its RESULT may be an error (check ``reply.ok``).
    reply: Reply


@dataclass(frozen=True)
class PongReceived:
    """A PONG; ``rtt`` is set when it answers our own keepalive PING."""

    text: str
    rtt: float | None


@dataclass(frozen=True)
class PingReceived:
    """The router pinged us; a PONG is already queued."""

    text: str


@dataclass(frozen=True)
class KeepaliveTimeout:
    """Our PING went unanswered for ``waited`` seconds: the router is gone or wedged."""

    waited: float


Event = ReplyReceived | PongReceived | PingReceived | KeepaliveTimeout


class ControlChannel:
    """Request/reply bookkeeping and keepalive for one SAM control socket."""

    def __init__(
        self,
        *,
        keepalive_interval: float = 30.0,
        keepalive_timeout: float = 15.0,
        max_line: int = protocol.MAX_REPLY_LENGTH,
    ) -> None:
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        #: Negotiated version, set by the HELLO REPLY.
        self.version: tuple[int, int] | None = None
        self._lines = LineReader(max_line)
        self._outgoing = bytearray()
        self._pending: deque[str] = deque()
        self._events: deque[Event] = deque()
        self._last_activity: float | None = None
        self._ping_sent_at: float | None = None
        self._ping_token: str | None = None
        self._ping_counter = 0
        self._timed_out = False

    # ------------------------------------------------------------------ commands out

    @property
    def supports_ping(self) -> bool:
        return self.version is not None and self.version >= PING_MIN_VERSION

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
        self._touch(now)

    def send_ping(self, now: float, text: str | None = None) -> str:
        """Queue a PING (only on 3.2+). Returns the token the PONG must echo."""
        if not self.supports_ping:
            raise SAMProtocolError(f"SAM {self.version} has no PING (needs 3.2)")
        if text is None:
            self._ping_counter += 1
            text = f"i2proxy-{self._ping_counter}"
        self._ping_token = text
        self._ping_sent_at = now
        self._outgoing += protocol.ping(text)
        return text

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # ------------------------------------------------------------------ replies in

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes from the socket. Raises SAMProtocolError on garbage or an unasked reply."""
        if data:
            self._touch(now)
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
            rtt = None
            if self._ping_sent_at is not None and reply.text == self._ping_token:
                rtt = now - self._ping_sent_at
                self._ping_sent_at = None
                self._ping_token = None
            self._events.append(PongReceived(reply.text, rtt))
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

    # ------------------------------------------------------------------ time

    def _touch(self, now: float) -> None:
        self._last_activity = now

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or None when no keepalive is due."""
        if self._timed_out or not self.supports_ping or self._last_activity is None:
            return None
        if self._ping_sent_at is not None:
            return self._ping_sent_at + self.keepalive_timeout
        if self._pending:
            # i2pd reads nothing while it works on a command (SESSION CREATE takes ~20 s), so
            # a PING now would go unanswered; the adapter's per-command timeout covers it.
            return None
        return self._last_activity + self.keepalive_interval

    def handle_timer(self, now: float) -> None:
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return
        if self._ping_sent_at is not None:
            self._timed_out = True
            self._events.append(KeepaliveTimeout(now - self._ping_sent_at))
            return
        self.send_ping(now)
