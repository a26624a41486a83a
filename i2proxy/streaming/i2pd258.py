"""The receiver's ACK clock for a paced i2pd sender (2.54 and later; docs/STREAMING.md, "The
i2pd 2.58.0 sender").

Each of our ACKs is one garlic message, and on a router link one TCP segment: a lost one holds
the reverse path for a tail-loss probe (~200 ms at 0 ms per link, ~400 ms at 50 ms). Such a
sender re-arms its resend timer with every ACK at ``m_RTO = 1.3 x RTT + jitter + the mean gap
between ACKs`` and never backs it off; two expiries in one silence put its window back to 10
and restart its estimates. So a receiver that ACKs less often meets fewer such stalls, and
lengthens the sender's RTO by its own ACK gap, which is the one term of it we control.

The rule: data that arrives in order is ACKed ``paced_ack_interval(SRTT)`` after the first
packet that ACK will cover (the ACK ratio is no trigger), that is ``SRTT x
ACK_INTERVAL_RTT_FRACTION`` within [``MIN_ACK_INTERVAL``, ``MAX_ACK_INTERVAL``]:

- no packet waits longer than that, so the sender's RTT sample (the newest packet an ACK
  covers) is not inflated, and its window must cover the path's RTT plus that interval;
- the interval stays below the sender's RTO even before it has counted our gaps in it: half
  the RTT is under ``1.3 x RTT``, and the 10 ms floor (for a path of a few ms) is half of its
  20 ms ``MIN_RTO``; the ceiling bounds the window it must add on long paths.

NACKs of new holes, ACKs of filled holes, of CLOSE and requested immediate ACKs still leave at
once (``Connection._process_sequenced``).
"""

from __future__ import annotations

#: The ACK interval for a paced i2pd sender, as a fraction of our smoothed RTT.
ACK_INTERVAL_RTT_FRACTION = 0.5
#: Its floor (s): half of the sender's ``MIN_RTO`` (20 ms).
MIN_ACK_INTERVAL = 0.010
#: Its ceiling (s): the window the sender must add to cover it stays below 50 ms of packets.
MAX_ACK_INTERVAL = 0.050


def paced_ack_interval(srtt: float | None) -> float:
    """How long in-order data from a paced i2pd sender waits for its ACK (see the module)."""
    if srtt is None:
        return MIN_ACK_INTERVAL
    return min(MAX_ACK_INTERVAL, max(MIN_ACK_INTERVAL, srtt * ACK_INTERVAL_RTT_FRACTION))
