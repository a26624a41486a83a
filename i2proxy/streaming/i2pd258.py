"""The receiver's ACK clock for a paced i2pd sender (2.54 and later; docs/STREAMING.md, "The
i2pd 2.58.0 sender").

Such a sender takes one RTT sample per ACK and keeps its jitter as a mean over samples, so the
number of ACKs that wait behind a stall of the reverse path decides whether its delay-based
window drop fires (at 0 ms an ACK every 2nd packet drops it to 3 at every 200 ms stall in the
model). For it, ACKs that the ACK ratio would send at once go on a clock instead: the ACK delay
after the first unacknowledged packet (``min(initialAckDelay, max(2 ms, SRTT/10))``, i2pd's own
receiver rule), and at the latest ``MAX_ACK_INTERVAL`` after the previous ACK. NACKs of new
holes and ACKs of filled holes still leave at once.
"""

from __future__ import annotations

#: Longest wait between ratio-triggered ACKs to a paced i2pd sender (s).
MAX_ACK_INTERVAL = 0.010


def paced_ack_due(last_ack_at: float, now: float) -> float:
    """The latest a ratio-triggered ACK may wait: ``MAX_ACK_INTERVAL`` after the last one."""
    return max(now, last_ack_at + MAX_ACK_INTERVAL)
