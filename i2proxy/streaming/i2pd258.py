"""The receiver's ACK clock for a paced i2pd sender (2.54 and later; docs/STREAMING.md, "The
i2pd 2.58.0 sender").

Each of our ACKs is one garlic message, and on a router link one TCP segment: a lost one holds
the reverse path for a tail-loss probe (~200 ms at 0 ms per link, ~400 ms at 50 ms). Such a
sender re-arms its resend timer with every ACK of new data (or with a NACK) at ``m_RTO = 1.3 x
RTT + jitter + the mean gap between ACKs`` and never backs it off; two expiries in one silence
put its window back to 10 and restart its estimates. So a receiver that ACKs less often meets
fewer such stalls, and lengthens the sender's RTO by its own ACK gap, which is the one term of
it we control.

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

Telling such a sender from 2.45.1 (``i2pd245.ResendStormHold.on_third_packet``): one that
answered our pre-ACK's request for an immediate ACK is paced, whatever its timing (only 2.54+
answers; ``Connection._answers_ack_request``). Without that answer, timing decides: 2.45.1 sends
data packet 3 only when our first ACK of data has reached it, so packet 3 comes at least a round
trip after that ACK left; a paced sender's comes at its pace, whatever we ACK. The first flight's
spacing says so where the path is calm, but a lost segment on a router link holds packets 1 and
2 and releases them together (~1 s at 200 ms per link): no spacing, then packet 3 at the pace.
Traced on a 2.58 network at 200 ms per link with 1 % loss (docs/BENCHMARKS.md): such GETs got
the 2.45 rules (an ACK every 2nd packet) and took 48-75 s against 18-20 s. So on a path whose
latest RTT sample of ours (the SYN's; a remembered SRTT may hold a first contact's LeaseSet
lookup) is at least ``FIRST_FLIGHT_MIN_RTT``, a packet 3 that came sooner than
``FIRST_FLIGHT_RTT_FRACTION`` of it after our first ACK was not sent in answer to it: paced. On
a faster path (0 ms links, a sample of a few ms that load alone doubles) the spacing alone
decides, as before.
"""

from __future__ import annotations

#: The ACK interval for a paced i2pd sender, as a fraction of our smoothed RTT.
ACK_INTERVAL_RTT_FRACTION = 0.5
#: Its floor (s): half of the sender's ``MIN_RTO`` (20 ms).
MIN_ACK_INTERVAL = 0.010
#: Its ceiling (s): the window the sender must add to cover it stays below 50 ms of packets.
MAX_ACK_INTERVAL = 0.050


#: Packet 3 this soon after our first ACK of data left (fraction of our latest RTT sample) was
#: not sent in answer to it (see the module).
FIRST_FLIGHT_RTT_FRACTION = 0.5
#: ... judged so only when that sample is at least this (s): 50 ms per link and more.
FIRST_FLIGHT_MIN_RTT = 0.05


def sent_before_our_ack_arrived(gap: float, rtt: float | None) -> bool:
    """Data packet 3 came ``gap`` s after our first ACK of data left, ``rtt`` being our latest
    RTT sample: too soon to answer that ACK, so the sender did not wait for it (a paced i2pd,
    not 2.45.1; see the module)."""
    return rtt is not None and rtt >= FIRST_FLIGHT_MIN_RTT and gap < rtt * FIRST_FLIGHT_RTT_FRACTION


def paced_ack_interval(srtt: float | None) -> float:
    """How long in-order data from a paced i2pd sender waits for its ACK (see the module)."""
    if srtt is None:
        return MIN_ACK_INTERVAL
    return min(MAX_ACK_INTERVAL, max(MIN_ACK_INTERVAL, srtt * ACK_INTERVAL_RTT_FRACTION))
