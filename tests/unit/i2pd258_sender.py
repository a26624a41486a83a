"""What an i2pd 2.58.0 *sender* learns from our ACKs, on a virtual clock (times in integer ms).

The site's router is the sender of every GET through i2proxy; a 2.58 sender is delay-based, so
how many ACKs reach it, and when, decides its window. This is the estimator half of
``Stream::ProcessAck`` and ``ProcessWindowDrop`` in i2pd's ``libi2pd/Streaming.cpp`` (tag
2.58.0), as read there, nothing more:

- One RTT sample per ACK: the *smallest* ``now - sendTime`` among the packets it acknowledges
  that were not resent (NACKed ones are skipped). ``m_RTT`` is the mean of this sample and the
  previous one.
- While the window is not being dropped: ``m_SlowRTT`` and ``m_FastRTT`` are EWMAs of
  ``m_RTT`` per sample (alpha 0.02 and 0.1); ``m_Jitter`` is the *mean since the last reset* of
  ``|sample - previous sample| + 3`` over the samples that differ from the previous one;
  ``m_MinRTT`` the smallest ``m_RTT``.
- **Window drop** (delay-based): ``m_SlowRTT > m_MinRTT + 6 x m_Jitter`` while not already
  dropped → target ``window x (MinRTT + 4 x Jitter) / FastRTT / 2`` (at least 3); estimates
  frozen until the ACK-through passes the sequence number where the drop began plus the target;
  then the next sample starts them afresh (``m_MinRTT`` = that sample, ``m_Jitter`` = 20 % of
  it + 3).
- ``m_RTO = max(20, 1.3 x m_RTT + m_Jitter + ACK interval)``, where the ACK interval is
  ``(previous + latest gap between two ACKs) / 2``; every ACK that acknowledges something
  re-arms the resend timer at ``m_RTO`` (``HandleResendTimer`` does not back it off). Its first
  expiry resends one packet and re-arms it alike; the second without an ACK in between
  (``ResendPacket``, attempt 2) puts the window back to 10, sets ``m_RTO`` to 9 s and starts the
  estimates afresh (and switches tunnel or lease, not modelled). Expiries are counted when the
  next ACK arrives (``single_expiries``, ``double_expiries``).

Not modelled: pacing and window growth (``HandleSendTimer``), NACK resends (no window change:
``LOSS_BASED_CONTROL_ENABLED`` is 0). The window is held fixed between drops, which is enough to
count drops for a given ACK pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INITIAL_RTT = 1500
INITIAL_RTO = 9000
INITIAL_WINDOW_SIZE = 10
MIN_WINDOW_SIZE = 3
MIN_RTO = 20
SLOWRTT_EWMA_ALPHA = 0.02
RTT_EWMA_ALPHA = 0.1


@dataclass
class I2pd258Estimator:
    """``Stream::ProcessAck``'s RTT, jitter, window-drop and RTO rules of an incoming stream."""

    ack_delay: int = 200  # i2p.streaming.initialAckDelay: the first ACK interval
    window: float = INITIAL_WINDOW_SIZE
    rtt: float = INITIAL_RTT
    min_rtt: float = INITIAL_RTT
    slow_rtt: float = INITIAL_RTT
    fast_rtt: float = INITIAL_RTT
    prev_sample: int = INITIAL_RTT
    jitter: float = 0.0
    jitter_accum: int = 0
    jitter_div: int = 1
    rto: int = 9000
    first_rtt_sample: bool = False
    first_ack: bool = False
    win_dropped: bool = True  # an incoming stream starts "dropped" until packet 10 is ACKed
    drop_delay_seq: int = INITIAL_WINDOW_SIZE
    last_ack_at: int = 0
    ack_interval: int = 0
    #: (time, target window) of every delay-based drop
    drops: list[tuple[int, float]] = field(default_factory=list)
    #: Apply the resend timer's second expiry (window, RTO and estimates reset); off, the
    #: expiries are still counted but the estimates run on (to study the delay-based drop alone).
    resend_timer: bool = True
    #: When the resend timer was last armed, and at what RTO (None: not armed yet).
    armed_at: int | None = None
    armed_rto: int = INITIAL_RTO
    #: ACK gaps that saw one expiry (one packet resent) / two (window back to 10, 9 s RTO).
    single_expiries: int = 0
    double_expiries: int = 0

    def __post_init__(self) -> None:
        self.ack_interval = self.ack_delay

    def on_ack(self, ts: int, ack_through: int, sent_at: dict[int, int], next_seq: int) -> None:
        """An ACK acknowledging the packets in ``sent_at`` (sequence → send time, resends left
        out by the caller); ``next_seq`` is the sender's next sequence number."""
        if sent_at:
            self._count_expiries(ts)
        sample = None
        for seq, at in sent_at.items():
            rtt = ts - at
            if seq == 0:
                self.first_rtt_sample = True
                sample = max(rtt, 1)
            elif rtt >= 0:
                sample = rtt if sample is None else min(sample, rtt)
        if self.last_ack_at:
            interval = ts - self.last_ack_at
            previous = self.ack_interval
            self.ack_interval = (previous + interval) // 2 if previous else interval
        self.last_ack_at = ts
        if sample is not None:
            self._on_sample(sample, next_seq, ts)
        if self.win_dropped and ack_through > self.drop_delay_seq:
            self.first_rtt_sample = True
            self.win_dropped = False
        if sent_at and self.first_ack:
            self.first_ack = False
        if sent_at:
            self.armed_at, self.armed_rto = ts, self.rto

    def _count_expiries(self, ts: int) -> None:
        if self.armed_at is None:
            return
        gap = ts - self.armed_at
        if gap > 2 * self.armed_rto:
            self.double_expiries += 1
            if not self.resend_timer:
                return
            self.window = INITIAL_WINDOW_SIZE
            self.rto = INITIAL_RTO
            self.first_rtt_sample = self.first_ack = self.win_dropped = True
            self.drop_delay_seq = 0
            self.last_ack_at = 0
            self.ack_interval = self.ack_delay
        elif gap > self.armed_rto:
            self.single_expiries += 1

    def _on_sample(self, sample: int, next_seq: int, ts: int) -> None:
        if self.first_rtt_sample and not self.first_ack:
            self.rtt = self.min_rtt = self.slow_rtt = self.fast_rtt = sample
            self.prev_sample = sample
            self.jitter = sample // 5 + 3
            self.jitter_accum = int(self.jitter)
            self.jitter_div = 1
            self.first_rtt_sample = False
        else:
            self.rtt = (self.prev_sample + sample) // 2
        if not self.win_dropped:
            self.slow_rtt = SLOWRTT_EWMA_ALPHA * self.rtt + (1 - SLOWRTT_EWMA_ALPHA) * self.slow_rtt
            self.fast_rtt = RTT_EWMA_ALPHA * self.rtt + (1 - RTT_EWMA_ALPHA) * self.fast_rtt
            delta = abs(sample - self.prev_sample)
            if delta:
                self.jitter_accum += delta + 3
                self.jitter = self.jitter_accum // self.jitter_div
                self.jitter_div += 1
            if self.min_rtt > self.rtt:
                self.min_rtt = self.rtt
                self.fast_rtt = self.slow_rtt = self.min_rtt + self.jitter
        if self.slow_rtt > self.min_rtt + self.jitter * 6 and not self.win_dropped:
            self._drop_window(next_seq, ts)
        self.prev_sample = sample
        self.rto = max(MIN_RTO, int(self.rtt * 1.3 + self.jitter + self.ack_interval))

    def _drop_window(self, next_seq: int, ts: int) -> None:
        last = self.window * ((self.min_rtt + self.jitter * 4) / self.fast_rtt)
        self.window = max(MIN_WINDOW_SIZE, last * 0.5)
        self.drop_delay_seq = next_seq + int(self.window)
        self.first_ack = True
        self.win_dropped = True
        self.drops.append((ts, self.window))


