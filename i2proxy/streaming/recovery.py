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


#: A packet is lost once this many packets sent after it were acknowledged (RFC 9002's
#: kPacketThreshold; Java I2P fast-retransmits after 3 NACKs too). Tolerates reordering by up to
#: two packets without a spurious retransmission.
PACKET_THRESHOLD = 3
#: ... or once it is older than this many RTTs while a later-sent packet was acknowledged
#: (RFC 9002's kTimeThreshold, RACK's reordering window): reordering on I2P comes from tunnels
#: of different lengths, so it is measured in time, not in packets.
TIME_THRESHOLD = 9 / 8
#: Timer granularity (RFC 9002's kGranularity).
GRANULARITY = 0.001
#: Pacing: the window is spread over the RTT at this multiple of window/RTT (RFC 9002 7.7
#: suggests N = 1.25 so pacing itself never limits the rate)...
PACING_GAIN = 1.25
#: ... allowing bursts of up to a quarter window, between 2 and 16 packets (aioquic's pacer).
MIN_BURST, MAX_BURST = 2, 16
#: Largest distance between the oldest unacknowledged packet and the next new one, in windows
#: of ``maxWindowSize`` (Java limits it to 2 windows; our receiver keeps no more).
MAX_SEQUENCE_SPREAD = 2


