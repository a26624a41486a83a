"""Round-trip estimation and retransmission timeout per RFC 6298.

Kept apart from the connection (as aioquic's recovery module is) so the arithmetic is testable
alone. Karn's rule is the caller's: samples only from packets sent exactly once.
"""

from __future__ import annotations


class RttEstimator:
    """SRTT/RTTVAR smoothing (alpha 1/8, beta 1/4, K 4) with exponential backoff."""

    ALPHA = 0.125
    BETA = 0.25
    K = 4

    def __init__(
        self,
        initial_rto: float,
        min_rto: float,
        max_rto: float,
        *,
        seed_rtt: float | None = None,
    ) -> None:
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.srtt: float | None = None
        self.rttvar: float = 0.0
        self.latest: float | None = None
        self._base_rto = initial_rto
        self._backoff = 1
        if seed_rtt is not None:
            # Control-block sharing: a recent connection's SRTT is as good as a first sample,
            # but its variance is unknown, so keep the margin of a first measurement (2.2).
            self.add_sample(seed_rtt)
            self.latest = None

    @property
    def rto(self) -> float:
        """The current timeout including backoff, clamped to [min_rto, max_rto]."""
        return min(self.max_rto, max(self.min_rto, self._base_rto) * self._backoff)

    def add_sample(self, rtt: float) -> None:
        """RFC 6298 (2.2)/(2.3); a new sample also ends any backoff (5.7 allows this)."""
        rtt = max(rtt, 0.0)
        self.latest = rtt
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - self.BETA) * self.rttvar + self.BETA * abs(self.srtt - rtt)
            self.srtt = (1 - self.ALPHA) * self.srtt + self.ALPHA * rtt
        self._base_rto = self.srtt + max(0.001, self.K * self.rttvar)
        self._backoff = 1

    def back_off(self) -> None:
        """RFC 6298 (5.5): double the timeout after it expired (bounded by max_rto)."""
        if self.rto < self.max_rto:
            self._backoff *= 2
