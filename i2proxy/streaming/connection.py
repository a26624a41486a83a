"""The sans-IO streaming connection (aioquic shape).

The owner feeds packets with :meth:`Connection.receive_packet`, drains
:meth:`Connection.packets_to_send`, arms a timer at :meth:`Connection.get_timer` and calls
:meth:`Connection.handle_timer` when it fires, and pulls :meth:`Connection.next_event` until it
returns None. ``now`` is always a parameter (seconds, any monotonic origin); the core never
reads a clock, never touches a socket, and never raises because of what a peer sent: an invalid
packet is dropped and counted in :attr:`ConnectionStats.invalid_packets`.

Sequence numbers count packets, not bytes. The SYN (and the SYN reply) is sequence 0; every
other data or CLOSE packet takes the next number; plain ACKs are sequence 0 without SYN and are
never acknowledged. See ``docs/STREAMING.md`` for the one-round-trip open ("pre-ACK") and its
safety argument.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from i2proxy.streaming.events import (
    ConnectionClosed,
    ConnectionEstablished,
    ConnectionReset,
    DataReceived,
    Event,
    PongReceived,
    ResetReason,
    StreamEnded,
)
from i2proxy.streaming.i2pd245 import ACK_EVERY_245, FAST_PATH_SRTT, ResendStormHold
from i2proxy.streaming.i2pd258 import paced_ack_interval
from i2proxy.streaming.options import MTU_DEFAULT, StreamingOptions
from i2proxy.streaming.packet import (
    CHOKE_SEND_DELAY_MS,
    CLOSE_BIT,
    ECHO_BIT,
    MAX_NACKS,
    NO_ACK_BIT,
    NO_FLAGS,
    RESET_BIT,
    SIG_TYPE_LENGTHS,
    SIGNED_BITS,
    Flag,
    OfflineSignature,
    Packet,
    PacketError,
    Signer,
    decode,
    encode,
    replay_nacks,
    same_destination,
    syn_addressed_elsewhere,
    verify_signature,
    verify_with_transient_key,
)
from i2proxy.streaming.recovery import MaxResendsExceeded, Recovery

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination
    from i2proxy.streaming.congestion import CongestionControl
    from i2proxy.streaming.rtt import RttEstimator

#: Smallest max-packet-size we accept from a peer (anything lower would be absurd overhead).
MIN_PEER_MPS = 512
#: Largest payload we accept in one packet (i2pd's MAX_PACKET_SIZE; we advertise less).
MAX_PAYLOAD = 4096
#: Out-of-order packets kept beyond the next expected one, in packets.
REORDER_SLACK = 2
#: Packets received before an ACK goes at once instead of after the ACK delay, at least (RFC
#: 5681 4.2: every second full-sized segment), while the sender's window is small.
ACK_EVERY = 2
#: At most this many (an eighth of the 128-packet window of i2pd 2.45 and Java) once the
#: sender's window has grown: each ACK is a garlic message through both routers and the links
#: (one per two packets was ~9 500 messages per 32 MB GET, and with 2 % loss on the links each
#: lone ACK risks a 200 ms head-of-line stall). See :meth:`Connection._ack_every`.
BULK_ACK_EVERY = 16
#: The ACK delay: this fraction of the smoothed RTT (i2pd: RTT/10), in [2 ms, initialAckDelay].
ACK_DELAY_RTT_FRACTION = 0.1
MIN_ACK_DELAY = 0.002
#: Packets that carry our unchoke (DELAY_REQUESTED 0) after resume_receiving() when no data
#: follows, one per RTO (Java repeats its unchoke on 8 packets): a lost unchoke must not leave
#: the peer choked forever.
UNCHOKE_REPEATS = 8


class State(enum.Enum):
    NEW = "new"  # outgoing, SYN not yet sent (connect delay)
    SYN_SENT = "syn-sent"  # outgoing, waiting for the SYN reply
    SYN_RECEIVED = "syn-received"  # incoming, our SYN reply not yet sent
    ESTABLISHED = "established"
    CLOSED = "closed"  # both sides closed, all acknowledged
    RESET = "reset"  # dead


class PacketRejected(Exception):
    """An incoming SYN cannot start a connection (unsigned, bad signature, no FROM)."""


#: A peer's remembered RTT and window are forgotten after this long without a connection:
#: tunnels are rebuilt every 10 minutes, so older figures describe paths that no longer exist
#: (Java's TCBShare expires its entries too).
PROFILE_EXPIRY = 600.0
#: Weight of the remembered value when a finished connection updates it (RFC 2140's and
#: Java's TCBShare dampening, 0.75): one unusual connection moves it by a quarter.
PROFILE_DAMPING = 0.75
#: Largest remembered window a new connection starts with (Java's TCBShare caps at its
#: MAX_SLOW_START_WINDOW, 64): a new stream may get other tunnels than the one that earned it.
MAX_CACHED_WINDOW = 64


@dataclass
class PeerProfile:
    """Control block shared between connections to the same peer (RFC 2140 style)."""

    #: Smoothed RTT of the last connections (damped), seconds.
    srtt: float | None = None
    #: Congestion window at the end of the last connections (damped), packets.
    window: int | None = None
    #: True: the peer's SYN replies carried no data so far (i2pd); False: it bundles data.
    syn_reply_empty: bool | None = None
    #: When srtt/window were last updated (the manager's clock), for expiry.
    updated: float | None = None

    def expire(self, now: float) -> None:
        """Forget the path figures when they are older than :data:`PROFILE_EXPIRY`."""
        if self.updated is not None and now - self.updated > PROFILE_EXPIRY:
            self.srtt = None
            self.window = None
            self.updated = None

    def learn(self, learned: PeerProfile, now: float, *, final: bool) -> None:
        """Fold what a connection measured into the profile, damped. The window only counts
        from a finished connection (at establishment it is still the initial one)."""
        self.expire(now)
        if learned.srtt is not None:
            self.srtt = (
                learned.srtt
                if self.srtt is None
                else PROFILE_DAMPING * self.srtt + (1 - PROFILE_DAMPING) * learned.srtt
            )
            self.updated = now
        if final and learned.window is not None:
            self.window = (
                learned.window
                if self.window is None
                else round(PROFILE_DAMPING * self.window + (1 - PROFILE_DAMPING) * learned.window)
            )
            self.updated = now


@dataclass
class ConnectionStats:
    """Counters of one connection."""

    packets_sent: int = 0
    packets_received: int = 0
    retransmissions: int = 0
    #: Packets dropped because malformed, unsigned where required, or badly signed.
    invalid_packets: int = 0
    #: Packets received more than once.
    duplicates: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    #: The SYN carried application data.
    initial_data_in_syn: bool = False
    #: Application bytes in the SYN.
    syn_payload_bytes: int = 0
    #: The speculative ACK of the peer's SYN reply went out.
    pre_ack_sent: bool = False
    #: Data packets dropped because the receive buffer was full.
    dropped_receive_full: int = 0
    #: Times we choked the peer (the application stopped reading).
    chokes: int = 0
    #: Times ACKs were held across an i2pd 2.45 sender's resend storm (``i2pd245``).
    ack_holds: int = 0
    #: The sender was taken for i2pd 2.45 at its data packet 3 (None: not decided).
    i2pd245_sender: bool | None = None
    #: The peer answered our pre-ACK's request for an immediate ACK (i2pd 2.54+ does).
    ack_request_answered: bool = False


class Connection:
    """One I2P stream, both directions.

    Class attributes below describe behaviours of *other* implementations; the simulation tests
    flip them to model an i2pd 2.45.1 server. Our own defaults are the safe choices.
    """

    #: Count an ACK from a packet whose sender had not yet seen our SYN reply (send stream id 0)
    #: as acknowledging it. i2pd does; we do not, because such an ACK is a guess (pre-ACK).
    trust_speculative_acks: bool = False
    #: Our SYN reply may carry application data (and CLOSE). i2pd's never does.
    syn_reply_carries_data: bool = True

    def __init__(
        self,
        *,
        keys: Signer,
        local_stream_id: int,
        is_client: bool,
        now: float,
        remote_destination: Destination | None = None,
        options: StreamingOptions | None = None,
        profile: PeerProfile | None = None,
    ) -> None:
        if not 0 < local_stream_id <= 0xFFFFFFFF:
            raise ValueError("local stream id must be a nonzero 32-bit integer")
        self.options = (options or StreamingOptions()).validate()
        self.keys = keys
        self.local_stream_id = local_stream_id
        self.remote_stream_id = 0
        self.remote_destination = remote_destination
        self.is_client = is_client
        self.state = State.NEW if is_client else State.SYN_RECEIVED
        self.stats = ConnectionStats()
        self.profile_in = profile or PeerProfile()
        opts = self.options
        window = opts.initial_window_size
        if self.profile_in.window:
            cached = min(self.profile_in.window, MAX_CACHED_WINDOW, opts.max_window_size)
            window = max(window, cached)
        #: Unacknowledged packets, RTT/RTO, retransmissions and the congestion window.
        self.recovery = Recovery(opts, seed_rtt=self.profile_in.srtt, initial_window=window)
        self._events: deque[Event] = deque()
        self._created = now
        # -- sending
        self._send_buf = bytearray()
        self._flush = False
        self._close_requested = False
        self._close_seq: int | None = None
        self._close_acked = False
        self._next_seq = 0
        self._peer_mps = MTU_DEFAULT
        self._peer_choked = False
        self._probe_deadline: float | None = None
        self._pending_control: list[bytes] = []
        # -- receiving
        self._recv_next = 0
        self._ooo: dict[int, Packet] = {}
        self._ooo_bytes = 0
        self._peer_close_seq: int | None = None
        self._ended = False
        self._ack_now = False
        self._ack_deadline: float | None = None
        self._received_since_ack = 0
        #: ``_recv_next`` when the sender last retransmitted (see ``_ack_every``).
        self._ack_ramp_start = 0
        self._storm_hold = ResendStormHold()
        self._paused = False
        self._paused_bytes = 0
        self._choke_announced = False
        #: Unchokes still to repeat until the peer's data flows again (0: none pending).
        self._unchoke_repeats = 0
        self._unchoke_deadline: float | None = None
        self._ack_sent_at = float("-inf")
        self._last_heard = now
        self._keepalive = False
        self._ping_sent_at: float | None = None
        # -- lifecycle
        self._connect_deadline = now + opts.connect_timeout if is_client else None
        self._first_deadline = now + opts.connect_delay
        self._guard_deadline: float | None = None
        self._seq0_skipped = False
        self._linger_deadline: float | None = None
        self._pre_ack_pending = False
        #: Times our SYN was resent (each doubles its timer floor, ``_hold_syn_timer``).
        self._syn_resends = 0
        #: An offline-signed peer's transient key, kept from its SYN / SYN reply: its later
        #: CLOSE and RESET are signed with it but do not carry it.
        self._peer_offline: OfflineSignature | None = None

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def outgoing(
        cls,
        *,
        keys: Signer,
        remote_destination: Destination,
        local_stream_id: int,
        now: float,
        options: StreamingOptions | None = None,
        profile: PeerProfile | None = None,
    ) -> Connection:
        """A connection we open; the SYN leaves on the first ``packets_to_send`` once ready."""
        return cls(
            keys=keys,
            local_stream_id=local_stream_id,
            is_client=True,
            now=now,
            remote_destination=remote_destination,
            options=options,
            profile=profile,
        )

    @classmethod
    def incoming(
        cls,
        syn: Packet,
        *,
        keys: Signer,
        local_stream_id: int,
        now: float,
        options: StreamingOptions | None = None,
        profile: PeerProfile | None = None,
    ) -> Connection:
        """Accept a peer's SYN. Raises :class:`PacketRejected` unless it is a signed SYN with
        FROM whose signature verifies against that FROM."""
        if not syn.is_syn or syn.sequence_num != 0:
            raise PacketRejected("not a SYN with sequence 0")
        if syn.from_destination is None or syn.signature is None:
            raise PacketRejected("SYN without FROM and signature")
        if not verify_signature(syn, syn.from_destination):
            raise PacketRejected("SYN signature does not verify against its FROM")
        if syn.receive_stream_id == 0:
            raise PacketRejected("SYN with receive stream id 0")
        if syn_addressed_elsewhere(syn, keys.destination.hash):
            # Replay protection (0.9.58): eight NACKs spell the hash of the SYN's target. A
            # signed SYN sent to someone else and replayed to us must not open a stream.
            raise PacketRejected("SYN addressed to another destination (replayed)")
        conn = cls(
            keys=keys,
            local_stream_id=local_stream_id,
            is_client=False,
            now=now,
            remote_destination=syn.from_destination,
            options=options,
            profile=profile,
        )
        conn.remote_stream_id = syn.receive_stream_id
        conn._peer_offline = syn.offline_signature
        conn.stats.packets_received += 1
        if not syn.payload and not syn.has(Flag.CLOSE):
            # An empty SYN means the peer waits for our reply before it sends its request (SAM
            # and i2pd clients do, with their window of one): answering late would only delay
            # that request. With a request in the SYN, wait for the application's answer.
            conn._flush = True
        conn._accept_packet(syn, now)
        return conn

    # ------------------------------------------------------------------ application API
    def send(self, data: bytes, *, flush: bool = True) -> None:
        """Queue application bytes. ``flush=False`` lets the first packet wait up to the
        connect delay for more (Java's connectDelay); later packets never wait."""
        if self._close_requested or self.state in (State.RESET, State.CLOSED):
            raise ConnectionError("stream is closed for sending")
        self._send_buf += data
        if flush:
            self._flush = True

    def flush(self) -> None:
        """Let the first packet leave now with what is buffered."""
        self._flush = True

    def close(self) -> None:
        """Send CLOSE after the buffered data (rides on the last data packet when possible).

        Note: i2pd treats CLOSE as a full close and discards what its application has not yet
        written, so do not close before the response has arrived when talking to i2pd.
        """
        if self.state in (State.RESET, State.CLOSED):
            return
        self._close_requested = True
        self._flush = True

    def reset(self, now: float, detail: str = "aborted locally") -> None:
        """Abort: send a signed RESET (when the peer's id is known) and stop."""
        if self.state in (State.RESET, State.CLOSED):
            return
        if self.state is not State.NEW:
            self._queue_reset(now)
        self._die(ResetReason.LOCAL, detail)

    def ping(self, now: float, payload: bytes = b"") -> None:
        """Send a signed ECHO; a :class:`PongReceived` follows if the peer answers."""
        packet = Packet(
            send_stream_id=self.local_stream_id,
            receive_stream_id=0,
            flags=Flag.ECHO,
            from_destination=self.keys.destination,
            payload=payload,
        )
        self._pending_control.append(encode(packet, self.keys))
        self._ping_sent_at = now

    def pause_receiving(self) -> None:
        """The application's buffer is full: choke the peer (DELAY_REQUESTED > 60000)."""
        if not self._paused:
            self.stats.chokes += 1
            self._paused = True
            self._paused_bytes = 0
            self._choke_announced = False
            self._ack_now = True

    def resume_receiving(self) -> None:
        """Unchoke the peer at once, and again until its data flows."""
        if self._paused:
            self._paused = False
            self._ack_now = True
            if self._choke_announced:
                self._unchoke_repeats = UNCHOKE_REPEATS

    @property
    def send_closed(self) -> bool:
        """close() was called: no more application data can be queued."""
        return self._close_requested

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued but not yet put into a packet."""
        return len(self._send_buf)

    @property
    def in_flight(self) -> int:
        """Packets sent and not yet acknowledged."""
        return self.recovery.in_flight

    @property
    def rtt(self) -> RttEstimator:
        """The RTT estimator (owned by :attr:`recovery`)."""
        return self.recovery.rtt

    @property
    def congestion(self) -> CongestionControl:
        """The congestion controller (owned by :attr:`recovery`)."""
        return self.recovery.congestion

    @property
    def is_terminated(self) -> bool:
        return self.state in (State.RESET, State.CLOSED)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def profile(self) -> PeerProfile:
        """What this connection learned about the peer, for the next one."""
        return PeerProfile(
            srtt=self.rtt.srtt if self.rtt.srtt is not None else self.profile_in.srtt,
            window=self.congestion.window,
            syn_reply_empty=self.profile_in.syn_reply_empty,
        )

    # ------------------------------------------------------------------ receiving
    def receive_packet(self, data: bytes | Packet, now: float) -> None:
        """Process one packet from the peer; never raises for peer input."""
        if isinstance(data, Packet):
            packet = data
        else:
            try:
                packet = decode(data, signature_length=self._peer_signature_length())
            except PacketError:
                self.stats.invalid_packets += 1
                return
        if self.state is State.RESET:
            return
        if not self._authentic(packet):
            self.stats.invalid_packets += 1
            return
        self.stats.packets_received += 1
        self._last_heard = now
        if self.state is State.CLOSED:
            # Lingering: note ACKs of our CLOSE, re-acknowledge a retransmitted CLOSE.
            if not packet.has(Flag.NO_ACK) and packet.send_stream_id:
                self._process_ack(packet.ack_through, packet.nacks, now)
            if not packet.is_plain_ack:
                self._ack_now = True
            return
        self._accept_packet(packet, now)

    def _peer_signature_length(self) -> int | None:
        if self._peer_offline is not None:
            return SIG_TYPE_LENGTHS[self._peer_offline.transient_sig_type][1]
        if self.remote_destination is not None:
            return self.remote_destination.signature_length
        return None

    def _authentic(self, packet: Packet) -> bool:
        """Signature and id checks; False means drop and count."""
        bits = int(packet.flags)  # plain int tests: see packet.SYN_BIT
        if bits & ECHO_BIT:
            return True  # pongs are matched by stream id; pings are the manager's business
        if packet.receive_stream_id == 0 and not bits & RESET_BIT:
            return False
        if self.remote_stream_id and packet.receive_stream_id not in (0, self.remote_stream_id):
            return False
        if packet.send_stream_id not in (0, self.local_stream_id):
            return False
        if packet.from_destination is not None and not same_destination(
            packet.from_destination, self.remote_destination
        ):
            return False
        if bits & SIGNED_BITS:
            if packet.signature is None or self.remote_destination is None:
                return False
            if packet.offline_signature is None and self._peer_offline is not None:
                return verify_with_transient_key(packet, self._peer_offline)
            if not verify_signature(packet, self.remote_destination):
                return False
            if packet.offline_signature is not None and packet.is_syn:
                self._peer_offline = packet.offline_signature  # a SYN reply's transient key
        return True

    def _accept_packet(self, packet: Packet, now: float) -> None:
        bits = int(packet.flags)
        if bits & ECHO_BIT:
            if packet.send_stream_id == 0 and self._ping_sent_at is not None:
                self._events.append(PongReceived(now - self._ping_sent_at, packet.payload))
                self._ping_sent_at = None
            return
        if bits & RESET_BIT:
            self._die(ResetReason.PEER_RESET, "peer sent RESET")
            return
        if not self.remote_stream_id and packet.receive_stream_id:
            self.remote_stream_id = packet.receive_stream_id
        if packet.max_packet_size is not None:
            self._peer_mps = max(MIN_PEER_MPS, packet.max_packet_size)
        was_choked = self._peer_choked
        self._peer_choked = packet.choke
        if self._peer_choked and not was_choked:
            self._probe_deadline = now + self.rtt.rto
        if not bits & NO_ACK_BIT and (packet.send_stream_id != 0 or self.trust_speculative_acks):
            self._process_ack(packet.ack_through, packet.nacks, now)
        if self.state is State.RESET:
            return
        if packet.is_plain_ack:
            if self._answers_ack_request(packet):
                self.stats.ack_request_answered = True
                self._storm_hold.on_ack_request_answered()
            self._maybe_finish(now)
            return
        self._process_sequenced(packet, now)
        self._maybe_finish(now)

    def _answers_ack_request(self, packet: Packet) -> bool:
        """A plain ACK of our SYN alone while the SYN, sent once, is all we sent: only an
        answer to our pre-ACK's DELAY_REQUESTED 0. i2pd 2.54+ answers it at once
        (``ProcessOptions`` → ``SendQuickAck``); 2.45.1 never reads a plain ACK's options and
        sends plain ACKs only for our data packets and for duplicates, which this excludes."""
        return (
            self.is_client
            and self.stats.pre_ack_sent
            and self._syn_resends == 0
            and self._next_seq == 1
            and packet.send_stream_id != 0
            and packet.ack_through == 0
            and not packet.nacks
        )

    def _process_ack(self, ack_through: int, nacks: tuple[int, ...], now: float) -> None:
        if ack_through >= self._next_seq:
            return  # acknowledges something we never sent: ignore (i2pd does the same)
        result = self.recovery.on_ack_received(ack_through, nacks, now)
        if self._close_seq is not None and any(
            sent.seq == self._close_seq for sent in result.acked
        ):
            self._close_acked = True

    def _process_sequenced(self, packet: Packet, now: float) -> None:
        seq = packet.sequence_num
        if packet.is_syn and self.is_client and not self._on_syn_reply(packet, now):
            return
        if seq < self._recv_next or seq in self._ooo:
            # The peer resent: our ACK may have been lost. Answer soon, but not once per
            # duplicate (an RTO on the peer's side resends a whole window at once).
            self.stats.duplicates += 1
            self._ack_ramp_start = self._recv_next  # the sender retransmitted: its window shrank
            if self._storm_hold.on_duplicate(seq, now):
                self.stats.ack_holds = self._storm_hold.holds
                return  # an i2pd 2.45 sender's timer fired: ACK after its next expiry
            self._ack_soon(now)
            if self.state is State.SYN_RECEIVED and packet.is_syn:
                self._flush = True  # the peer is waiting for our SYN reply: send it now
            return
        if seq <= 3 and self.is_client:
            if seq == 3:
                self._storm_hold.on_third_packet(
                    now, i2pd=self.profile_in.syn_reply_empty is True, rtt=self.rtt.latest
                )
                self.stats.i2pd245_sender = self._storm_hold.applies
            else:
                self._storm_hold.on_first_flight(seq, now)
        if seq - self._recv_next > self.options.max_window_size * REORDER_SLACK:
            self.stats.invalid_packets += 1  # far outside any window we could have offered
            return
        if len(packet.payload) > MAX_PAYLOAD:
            self.stats.invalid_packets += 1  # larger than any implementation sends
            return
        if self._paused and packet.payload:
            if self._paused_bytes + len(packet.payload) > self.options.receive_buffer:
                self.stats.dropped_receive_full += 1
                self._ack_now = True
                return
            self._paused_bytes += len(packet.payload)
        if seq != self._recv_next:
            if self._ooo_bytes + len(packet.payload) > self.options.receive_buffer:
                self.stats.dropped_receive_full += 1  # the peer resends it later
                self._ack_now = True
                return
            new_gap = seq > self._highest_received() + 1
            self._ooo[seq] = packet
            self._ooo_bytes += len(packet.payload)
            self._received_since_ack += 1
            if new_gap or self._received_since_ack >= self._ack_every():
                self._ack_now = True  # NACK a new hole at once (RFC 5681 4.2)
            else:
                self._ack_later(now)  # the hole is already reported; ACK on the usual clock
            if (
                self.is_client
                and self._recv_next == 0
                and self.stats.pre_ack_sent
                and self._guard_deadline is None
            ):
                # The peer is past its SYN reply, which we have not seen, and our pre-ACK told
                # it that we had. Wait a little for a reordered or resent SYN reply, then decide.
                if self.profile_in.syn_reply_empty:
                    # ... unless this peer's SYN replies never carried data (i2pd): then the
                    # lost one held nothing and waiting cannot bring anything back (a router
                    # dropping messages under load made every such request wait the guard).
                    self._on_guard_expired(now)
                    return
                guard = max(self.options.pre_ack_guard, 3 * (self.rtt.srtt or 0.0))
                self._guard_deadline = now + guard
            return
        filled_hole = bool(self._ooo)
        if filled_hole:
            self._ack_ramp_start = self._recv_next  # a resend (or a late packet) filled it
        self._deliver(packet)
        while self._recv_next in self._ooo:
            self._deliver(self._pop_ooo(self._recv_next))
        if packet.payload and not self._paused:
            self._unchoke_repeats = 0  # data flows: the unchoke arrived
            self._unchoke_deadline = None
        if self._peer_ended_with_our_close():
            # Nobody is left to read an ACK (see the method); a resent CLOSE is acknowledged
            # on the duplicate path above.
            self._received_since_ack = 0
            self._ack_now = False
            self._ack_deadline = None
            return
        self._received_since_ack += 1
        if (
            self._paced_i2pd_sender()
            and not filled_hole
            and self._peer_close_seq is None
            and packet.delay_requested != 0
        ):
            # the ACK clock, not the ratio (i2pd258)
            if self._ack_deadline is None:
                self._ack_deadline = now + paced_ack_interval(self.rtt.srtt)
        elif (
            self._received_since_ack >= self._ack_every()
            or self._peer_close_seq is not None
            or packet.delay_requested == 0  # the sender asks for an immediate ACK (Java)
            or filled_hole  # tell the sender at once that its retransmission arrived
        ):
            self._ack_now = True
        else:
            self._ack_later(now)

    def _peer_ended_with_our_close(self) -> bool:
        """The peer's CLOSE answered ours (our CLOSE is acknowledged) and the peer is i2pd (its
        SYN replies are always empty): i2pd answers a CLOSE with its own and forgets the stream
        at once (``Stream::ProcessPacket``, 2.45.1 and 2.58), so an ACK of that CLOSE reaches a
        stream that no longer exists — i2pd logs "Unknown stream" for it, once per request
        through the HTTP proxy, which closes as soon as the body is complete. Skipping it
        saves one of about eight garlic messages per short request. A peer that does wait for
        the ACK resends its CLOSE, and that duplicate is acknowledged."""
        return (
            self.is_client
            and self._peer_close_seq is not None
            and self._close_acked
            and self.profile_in.syn_reply_empty is True
        )

    def _ack_every(self) -> int:
        """Packets that make an ACK leave at once: an eighth of the sender's window (a quarter
        for an i2pd 2.45 sender on a fast path, see ``i2pd245.ACK_EVERY_245``), which we
        estimate as ``sqrt(2 P)`` for P packets received in order since the stream began or
        the sender last retransmitted — how far a window that grows by one per round trip has
        come (i2pd 2.45.1: one per RTT after six; Reno: one per window). An ACK that covers all
        the sender has in flight empties it: i2pd 2.45.1 then re-arms its retransmission
        timer at 1.5 x its frozen mean RTT, and a window smaller than the ACK ratio stalls
        waiting for the ACK delay — so the ratio must stay well below the window (Linux's
        quick-ACK mode after the start and after loss has the same shape)."""
        window = math.isqrt(2 * max(0, self._recv_next - self._ack_ramp_start))
        if self._storm_hold.applies and self._fast_path():
            return max(ACK_EVERY, min(ACK_EVERY_245, window >> 2))  # see i2pd245.ACK_EVERY_245
        return max(ACK_EVERY, min(BULK_ACK_EVERY, window >> 3))

    def _fast_path(self) -> bool:
        """Our SRTT is below ``i2pd245.FAST_PATH_SRTT`` (0 ms links on the test network)."""
        return (self.rtt.srtt or 0.0) < FAST_PATH_SRTT

    def _ack_delay(self) -> float:
        """How long an ACK may wait for more packets: a tenth of the RTT (as i2pd), so the
        peer's RTO (i2pd: 1.5 x its average RTT) never fires because we were slow."""
        delay = self.options.initial_ack_delay
        if self.rtt.srtt is not None:
            delay = min(delay, max(MIN_ACK_DELAY, self.rtt.srtt * ACK_DELAY_RTT_FRACTION))
        return delay

    def _paced_i2pd_sender(self) -> bool:
        """The peer is i2pd (empty SYN replies) of the paced generation (2.54+): i2pd258."""
        return self.profile_in.syn_reply_empty is True and self._storm_hold.applies is False

    def _ack_later(self, now: float) -> None:
        if self._ack_deadline is None:
            self._ack_deadline = now + self._ack_delay()

    def _ack_soon(self, now: float) -> None:
        """ACK now unless one left less than the ACK delay ago (then at that delay)."""
        due = self._ack_sent_at + self._ack_delay()
        if now >= due:
            self._ack_now = True
        elif self._ack_deadline is None or due < self._ack_deadline:
            self._ack_deadline = due

    def _highest_received(self) -> int:
        return max(self._ooo) if self._ooo else self._recv_next - 1

    def _on_syn_reply(self, packet: Packet, now: float) -> bool:
        """Handle the peer's SYN reply; False when the packet must go no further."""
        if packet.sequence_num != 0:
            self.stats.invalid_packets += 1
            return False
        empty = not packet.payload and not packet.has(Flag.CLOSE)
        if self._seq0_skipped and not empty:
            self._queue_reset(now)
            self._die(
                ResetReason.PRE_ACK_DATA_LOST,
                "the SYN reply we assumed empty arrived late carrying data",
            )
            return False
        if self.profile_in.syn_reply_empty is not False:
            self.profile_in.syn_reply_empty = empty
        self._establish()
        return True

    def _establish(self) -> None:
        if self.state in (State.NEW, State.SYN_SENT, State.SYN_RECEIVED):
            self.state = State.ESTABLISHED
            self._connect_deadline = None
            self._guard_deadline = None
            self._events.append(ConnectionEstablished(self.remote_stream_id))

    def _pop_ooo(self, seq: int) -> Packet:
        packet = self._ooo.pop(seq)
        self._ooo_bytes -= len(packet.payload)
        return packet

    def _deliver(self, packet: Packet) -> None:
        self._recv_next = packet.sequence_num + 1
        if self._peer_close_seq is not None:
            if packet.payload:
                self._die(ResetReason.PROTOCOL_ERROR, "data after the peer's CLOSE")
            return
        if packet.payload:
            self.stats.bytes_received += len(packet.payload)
            self._events.append(DataReceived(packet.payload))
        if int(packet.flags) & CLOSE_BIT:
            self._peer_close_seq = packet.sequence_num
            self._ended = True
            self._events.append(StreamEnded())

    # ------------------------------------------------------------------ timers
    def get_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` has work, or None."""
        if self.state is State.RESET:
            return None
        if self.state is State.CLOSED:
            closing = [d for d in (self._linger_deadline, self.recovery.rto_deadline) if d]
            return min(closing) if closing else None
        # The manager asks after every packet: no list, no min() over a list.
        when = self.recovery.get_timer()
        for deadline in (
            self._connect_deadline,
            self._ack_deadline,
            self._unchoke_deadline,
            self._guard_deadline,
            self._linger_deadline,
            self._storm_hold.until,
        ):
            if deadline is not None and (when is None or deadline < when):
                when = deadline
        extra: float | None = None
        if self.state is State.ESTABLISHED:
            if self.options.inactivity_action != "noop":
                extra = self._last_heard + self.options.inactivity_timeout
        elif self.state in (State.NEW, State.SYN_RECEIVED) and not self._ready_for_first():
            extra = self._first_deadline
        if extra is not None and (when is None or extra < when):
            when = extra
        if self._peer_choked and not self.recovery.in_flight:
            probe = self._probe_deadline
            if probe is not None and (when is None or probe < when):
                when = probe
        return when

    def handle_timer(self, now: float) -> None:
        """Run every deadline that has passed."""
        if self.state is State.RESET:
            return
        if self.state is State.CLOSED:
            rto_deadline = self.recovery.rto_deadline
            if self._linger_deadline is not None and now >= self._linger_deadline:
                self._linger_deadline = None
                self.recovery.clear()
                self._events.append(ConnectionClosed())
            elif rto_deadline is not None and now >= rto_deadline:
                self.recovery.on_closing_timeout(now)  # only our CLOSE is left
            return
        if self._connect_deadline is not None and now >= self._connect_deadline:
            self._die(ResetReason.CONNECT_TIMEOUT, "no answer to the SYN")
            return
        if self._guard_deadline is not None and now >= self._guard_deadline:
            self._guard_deadline = None
            self._on_guard_expired(now)
            if self.state is State.RESET:
                return
        recovery_deadline = self.recovery.get_timer()
        if recovery_deadline is not None and now >= recovery_deadline:
            try:
                self.recovery.handle_timer(now)
            except MaxResendsExceeded as exc:
                self._queue_reset(now)
                self._die(ResetReason.MAX_RESENDS, str(exc))
                return
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self._ack_deadline = None
            self._ack_now = True
        if self._storm_hold.until is not None and now >= self._storm_hold.until:
            self._storm_hold.release(self._highest_received())
            self._ack_now = True  # the sender's second expiry did not come: ACK anyway
        if self._unchoke_deadline is not None and now >= self._unchoke_deadline:
            self._unchoke_deadline = None
            if self._unchoke_repeats and not self._paused:
                self._unchoke_repeats -= 1
                self._ack_now = True  # nothing came since the last unchoke: say it again
        if (
            self.options.inactivity_action != "noop"
            and self.state is State.ESTABLISHED
            and now >= self._last_heard + self.options.inactivity_timeout
        ):
            self._on_inactivity(now)

    def _on_guard_expired(self, now: float) -> None:
        if self._recv_next != 0:
            return  # the SYN reply arrived after all
        if self.profile_in.syn_reply_empty:
            # This peer's SYN replies never carried data (i2pd): the lost one held nothing,
            # and the peer will not resend it because our pre-ACK acknowledged it.
            self._seq0_skipped = True
            self._recv_next = 1
            self._establish()
            while self._recv_next in self._ooo:
                self._deliver(self._pop_ooo(self._recv_next))
            self._ack_now = True
            return
        self._queue_reset(now)
        self._die(
            ResetReason.PRE_ACK_DATA_LOST,
            "the peer's SYN reply was lost after our pre-ACK and was never resent; "
            "its payload, if any, cannot be recovered",
        )

    def _on_inactivity(self, now: float) -> None:
        if self.options.inactivity_action == "disconnect":
            self._queue_reset(now)
            self._die(ResetReason.INACTIVITY, "nothing heard from the peer")
            return
        # "send": an empty *sequenced* packet, which every implementation must ACK (i2pd does
        # not answer pings by default). If the peer is gone, it is retransmitted until
        # max_resends and the connection resets; if not, its ACK proves the peer alive.
        self._last_heard = now
        if not self.recovery.in_flight:
            self._keepalive = True

    # ------------------------------------------------------------------ sending
    def _ready_for_first(self) -> bool:
        return self._flush or self._close_requested or len(self._send_buf) >= self._payload_limit()

    def _payload_limit(self) -> int:
        return max(1, min(self.options.max_message_size, self._peer_mps))

    def _ack_fields(self) -> tuple[int, tuple[int, ...], bool]:
        """(ack through, NACKs, NO_ACK) describing everything received so far."""
        highest = max(self._ooo) if self._ooo else self._recv_next - 1
        if highest < 0:
            return 0, (), True
        nacks = [s for s in range(self._recv_next, highest) if s not in self._ooo]
        if len(nacks) > MAX_NACKS:
            nacks = nacks[:MAX_NACKS]
            highest = nacks[-1]
            nacks = nacks[:-1]
        return highest, tuple(nacks), False

    def _delay_option(self, now: float) -> int | None:
        if self._paused:
            self._choke_announced = True
            return CHOKE_SEND_DELAY_MS
        if self._choke_announced or self._unchoke_repeats:
            self._choke_announced = False
            self._unchoke_deadline = now + self.rtt.rto
            return 0  # until the peer's data flows again
        return None

    def _build(self, seq: int, payload: bytes, control: Flag, now: float) -> bytes:
        ack_through, nacks, no_ack = self._ack_fields()
        # Data packets carry no control flag: skip the (slow) IntFlag arithmetic for them.
        syn = bool(control) and bool(control & Flag.SYNCHRONIZE)
        signed = bool(int(control) & SIGNED_BITS)  # we sign these and verify them on receipt
        if syn and self.is_client and no_ack:
            nacks = self._replay_nacks()
        flags = control
        if no_ack:
            flags |= Flag.NO_ACK
        packet = Packet(
            send_stream_id=self.remote_stream_id,
            receive_stream_id=self.local_stream_id,
            sequence_num=seq,
            ack_through=ack_through,
            nacks=nacks,
            resend_delay=min(255, int(self.rtt.rto)),
            flags=flags,
            delay_requested=self._delay_option(now),
            payload=payload,
        )
        signer = None
        if syn:
            packet.from_destination = self.keys.destination
            packet.max_packet_size = self.options.max_message_size
        if signed:
            signer = self.keys
        if not no_ack:
            self._clear_ack_state(now)
        return encode(packet, signer)

    def _replay_nacks(self) -> tuple[int, ...]:
        """Our SYN's NACK field names its target (replay protection, spec 0.9.58)."""
        if self.remote_destination is None:
            return ()
        return replay_nacks(self.remote_destination.hash)

    def _clear_ack_state(self, now: float) -> None:
        self._ack_now = False
        self._ack_deadline = None
        self._received_since_ack = 0
        self._ack_sent_at = now

    def _queue_reset(self, now: float) -> None:
        ack_through, nacks, no_ack = self._ack_fields()
        packet = Packet(
            send_stream_id=self.remote_stream_id,
            receive_stream_id=self.local_stream_id,
            sequence_num=self._next_seq,
            ack_through=ack_through,
            nacks=nacks,
            flags=Flag.RESET | (Flag.NO_ACK if no_ack else Flag(0)),
        )
        self._pending_control.append(encode(packet, self.keys))

    def _die(self, reason: ResetReason, detail: str) -> None:
        if self.state is State.RESET:
            return
        self.state = State.RESET
        self.recovery.clear()
        self._send_buf.clear()
        self._events.append(ConnectionReset(reason, detail))

    def packets_to_send(self, now: float) -> list[bytes]:
        """Every packet that should leave now, already encoded (and signed where required)."""
        if (
            self.state is State.ESTABLISHED
            and not self._ack_now
            and not self._send_buf
            and not self._pending_control
            and not self._close_requested
            and not self._keepalive
            and not self._pre_ack_pending
            and not self._ended
            and not self.recovery.resends_pending
        ):
            # Nothing to send and no state to move: the common case on a bulk receive, where
            # the manager asks after every packet and an ACK is due only every second one.
            return []
        out: list[bytes] = self._pending_control
        self._pending_control = []
        if self.state is State.RESET:
            self._count(out)
            return out
        if self.state is State.CLOSED:
            out.extend(self._resends(now))
            if self._ack_now:
                out.append(self._plain_ack(now))
            self._count(out)
            return out

        if self.state is State.NEW:
            if not (self._ready_for_first() or now >= self._first_deadline):
                self._count(out)
                return out
            out.append(self._send_first(now))
            self.state = State.SYN_SENT
            self._hold_syn_timer(now, 0)
            if self.options.pre_ack and self.profile_in.syn_reply_empty is not False:
                self._pre_ack_pending = True
        elif self.state is State.SYN_RECEIVED:
            if not (self._ready_for_first() or now >= self._first_deadline):
                if self._ack_now and self._recv_next:
                    self._ack_now = False  # our SYN reply will carry the ACK shortly
                self._count(out)
                return out
            out.append(self._send_first(now))
            self._establish()

        if self._pre_ack_pending:
            self._pre_ack_pending = False
            out.append(self._pre_ack())

        out.extend(self._resends(now))

        out.extend(self._send_new_data(now))
        if (
            self._ack_now
            and self._ack_fields()[2] is False
            and self.remote_stream_id
            and not self._storm_hold.holding(
                now, self._highest_received(), fast_path=self._fast_path()
            )
        ):
            out.append(self._plain_ack(now))
        self._maybe_finish(now)  # our CLOSE may just have answered the peer's
        self._count(out)
        return out

    def _resends(self, now: float) -> list[bytes]:
        out = []
        for sent in self.recovery.take_resends(now):
            self.stats.retransmissions += 1
            out.append(self._build(sent.seq, sent.payload, sent.control, now))
            if sent.control & Flag.SYNCHRONIZE and self.is_client:
                self._syn_resends += 1
                self._hold_syn_timer(now, self._syn_resends)
                if self.stats.pre_ack_sent:
                    out.append(self._pre_ack())  # the pre-ACK rides with every SYN resend
        return out

    def _hold_syn_timer(self, now: float, resends: int) -> None:
        """Our SYN is resent no sooner than ``initial_rto`` after it left, doubling with each
        resend, whatever RTT earlier connections to this peer measured: its answer waits for
        the peer to look up our LeaseSet and accept, and for every SYN queued before it in
        both routers, which no data packet pays. Seeded with a 20 ms shared RTT (0.1 s RTO),
        1000 simultaneous SYNs each went out six times in six seconds and the retransmissions
        alone kept both routers' queues full."""
        floor = min(self.options.max_rto, self.options.initial_rto * 2**resends)
        self.recovery.hold_rto(now + floor)

    def _count(self, out: list[bytes]) -> None:
        self.stats.packets_sent += len(out)

    def _send_first(self, now: float) -> bytes:
        """The SYN (outgoing) or the SYN reply (incoming), with as much data as fits."""
        limit = self._payload_limit()
        if self.is_client:
            limit = min(limit, MTU_DEFAULT)  # the peer's limit is unknown until it answers
        if not self.is_client and not self.syn_reply_carries_data:
            payload = b""
        else:
            payload = bytes(self._send_buf[:limit])
            del self._send_buf[:limit]
        control = Flag.SYNCHRONIZE
        carries = self.is_client or self.syn_reply_carries_data
        if self._close_requested and not self._send_buf and carries:
            control |= Flag.CLOSE
            self._close_seq = 0
        if self.is_client and payload:
            self.stats.initial_data_in_syn = True
            self.stats.syn_payload_bytes = len(payload)
        self._next_seq = 1
        self._track(0, payload, control, now)
        return self._build(0, payload, control, now)

    def _pre_ack(self) -> bytes:
        """Plain ACK of the peer's not-yet-seen SYN reply (send stream id 0, ack through 0).

        It asks for an immediate ACK (DELAY_REQUESTED 0): i2pd 2.54+ answers, 2.45.1 does not,
        which tells the two senders apart without timing (``_answers_ack_request``)."""
        self.stats.pre_ack_sent = True
        return encode(
            Packet(
                send_stream_id=0,
                receive_stream_id=self.local_stream_id,
                ack_through=0,
                delay_requested=0,
            )
        )

    def _plain_ack(self, now: float) -> bytes:
        ack_through, nacks, _ = self._ack_fields()
        leave_last = self._storm_hold.take_leave_last() and not nacks and ack_through > 1
        if leave_last:
            ack_through -= 1  # see ResendStormHold.release
        self._storm_hold.on_ack_sent(ack_through, now)
        packet = Packet(
            send_stream_id=self.remote_stream_id,
            receive_stream_id=self.local_stream_id,
            sequence_num=0,
            ack_through=ack_through,
            nacks=nacks,
            delay_requested=self._delay_option(now),
        )
        self._clear_ack_state(now)
        if leave_last:
            self._ack_later(now)  # the newest packet's ACK follows after the ACK delay
        return encode(packet)

    def _track(self, seq: int, payload: bytes, control: Flag, now: float) -> None:
        self.recovery.on_packet_sent(seq, payload, control, now)
        self.stats.bytes_sent += len(payload)

    def _send_new_data(self, now: float) -> list[bytes]:
        out: list[bytes] = []
        if self.state not in (State.SYN_SENT, State.ESTABLISHED):
            return out
        limit = self._payload_limit()
        while self._send_buf or (self._close_requested and self._close_seq is None):
            if not self._send_buf and self.recovery.in_flight:
                # CLOSE waits until every earlier packet is acknowledged (as i2pd does itself):
                # i2pd treats CLOSE as the end of the stream, and its SAM bridge then hands its
                # client at most one more 8 KiB buffer of what it had queued (2.45.1,
                # SAMSocket::I2PReceive), so a CLOSE right behind a burst truncates the data.
                break
            room = 1 if self.recovery.can_send(self._next_seq, now) else 0
            if self._peer_choked:
                probe_due = (
                    not self.recovery.in_flight
                    and self._probe_deadline is not None
                    and now >= self._probe_deadline
                )
                if not probe_due:
                    break
                self._probe_deadline = now + self.rtt.rto
                room = 1
            if room <= 0:
                break
            payload = bytes(self._send_buf[:limit])
            del self._send_buf[:limit]
            control = NO_FLAGS
            if self._close_requested and not payload:
                control = Flag.CLOSE  # alone, after everything else was acknowledged
                self._close_seq = self._next_seq
            seq = self._next_seq
            self._next_seq += 1
            self._track(seq, payload, control, now)
            out.append(self._build(seq, payload, control, now))
            if self._peer_choked:
                break
        if self._keepalive and not self.recovery.in_flight and self.state is State.ESTABLISHED:
            self._keepalive = False
            seq = self._next_seq
            self._next_seq += 1
            self._track(seq, b"", NO_FLAGS, now)
            out.append(self._build(seq, b"", NO_FLAGS, now))
        return out

    def _maybe_finish(self, now: float) -> None:
        """Both sides closed and everything acknowledged: linger briefly, then forget."""
        if self.state is not State.ESTABLISHED or not self._ended or self._linger_deadline:
            return
        # Our CLOSE answering the peer's CLOSE need not be acknowledged: i2pd terminates the
        # stream as soon as its own CLOSE is acknowledged and never ACKs ours. Only an empty
        # CLOSE qualifies; one carrying data waits for its ACK like any data.
        # It is still resent during the linger, in case the peer does want it.
        sent = self.recovery.sent
        close_only = (
            self._close_seq is not None
            and list(sent) == [self._close_seq]
            and not sent[self._close_seq].payload
        )
        if (self._close_acked and not sent) or close_only:
            self.state = State.CLOSED
            self._ack_now = self._ack_now or self._received_since_ack > 0
            self._linger_deadline = now + min(2 * self.rtt.rto, 10.0)
