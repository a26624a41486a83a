"""Loss recovery of one stream: what is unacknowledged, when it is lost, what to resend.

Kept apart from :mod:`~i2proxy.streaming.connection` the way aioquic keeps
``quic/recovery.py`` apart from ``QuicConnection``: the connection owns the state machine and
the packet format; this module owns the sent-but-unacknowledged packets, the RTT estimator and
retransmission timer, ACK/NACK processing, the retransmission decisions and the congestion
controller. Like the connection it never reads a clock (``now`` is a parameter).
"""

from __future__ import annotations

from dataclasses import dataclass

from i2proxy.streaming import congestion
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag
from i2proxy.streaming.rtt import RttEstimator


@dataclass
class SentPacket:
    """A sequenced packet we sent and the peer has not acknowledged yet."""

    seq: int
    payload: bytes
    #: SYNCHRONIZE and/or CLOSE.
    control: Flag
    first_sent: float
    last_sent: float
    sends: int = 1
    #: ACKs that listed this packet as missing.
    nacked: int = 0


@dataclass
class AckResult:
    """What one incoming ACK changed."""

    #: Packets newly acknowledged, oldest first.
    acked: list[SentPacket]


class MaxResendsExceeded(Exception):
    """A packet went unacknowledged after ``max_resends`` retransmissions."""

    def __init__(self, packet: SentPacket) -> None:
        super().__init__(
            f"packet {packet.seq} unacknowledged after {packet.sends - 1} retransmissions"
        )
        self.packet = packet


class Recovery:
    """Sent packets, RTT/RTO, NACKs, retransmissions and the congestion window of one stream."""

    def __init__(
        self,
        options: StreamingOptions,
        *,
        seed_rtt: float | None = None,
        initial_window: int | None = None,
    ) -> None:
        self.options = options
        self.rtt = RttEstimator(
            options.initial_rto, options.min_rto, options.max_rto, seed_rtt=seed_rtt
        )
        self.congestion = congestion.create(
            options.congestion,
            initial_window if initial_window is not None else options.initial_window_size,
            options.max_window_size,
        )
        #: Sequence number → packet, for everything sent and not yet acknowledged.
        self.sent: dict[int, SentPacket] = {}
        self.rto_deadline: float | None = None
        self.retransmissions = 0
        self._resend: list[int] = []

    # ------------------------------------------------------------------ queries
    @property
    def in_flight(self) -> int:
        return len(self.sent)

    def window_room(self) -> int:
        """How many new packets the congestion window allows now."""
        return self.congestion.window - len(self.sent)

    def get_timer(self) -> float | None:
        return self.rto_deadline

    # ------------------------------------------------------------------ events
    def on_packet_sent(self, seq: int, payload: bytes, control: Flag, now: float) -> None:
        """A new sequenced packet left (never called for retransmissions)."""
        self.sent[seq] = SentPacket(seq, payload, control, now, now)
        self.congestion.on_packet_sent(now, len(self.sent))
        if self.rto_deadline is None:
            self.rto_deadline = now + self.rtt.rto

    def on_ack_received(self, ack_through: int, nacks: tuple[int, ...], now: float) -> AckResult:
        """Process the ACK fields of a packet from the peer (``ack_through`` already checked
        against what we sent)."""
        nacked = set(nacks)
        acked: list[SentPacket] = []
        for seq in sorted(self.sent):
            if seq > ack_through:
                break
            sent = self.sent[seq]
            if seq in nacked:
                sent.nacked += 1
                if sent.nacked == 2 and seq not in self._resend:
                    self._resend.append(seq)
                    self.congestion.on_packets_lost(now, sent.last_sent, timeout=False)
                continue
            del self.sent[seq]
            acked.append(sent)
            if sent.sends == 1:  # Karn: no samples from retransmitted packets
                self.rtt.add_sample(now - sent.first_sent)
                assert self.rtt.srtt is not None
                self.congestion.on_rtt_sample(now, now - sent.first_sent, self.rtt.srtt)
            self.congestion.on_packet_acked(now, sent.last_sent)
        if acked:
            self._resend = [s for s in self._resend if s in self.sent]
            self.rto_deadline = now + self.rtt.rto if self.sent else None
        return AckResult(acked)

    def on_timeout(self, now: float) -> None:
        """The retransmission timer expired. Raises :class:`MaxResendsExceeded`."""
        rto = self.rtt.rto
        due = [s for s in self.sent.values() if now >= s.last_sent + rto - 1e-9]
        if not due and self.sent:
            due = [self.sent[min(self.sent)]]
        for sent in due:
            if sent.sends > self.options.max_resends:
                raise MaxResendsExceeded(sent)
            if sent.seq not in self._resend:
                self._resend.append(sent.seq)
        if due:
            self.congestion.on_packets_lost(now, max(s.last_sent for s in due), timeout=True)
        self.rtt.back_off()
        self.rto_deadline = now + self.rtt.rto if self.sent else None

    def on_closing_timeout(self, now: float) -> None:
        """The timer expired while lingering after close: resend what is left (our CLOSE)."""
        self._resend = list(self.sent)
        self.rtt.back_off()
        self.rto_deadline = now + self.rtt.rto

    def take_resends(self, now: float) -> list[SentPacket]:
        """Packets to retransmit now, marked as sent again."""
        out = []
        for seq in self._resend:
            sent = self.sent.get(seq)
            if sent is None:
                continue
            sent.sends += 1
            sent.last_sent = now
            self.retransmissions += 1
            out.append(sent)
        self._resend = []
        return out

    def clear(self) -> None:
        """Forget everything (reset, or the linger after close ended)."""
        self.sent.clear()
        self._resend.clear()
        self.rto_deadline = None
