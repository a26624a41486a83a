"""The receiver's answer to the i2pd 2.45.1 sender's resend timer (docs/STREAMING.md, "ACKs").

In every GET through i2proxy from an i2pd 2.45.1 site the sender is that router, and its resend
timer (``libi2pd/Streaming.cpp``, ``HandleResendTimer``) has two regimes:

- **quiet**: armed at ``INITIAL_RTO`` (9 s) and never re-armed by an ACK while something is in
  flight — a 32 MB GET at 0 ms finishes before it fires;
- **storm**: armed at ``m_RTO = 1.5 x`` a mean RTT that froze after ~100 packets (a few ms at
  0 ms). Every expiry resends every packet older than that, and because our ACKs arrive between
  expiries each one is "attempt 1": the window is halved again and again (it stayed at 5-18
  packets for whole 32 MB GETs on the test network, ~1 000 packets resent, 2-3x slower).

Which regime a stream gets is decided by its first RTT sample — our pre-ACK, 0 ms (quiet) or
1 ms (storm) by the millisecond clock's luck — and any later expiry (9 s, a stall) starts a
storm. The sender leaves a storm only through "attempt 2": an expiry with no ACK that
acknowledged anything since the previous one sets ``m_RTO`` to 9 s. So after a resent packet
(a duplicate: the sender's timer fired) we hold our ACKs until its expiries stop. Each expiry
resends the same packets again (we acknowledge none), so the rounds are visible: round k begins
with the first packet received k+1 times. ACKs we sent before the hold may still reach the
sender after an expiry and make the next one "attempt 1" again, so the round that is attempt 2
cannot be told apart; the sender is quiet once no new round came within 1.5 x the last
interval between rounds (its timer is 2 x ``m_RTO`` while storming, 9 s after attempt 2). The
stream is quiet again at the cost of one to three halvings, a few resent windows and about
five of its RTTs without ACKs.

On a fast path (``FAST_PATH_SRTT``) a hold also starts ``QUIET_TIMER_LEAD`` before the quiet
timer is due (9 s after the first data packets, or after the round that ended the last hold):
ACKs sent just before an expiry reach the sender after it and make the next expiry attempt 1
again, so a hold that starts only at the first resent packet costs two or three halvings (a
window of 114 fell to 15 in one 2 % loss GET at 0 ms), which 2.45.1 regrows by one packet per
frozen RTT. On a slower path that expiry is harmless: ``m_RTO`` (1.5 x a mean RTT of 100 ms or
more) is longer than the age of the oldest packet in flight while our ACKs flow, so it resends
nothing and re-arms at ``m_RTO``, and so do the expiries after it. A hold there is what makes
an expiry resend: traced at 50 ms per link, every 9 s hold halved the window (87 to 55, 126 to
70) where i2pd's own client's stream grew to 128 and stayed there (docs/BENCHMARKS.md).

That first ACK after the hold leaves the newest packet unacknowledged (the next ACK, at the
latest after the ACK delay, takes it): the sender sent nothing new while we held, so an ACK
of everything would empty its window, cancel the 9 s timer, and the next send would arm it at
the small ``m_RTO`` again — a storm right after the hold.
"""

from __future__ import annotations

from i2proxy.streaming.i2pd258 import sent_before_our_ack_arrived

#: 2.45.1 sends its first data into a window of 2 and data packet 3 only after our first ACK of
#: data reached it; i2pd 2.54+ starts with 10 and paces them RTT/10 apart. Packet 3 arriving at
#: least this long after that ACK left says "2.45 generation".
FIRST_FLIGHT_GAP = 0.001
#: A first flight spread over at least ``PACED_SPACING`` (packets 1 and 2 this far apart) with
#: packet 3 less than ``FIRST_FLIGHT_SPACING`` times that after our ACK is a paced i2pd 2.54+
#: sender (RTT/10 by its own, at first inflated, estimate), not 2.45. At 50 ms per link a 2.58
#: first stream (packets 1, 2, 3 at 0, 147 and 166 ms, our first ACK at 12 ms) passed the 1 ms
#: rule alone: 10 holds in one 4 MB GET, which took 20 s against 11 s. A smaller spacing says
#: nothing: 2.45.1's packet 2 often waits for the site's second write (1.6-4 ms after packet 1
#: at 0 ms in 4 of 8 traced GETs); taken for paced, those streams ran 14-16 s, not 3.5 s.
PACED_SPACING = 0.010
FIRST_FLIGHT_SPACING = 3.0
#: Longest hold (s): the sender's expiries come 2 x ``m_RTO`` apart (tens of ms at 0 ms,
#: ~160 ms with 2 % loss on the links); if they do not stop, ACK anyway.
MAX_HOLD = 0.5
#: The sender is quiet when no round came within this many times the last round interval.
QUIET_ROUNDS = 1.5
#: The sender's quiet timer (``INITIAL_RTO``, s): armed with its first data packet and again at
#: the attempt-2 expiry that ended a hold, it fires then whatever we ACKed.
QUIET_TIMER = 9.0
#: The hold starts this long before that expiry is due (s), so that no ACK of ours reaches the
#: sender after its first expiry: the second is then attempt 2 and the window is halved once.
QUIET_TIMER_LEAD = 0.05
#: Resent sequence numbers remembered per hold (a 2.45.1 window is at most 128).
MAX_REMEMBERED = 512
#: The ACK ratio for a 2.45-generation sender: a *quarter* of its estimated window (others get
#: an eighth), at most this many packets per ACK (128 / 4). Each ACK is one small message, and a
#: small message alone on a router link waits TCP's 200 ms tail-loss probe when its segment is
#: lost; the 2.45.1 sender, its window full, sends nothing meanwhile. Traced at 0 ms with 2 %
#: link loss (docs/BENCHMARKS.md): 4 MB GETs with ~565 ACKs spent 4-13 such gaps of 0.20 s
#: each, 1.2-2.7 s of 2.1-3.6 s. Half the window or a timed clock left the sender's window empty
#: after such a gap (re-armed at 1.5 x its frozen RTT: resends) in the sender model; a quarter
#: did not.
ACK_EVERY_245 = 32
#: A fast path: our SRTT below this (s; 0 ms links give ~12-35 ms on the busy test network, 50 ms
#: per link >= 100 ms). Two rules hold only there: the hold before the quiet timer (module doc)
#: and the quarter-window ACK ratio (``ACK_EVERY_245``; the one interleaved 50 ms / 1 % loss
#: comparison was inconclusive, one GET of 57 s, so longer paths keep an eighth until measured).
FAST_PATH_SRTT = 0.05


