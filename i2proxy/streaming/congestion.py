"""Congestion control in packets (messages), chosen by name (``i2p.streaming.congestion``).

The interface is aioquic's ``quic/congestion/base.py`` shape: the recovery module reports every
send, every acknowledged packet, every loss and every RTT sample, and reads ``window`` (how many
unacknowledged packets may be in flight). I2P streaming counts packets, not bytes, so windows
are packet counts. Losses are grouped into *recovery episodes* as in RFC 9002 7.3.2: a loss of a
packet sent before the current episode began is the same congestion event and is not punished
again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: Smallest window after a loss (RFC 9002's kMinimumWindow is two packets).
MIN_WINDOW = 2


class CongestionControl(ABC):
    """Window policy of one connection."""

    #: Unacknowledged packets allowed in flight.
    window: int
    #: Slow-start threshold, packets.
    ssthresh: float

    def __init__(self, initial_window: int, max_window: int) -> None:
        self.max_window = max_window
        self.window = max(1, min(initial_window, max_window))
        self.ssthresh = float(max_window)
        self._recovery_start = float("-inf")

    def on_packet_sent(self, now: float, in_flight: int) -> None:  # noqa: B027 - optional hook
        """A new (not retransmitted) packet left; ``in_flight`` includes it."""

    @abstractmethod
    def on_packet_acked(self, now: float, sent_time: float) -> None:
        """One packet sent at ``sent_time`` was newly acknowledged."""

    def on_packets_lost(self, now: float, largest_sent_time: float, *, timeout: bool) -> None:
        """Packets were declared lost; the latest of them was sent at ``largest_sent_time``.

        ``timeout``: found by the retransmission timer rather than by later ACKs."""
        if largest_sent_time <= self._recovery_start:
            if timeout:
                # Another RTO in the same episode: nothing came back for a whole backed-off
                # timeout (persistent congestion, RFC 9002 7.6): fall to the minimum.
                self.window = 1
            return
        self._recovery_start = now
        self._reduce(now)
        if timeout:
            self.window = max(1, min(self.window, MIN_WINDOW))

    def on_rtt_sample(self, now: float, rtt: float, srtt: float) -> None:  # noqa: B027 - optional hook
        """A new RTT measurement (Karn's rule already applied)."""

    def in_recovery(self, sent_time: float) -> bool:
        """A packet sent at ``sent_time`` was sent before the current recovery episode began."""
        return sent_time <= self._recovery_start

    @abstractmethod
    def _reduce(self, now: float) -> None:
        """Multiplicative decrease at the start of a recovery episode."""


class RenoCongestion(CongestionControl):
    """NewReno (RFC 5681/9002): +1 per ACK in slow start, +1 per window in avoidance, halve on
    loss once per episode. Java I2P and i2pd 2.45 grow the same way."""

    def __init__(self, initial_window: int, max_window: int) -> None:
        super().__init__(initial_window, max_window)
        self._acked_in_avoidance = 0

    def on_packet_acked(self, now: float, sent_time: float) -> None:
        if self.in_recovery(sent_time):
            return  # RFC 9002 7.3.2: no growth for packets sent before the episode began
        if self.window < self.ssthresh:
            self.window += 1
        else:
            self._acked_in_avoidance += 1
            if self._acked_in_avoidance >= self.window:
                self._acked_in_avoidance = 0
                self.window += 1
        self.window = min(self.window, self.max_window)

    def _reduce(self, now: float) -> None:
        self.ssthresh = max(MIN_WINDOW, self.window // 2)
        self.window = int(self.ssthresh)
        self._acked_in_avoidance = 0


class CubicCongestion(CongestionControl):
    """CUBIC (RFC 9438) in packets: after a loss the window regrows along a cubic curve centred
    on the window where the loss happened, independent of the RTT, and never slower than Reno
    would (the "Reno-friendly" region). Suits long-RTT I2P paths where Reno's +1 per round trip
    takes minutes to refill a large window."""

    C = 0.4
    BETA = 0.7

    def __init__(self, initial_window: int, max_window: int) -> None:
        super().__init__(initial_window, max_window)
        self._w_max = 0.0
        self._k = 0.0
        self._epoch: float | None = None
        self._w_est = 0.0
        self._srtt = 0.0
        self._cwnd = float(self.window)

    def on_rtt_sample(self, now: float, rtt: float, srtt: float) -> None:
        self._srtt = srtt

    def on_packet_acked(self, now: float, sent_time: float) -> None:
        if self.in_recovery(sent_time):
            return
        if self._cwnd < self.ssthresh:
            self._cwnd += 1
        else:
            if self._epoch is None:
                self._epoch = now
                self._w_max = max(self._w_max, self._cwnd)
                self._k = ((self._w_max - self._cwnd) / self.C) ** (1 / 3)
                self._w_est = self._cwnd
            t = now - self._epoch + self._srtt
            target = self.C * (t - self._k) ** 3 + self._w_max
            self._w_est += 3 * (1 - self.BETA) / (1 + self.BETA) / self._cwnd
            goal = max(target, self._w_est)
            if goal > self._cwnd:
                self._cwnd += min(goal - self._cwnd, self._cwnd / 2) / self._cwnd
        self._cwnd = min(self._cwnd, float(self.max_window))
        self.window = max(1, int(self._cwnd))

    def _reduce(self, now: float) -> None:
        self._w_max = self._cwnd
        self._cwnd = max(float(MIN_WINDOW), self._cwnd * self.BETA)
        self.ssthresh = self._cwnd
        self._epoch = None
        self.window = int(self._cwnd)

    def on_packets_lost(self, now: float, largest_sent_time: float, *, timeout: bool) -> None:
        super().on_packets_lost(now, largest_sent_time, timeout=timeout)
        self._cwnd = min(self._cwnd, float(self.window))


ALGORITHMS: dict[str, type[CongestionControl]] = {
    "reno": RenoCongestion,
    "aimd": RenoCongestion,
    "cubic": CubicCongestion,
}


def create(name: str, initial_window: int, max_window: int) -> CongestionControl:
    """The congestion controller called ``name`` (case-insensitive)."""
    try:
        cls = ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown congestion algorithm {name!r}") from None
    return cls(initial_window, max_window)
