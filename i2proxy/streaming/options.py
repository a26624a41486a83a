"""Streaming options, named after Java I2P / i2pd (``i2p.streaming.*``) where those exist.

Every option is documented with its default and the reason for it in ``docs/STREAMING.md``.
Times are seconds inside the code (the core's clock unit); the property names keep Java's
units (milliseconds) so a Java/i2pd configuration can be passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from i2proxy.streaming.congestion import ALGORITHMS

#: Largest payload per packet when the peer's ratchet (ECIES-X25519) session is in use.
MTU_RATCHETS = 1812
#: Largest payload per packet for ElGamal sessions, and what we assume until the peer tells us.
MTU_DEFAULT = 1730


class OptionError(ValueError):
    """An option has an unknown name or a value out of range."""


@dataclass(frozen=True, slots=True)
class StreamingOptions:
    """Tunables of one streaming connection (and the manager's defaults)."""

    #: How long the first packet (SYN or SYN reply) waits for application data to ride in it.
    connect_delay: float = 0.2
    #: Give up on an outgoing connection when no answer to the SYN came within this time.
    connect_timeout: float = 60.0
    #: Retransmission timeout before any RTT sample (RFC 6298 says 1 s; I2P tunnels are slower;
    #: Java and i2pd use 9 s, which makes a lost first SYN cost 9 s).
    initial_rto: float = 3.0
    #: Lower bound of the retransmission timeout (Java's MIN_RESEND_DELAY).
    min_rto: float = 0.1
    #: Upper bound of the retransmission timeout, also after backoff (Java's MAX_RESEND_DELAY).
    max_rto: float = 45.0
    #: Congestion window at the start, in packets (Java's initialWindowSize).
    initial_window_size: int = 6
    #: Congestion window cap, in packets; also the largest receive window we accept.
    max_window_size: int = 128
    #: Congestion controller by name (``congestion.ALGORITHMS``): "reno" or "cubic".
    congestion: str = "reno"
    #: Spread new packets over the RTT (token bucket) instead of sending a window at once.
    pacing: bool = True
    #: Retransmissions of one packet before the connection is reset.
    max_resends: int = 8
    #: Largest payload we accept per packet; advertised in our SYN (MAX_PACKET_SIZE_INCLUDED).
    max_message_size: int = MTU_RATCHETS
    #: Delay before a standalone ACK when no data goes back to carry it.
    initial_ack_delay: float = 0.2
    #: Idle time (nothing received) before the inactivity action.
    inactivity_timeout: float = 90.0
    #: "noop", "disconnect" (reset) or "send" (an empty sequenced packet the peer must ACK).
    inactivity_action: str = "send"
    #: Answer ECHO pings from other destinations. Off by default, as i2pd does for client
    #: destinations: a pong tells anyone who knows our destination that we are online now.
    answer_pings: bool = False
    #: Received-but-unread bytes above which we choke the peer (DELAY_REQUESTED > 60000).
    receive_buffer: int = 1024 * 1024
    #: Unsent bytes above which the writer is paused (StreamWriter.drain waits).
    send_buffer: int = 256 * 1024
    #: Send the speculative "pre-ACK" right after our SYN (one round trip against i2pd).
    pre_ack: bool = True
    #: How long a connection waits for a missing SYN reply after a pre-ACK before deciding:
    #: longer than Java's initial RTO (9 s), so a peer that did not count the pre-ACK resends it.
    pre_ack_guard: float = 10.0
    #: Open streams per destination (manager-wide); beyond it new ones are refused at once with
    #: ``StreamLimitReached`` and a rate-limited warning. Each costs 4-19 KB when idle.
    max_streams: int = 4096

    def with_overrides(self, **changes: Any) -> StreamingOptions:
        return replace(self, **changes)

    def validate(self) -> StreamingOptions:
        if self.inactivity_action not in ("noop", "disconnect", "send"):
            raise OptionError(f"inactivity_action={self.inactivity_action!r}")
        if not 1 <= self.initial_window_size <= self.max_window_size <= 1024:
            raise OptionError("need 1 <= initial_window_size <= max_window_size <= 1024")
        if not 512 <= self.max_message_size <= 4096:
            raise OptionError(f"max_message_size={self.max_message_size} not in 512..4096")
        if not 0 < self.min_rto <= self.initial_rto <= self.max_rto:
            raise OptionError("need 0 < min_rto <= initial_rto <= max_rto")
        if self.congestion.lower() not in ALGORITHMS:
            raise OptionError(
                f"congestion={self.congestion!r}: not one of {', '.join(sorted(ALGORITHMS))}"
            )
        if self.max_streams < 1:
            raise OptionError("max_streams must be at least 1")
        if self.max_resends < 1:
            raise OptionError("max_resends must be at least 1")
        for name in ("connect_delay", "connect_timeout", "initial_ack_delay", "pre_ack_guard"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must not be negative")
        return self

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> StreamingOptions:
        """Build options from Java-style properties; unknown ``i2p.streaming.*`` names raise."""
        values: dict[str, Any] = {}
        for key, raw in properties.items():
            spec = PROPERTY_NAMES.get(key)
            if spec is None:
                if key.startswith(("i2p.streaming.", "i2proxy.streaming.")):
                    raise OptionError(f"unknown streaming option {key!r}")
                continue  # I2CP/tunnel options pass through other layers
            attr, kind = spec
            try:
                if kind == "ms":
                    values[attr] = int(raw) / 1000.0
                elif kind == "int":
                    values[attr] = int(raw)
                elif kind == "bool":
                    values[attr] = str(raw).lower() in ("1", "true", "yes")
                elif kind == "action":
                    values[attr] = _ACTIONS.get(str(raw), str(raw))
                else:
                    values[attr] = raw
            except ValueError as exc:
                raise OptionError(f"{key}={raw!r}: {exc}") from exc
        return cls(**values).validate()


_ACTIONS = {"0": "noop", "1": "disconnect", "2": "send"}

#: Property name → (attribute, unit). Java/i2pd names where they exist, ``i2proxy.`` otherwise.
PROPERTY_NAMES: dict[str, tuple[str, str]] = {
    "i2p.streaming.connectDelay": ("connect_delay", "ms"),
    "i2p.streaming.connectTimeout": ("connect_timeout", "ms"),
    "i2p.streaming.initialRTO": ("initial_rto", "ms"),
    "i2proxy.streaming.minRTO": ("min_rto", "ms"),
    "i2proxy.streaming.maxRTO": ("max_rto", "ms"),
    "i2p.streaming.initialWindowSize": ("initial_window_size", "int"),
    "i2p.streaming.maxWindowSize": ("max_window_size", "int"),
    "i2p.streaming.maxResends": ("max_resends", "int"),
    "i2p.streaming.congestion": ("congestion", "str"),
    "i2p.streaming.maxMessageSize": ("max_message_size", "int"),
    "i2p.streaming.initialAckDelay": ("initial_ack_delay", "ms"),
    "i2p.streaming.inactivityTimeout": ("inactivity_timeout", "ms"),
    "i2p.streaming.inactivityAction": ("inactivity_action", "action"),
    "i2p.streaming.answerPings": ("answer_pings", "bool"),
    "i2proxy.streaming.receiveBuffer": ("receive_buffer", "int"),
    "i2proxy.streaming.sendBuffer": ("send_buffer", "int"),
    "i2proxy.streaming.preAck": ("pre_ack", "bool"),
    "i2proxy.streaming.pacing": ("pacing", "bool"),
    "i2proxy.streaming.preAckGuard": ("pre_ack_guard", "ms"),
    "i2proxy.streaming.maxStreams": ("max_streams", "int"),
}

assert {a for a, _ in PROPERTY_NAMES.values()} == {f.name for f in fields(StreamingOptions)}
