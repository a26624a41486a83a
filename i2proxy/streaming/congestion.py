"""Congestion control in packets (messages): slow start + AIMD, chosen by name.

The interface follows aioquic's ``QuicCongestionControl``: the connection reports sends, ACKs
and losses, and reads ``window`` (how many unacknowledged packets may be in flight).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class CongestionControl(ABC):
    """Window policy of one connection."""

    window: int

    @abstractmethod
    def on_packet_acked(self, now: float) -> None:
        """One new (not duplicate) packet was acknowledged."""

    @abstractmethod
    def on_fast_retransmit(self, now: float, rtt: float) -> None:
        """A packet was NACKed twice and resent: one loss signal per round trip."""

    @abstractmethod
    def on_timeout(self, now: float, rtt: float) -> None:
        """The retransmission timer expired."""


class AimdCongestion(CongestionControl):
    """TCP-Reno-like: +1 packet per ACK in slow start, +1 per window in avoidance, halve on loss.

    A timeout collapses the window to 1 (RFC 5681 3.1) as the path may have changed tunnels.
    Loss signals within one round trip count once (``recovery_until``).
    """

    def __init__(self, initial_window: int, max_window: int, *, ssthresh: int | None = None):
        self.max_window = max_window
        self.window = max(1, min(initial_window, max_window))
        self.ssthresh = ssthresh if ssthresh is not None else max_window
        self._acked_in_avoidance = 0
        self._recovery_until = -1.0

    def on_packet_acked(self, now: float) -> None:
        if self.window < self.ssthresh:
            self.window += 1
        else:
            self._acked_in_avoidance += 1
            if self._acked_in_avoidance >= self.window:
                self._acked_in_avoidance = 0
                self.window += 1
        self.window = min(self.window, self.max_window)

    def _loss(self, now: float, rtt: float) -> bool:
        if now < self._recovery_until:
            return False
        self._recovery_until = now + rtt
        self.ssthresh = max(2, self.window // 2)
        return True

    def on_fast_retransmit(self, now: float, rtt: float) -> None:
        if self._loss(now, rtt):
            self.window = self.ssthresh

    def on_timeout(self, now: float, rtt: float) -> None:
        self._loss(now, rtt)
        self.window = 1


ALGORITHMS = {"aimd": AimdCongestion, "default": AimdCongestion}


def create(name: str, initial_window: int, max_window: int) -> CongestionControl:
    try:
        cls = ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown congestion algorithm {name!r}") from None
    return cls(initial_window, max_window)