@dataclass
class Run:
    estimator: I2pd258Estimator
    acks: int


def paced_run(
    *,
    seconds: float,
    packet_every: int,
    rtt: int,
    ack_every_packets: int | None = None,
    ack_clock: int | None = None,
    stalls: tuple[tuple[int, int], ...] = (),
    lost_ack_every: int | None = None,
    lost_ack_stall: int = 0,
    resend_timer: bool = True,
) -> Run:
    """A sender pacing one packet every ``packet_every`` ms over a path of ``rtt`` ms (half each
    way), the receiver ACKing either every ``ack_every_packets`` packets or once per
    ``ack_clock`` ms while anything is unacknowledged. ``stalls`` are (start, length) ms of the
    ACK path: an ACK leaving during one arrives at its end (a TCP segment waiting for a
    tail-loss probe on a router link holds everything behind it). ``lost_ack_every``: every
    so many ACKs one is lost on the link (a loss rate per message, so fewer ACKs meet fewer
    losses) and stalls the ACK path for ``lost_ack_stall`` ms from when it left."""
    est = I2pd258Estimator(resend_timer=resend_timer)
    stalls_seen = list(stalls)
    sent_at: dict[int, int] = {}
    arrivals: list[tuple[int, int]] = []  # (arrival at sender, ack-through)
    one_way = rtt // 2
    end = int(seconds * 1000)
    seq = 0
    received_through = -1
    acked_through = -1
    pending = 0
    clock_due: int | None = None
    acks = 0

    def ack_path(leave: int) -> int:
        nonlocal acks
        acks += 1
        if lost_ack_every and acks % lost_ack_every == 0:
            stalls_seen.append((leave, lost_ack_stall))
        for start, length in stalls_seen:
            if start <= leave < start + length:
                return start + length + one_way
        return leave + one_way

    for now in range(end):
        if now % packet_every == 0:
            sent_at[seq] = now
            seq += 1
        # packets arriving at the receiver now
        while received_through + 1 < seq and sent_at[received_through + 1] + one_way <= now:
            received_through += 1
            pending += 1
            if ack_every_packets and pending >= ack_every_packets:
                arrivals.append((ack_path(now), received_through))
                pending = 0
            elif ack_clock and clock_due is None:
                clock_due = now + ack_clock
        if clock_due is not None and now >= clock_due:
            arrivals.append((ack_path(now), received_through))
            pending = 0
            clock_due = None
        for _arrival, through in [a for a in arrivals if a[0] == now]:
            newly = {s: sent_at[s] for s in range(acked_through + 1, through + 1)}
            acked_through = max(acked_through, through)
            est.on_ack(now, through, newly, seq)
        arrivals = [a for a in arrivals if a[0] > now]
    return Run(est, acks)