class Pacer:
    """Token bucket spreading a window of new packets over one RTT instead of one burst.

    A burst of a whole window (128 packets) lands in the router's I2CP queue and the first
    tunnel at once; routers drop from full queues, and a dropped burst is many losses at once.
    """

    def __init__(self) -> None:
        self.tokens = float(MAX_BURST)
        self._updated: float | None = None
        self.packet_time: float | None = None  # None: not paced (no RTT yet)
        self.burst = MAX_BURST

    def update(self, srtt: float | None, window: int) -> None:
        if srtt is None or srtt <= 0:
            self.packet_time = None
            return
        self.packet_time = srtt / (PACING_GAIN * max(1, window))
        self.burst = max(MIN_BURST, min(MAX_BURST, window // 4))

    def _refill(self, now: float) -> None:
        if self._updated is not None and self.packet_time:
            self.tokens = min(
                float(self.burst), self.tokens + (now - self._updated) / self.packet_time
            )
        self._updated = now

    def next_send_time(self, now: float) -> float | None:
        """None: a packet may leave now; else when the next one may."""
        if self.packet_time is None:
            return None
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:
            return None
        return now + (1.0 - self.tokens) * self.packet_time

    def on_packet_sent(self, now: float) -> None:
        if self.packet_time is None:
            return
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1.0)


class Recovery:
    """Sent packets, RTT/RTO, NACKs, retransmissions and the congestion window of one stream.

    Loss detection is RACK-like (RFC 9002 6.1, RFC 8985): a packet is declared lost only when a
    packet sent *after* it was acknowledged and either ``PACKET_THRESHOLD`` later packets were
    acknowledged or it has been outstanding longer than ``TIME_THRESHOLD`` RTTs. The
    retransmission timer only covers the case where nothing comes back at all: it resends the
    oldest unacknowledged packet alone and backs off (i2pd resends one lease-switching packet
    set, Java at most half its window; we resend one, which is what a probe needs).
    """

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
        #: When the earliest not-yet-lost packet crosses the time threshold.
        self.loss_deadline: float | None = None
        self.retransmissions = 0
        self.pacer = Pacer()
        #: When the pacer lets the next new packet leave (None: now, or nothing waiting).
        self.pacing_deadline: float | None = None
        #: Packets declared lost by ACK evidence (not by the timer).
        self.losses_detected = 0
        self._resend: list[int] = []
        self._largest_acked = -1
        self._largest_acked_sent = float("-inf")

    # ------------------------------------------------------------------ queries
    @property
    def resends_pending(self) -> bool:
        """True when :meth:`take_resends` has packets to hand out."""
        return bool(self._resend)

    @property
    def in_flight(self) -> int:
        return len(self.sent)

    def window_room(self) -> int:
        """How many new packets the congestion window allows now."""
        return self.congestion.window - len(self.sent)

    def can_send(self, next_seq: int, now: float) -> bool:
        """May a new packet with sequence ``next_seq`` leave now (window, spread and pacing)?
        When only the pacer says no, :attr:`pacing_deadline` says when to ask again."""
        self.pacing_deadline = None
        if self.congestion.window - len(self.sent) <= 0:
            return False
        if self.sent and next_seq - next(iter(self.sent)) >= (
            MAX_SEQUENCE_SPREAD * self.options.max_window_size
        ):
            return False  # the peer's reorder buffer would drop it
        if not self.options.pacing:
            return True
        self.pacer.update(self.rtt.srtt, self.congestion.window)
        wait = self.pacer.next_send_time(now)
        if wait is not None:
            self.pacing_deadline = wait
            return False
        return True

    def get_timer(self) -> float | None:
        when = self.rto_deadline
        for deadline in (self.loss_deadline, self.pacing_deadline):
            if deadline is not None and (when is None or deadline < when):
                when = deadline
        return when

    def _loss_delay(self) -> float:
        rtt = max(self.rtt.srtt or 0.0, self.rtt.latest or 0.0) or self.rtt.rto
        return max(GRANULARITY, TIME_THRESHOLD * rtt)

    # ------------------------------------------------------------------ events
    def on_packet_sent(self, seq: int, payload: bytes, control: Flag, now: float) -> None:
        """A new sequenced packet left (never called for retransmissions)."""
        self.sent[seq] = SentPacket(seq, payload, control, now, now)
        self.congestion.on_packet_sent(now, len(self.sent))
        self.pacer.on_packet_sent(now)
        if self.rto_deadline is None:
            self.rto_deadline = now + self.rtt.rto

    def on_ack_received(self, ack_through: int, nacks: tuple[int, ...], now: float) -> AckResult:
        """Process the ACK fields of a packet from the peer (``ack_through`` already checked
        against what we sent)."""
        if not self.sent:
            # Nothing in flight (a bulk receiver's every packet): nothing to acknowledge or
            # declare lost; what the general walk below would leave behind.
            self.loss_deadline = None
            return AckResult([])
        nacked = set(nacks)
        acked: list[SentPacket] = []
        for seq in list(self.sent):  # insertion order is sequence order
            if seq > ack_through:
                break
            sent = self.sent[seq]
            if seq in nacked:
                sent.nacked += 1
                continue
            del self.sent[seq]
            acked.append(sent)
        for sent in acked:
            if sent.sends == 1:  # Karn: no samples from retransmitted packets
                self.rtt.add_sample(now - sent.first_sent)
                assert self.rtt.srtt is not None
                self.congestion.on_rtt_sample(now, now - sent.first_sent, self.rtt.srtt)
            self.congestion.on_packet_acked(now, sent.last_sent)
            if sent.last_sent > self._largest_acked_sent or (
                sent.last_sent == self._largest_acked_sent and sent.seq > self._largest_acked
            ):
                self._largest_acked_sent = sent.last_sent
                self._largest_acked = sent.seq
        if acked:
            self._resend = [s for s in self._resend if s in self.sent]
            # RFC 6298 5.3: restart the timer when new data is acknowledged.
            self.rto_deadline = now + self.rtt.rto if self.sent else None
        self._detect_losses(now)
        return AckResult(acked)

    def _detect_losses(self, now: float) -> None:
        """Declare lost what later-sent, acknowledged packets prove missing (RACK)."""
        self.loss_deadline = None
        if not self.sent or self._largest_acked < 0:
            return
        delay = self._loss_delay()
        lost: list[SentPacket] = []
        for sent in self.sent.values():
            if sent.seq in self._resend:
                continue
            later_acked = sent.last_sent < self._largest_acked_sent or (
                sent.last_sent == self._largest_acked_sent and sent.seq < self._largest_acked
            )
            if not later_acked:
                continue  # nothing sent after it has come back yet: it may still be on its way
            by_count = sent.sends == 1 and self._largest_acked - sent.seq >= PACKET_THRESHOLD
            if by_count or now >= sent.last_sent + delay - 1e-9:
                lost.append(sent)
            else:
                deadline = sent.last_sent + delay
                if self.loss_deadline is None or deadline < self.loss_deadline:
                    self.loss_deadline = deadline
        if lost:
            self.losses_detected += len(lost)
            self._resend.extend(sent.seq for sent in sorted(lost, key=lambda s: s.seq))
            self.congestion.on_packets_lost(
                now, max(sent.last_sent for sent in lost), timeout=False
            )

    def handle_timer(self, now: float) -> None:
        """Run the loss or retransmission timer. Raises :class:`MaxResendsExceeded`."""
        if self.pacing_deadline is not None and now >= self.pacing_deadline:
            self.pacing_deadline = None  # the connection sends on its next packets_to_send
        if self.loss_deadline is not None and now >= self.loss_deadline:
            self._detect_losses(now)
        if self.rto_deadline is not None and now >= self.rto_deadline:
            self._on_rto(now)

    def _on_rto(self, now: float) -> None:
        """Nothing came back for a whole RTO: resend the oldest packet alone and back off."""
        if not self.sent:
            self.rto_deadline = None
            return
        oldest = self.sent[min(self.sent)]
        if oldest.sends > self.options.max_resends:
            raise MaxResendsExceeded(oldest)
        if oldest.seq not in self._resend:
            self._resend.append(oldest.seq)
        self.congestion.on_packets_lost(now, oldest.last_sent, timeout=True)
        self.rtt.back_off()
        self.rto_deadline = now + self.rtt.rto

    def on_closing_timeout(self, now: float) -> None:
        """The timer expired while lingering after close: resend what is left (our CLOSE)."""
        self._resend = list(self.sent)
        self.rtt.back_off()
        self.rto_deadline = now + self.rtt.rto
        self.loss_deadline = None

    def take_resends(self, now: float) -> list[SentPacket]:
        """Packets to retransmit now, marked as sent again."""
        out = []
        for seq in self._resend:
            sent = self.sent.get(seq)
            if sent is None:
                continue
            sent.sends += 1
            sent.last_sent = now
            sent.nacked = 0
            self.retransmissions += 1
            out.append(sent)
        self._resend = []
        return out

    def hold_rto(self, until: float) -> None:
        """Fire the retransmission timer no sooner than ``until`` (the SYN's floor: the
        connection knows that the first answer costs more than the path's RTT)."""
        if self.rto_deadline is not None and self.rto_deadline < until:
            self.rto_deadline = until

    def clear(self) -> None:
        """Forget everything (reset, or the linger after close ended)."""
        self.sent.clear()
        self._resend.clear()
        self.rto_deadline = None
        self.loss_deadline = None
        self.pacing_deadline = None