class ResendStormHold:
    """When to withhold ACKs from an i2pd 2.45-generation sender (see the module doc)."""

    __slots__ = (
        "_answered",
        "_armed_at",
        "_cap",
        "_ceiling",
        "_copies",
        "_first_ack_at",
        "_first_flight",
        "_leave_last",
        "_rounds",
        "applies",
        "holds",
        "until",
    )

    def __init__(self) -> None:
        #: The sender looks like i2pd 2.45 (None: not known yet).
        self.applies: bool | None = None
        #: Holds started (for statistics).
        self.holds = 0
        #: While not None: no ACK leaves before this time, or before the second expiry.
        self.until: float | None = None
        self._first_ack_at: float | None = None
        self._cap = 0.0
        #: When the sender's quiet timer was armed, as seen here (None: not known).
        self._armed_at: float | None = None
        #: Arrival times of data packets 1 and 2 (first copies).
        self._first_flight: dict[int, float] = {}
        #: Copies of each resent packet received during the hold.
        self._copies: dict[int, int] = {}
        #: When each round of resends began to arrive.
        self._rounds: list[float] = []
        self._ceiling = -1
        self._leave_last = False
        #: The sender answered our request for an immediate ACK: i2pd 2.54+, whatever the timing.
        self._answered = False

    def on_ack_sent(self, ack_through: int, now: float) -> None:
        """We sent an ACK of the peer's data up to ``ack_through``."""
        if self._first_ack_at is None and ack_through >= 1:
            self._first_ack_at = now

    def on_first_flight(self, seq: int, now: float) -> None:
        """Data packet 1 or 2 arrived for the first time."""
        self._first_flight.setdefault(seq, now)

    def on_ack_request_answered(self) -> None:
        """The peer answered our pre-ACK's request for an immediate ACK (see
        ``Connection._answers_ack_request``): only i2pd 2.54+ does."""
        self._answered = True

    def on_third_packet(self, now: float, *, i2pd: bool, rtt: float | None = None) -> None:
        """Data packet 3 arrived for the first time (``i2pd``: the peer's SYN replies are
        empty; ``rtt``: our latest RTT sample): decide whether the sender is of the 2.45
        generation."""
        if self.applies is None:
            first_ack = self._first_ack_at
            one, two = self._first_flight.get(1), self._first_flight.get(2)
            spacing = abs(two - one) if one is not None and two is not None else 0.0
            gap = now - first_ack if first_ack is not None else 0.0
            paced = (
                self._answered
                or (spacing >= PACED_SPACING and gap < FIRST_FLIGHT_SPACING * spacing)
                or sent_before_our_ack_arrived(gap, rtt)
            )
            self.applies = i2pd and first_ack is not None and gap >= FIRST_FLIGHT_GAP and not paced
            self._armed_at = first_ack  # right after the first data packets arrived

    def on_duplicate(self, seq: int, now: float) -> bool:
        """A resent packet arrived; True while ACKs must wait for the sender's next expiry."""
        if not self.applies:
            return False
        if self.until is None:
            if seq <= self._ceiling:
                return False  # a straggler of the expiries that ended the last hold
            self._start(now, now + MAX_HOLD)
        copies = self._copies.get(seq, 0) + 1
        if copies > 1 or len(self._copies) < MAX_REMEMBERED:
            self._copies[seq] = copies
        if copies > len(self._rounds):  # the first packet of the sender's next expiry
            self._rounds.append(now)
            if len(self._rounds) > 1:
                gap = now - self._rounds[-2]
                self.until = min(now + QUIET_ROUNDS * gap, self._cap)
        return True

    def _start(self, now: float, cap: float) -> None:
        self.until = self._cap = cap
        self._copies = {}
        self._rounds = []
        self.holds += 1

    def holding(self, now: float, highest: int, *, fast_path: bool) -> bool:
        """True when an ACK must not leave now (``fast_path``: see ``FAST_PATH_SRTT``)."""
        if self.until is None:
            armed = self._armed_at
            if (
                armed is None
                or not fast_path
                or now < armed + QUIET_TIMER - QUIET_TIMER_LEAD
                or not self.applies
            ):
                return False
            self._start(now, now + QUIET_TIMER_LEAD + MAX_HOLD)  # its quiet timer is due
        if now < self.until:
            return True
        self.release(highest)
        return False

    def release(self, highest: int) -> None:
        """End the hold; resends of packets up to ``highest`` are that expiry's stragglers."""
        # the last round was its attempt-2 expiry, which re-armed the quiet timer; no round at
        # all: the timer is not where we thought, so no hold before the next resend
        self._armed_at = self._rounds[-1] if self._rounds else None
        self.until = None
        self._copies = {}
        self._rounds = []
        self._ceiling = highest
        self._leave_last = True

    def take_leave_last(self) -> bool:
        """True once after a hold: this ACK must not acknowledge the newest packet."""
        leave, self._leave_last = self._leave_last, False
        return leave
