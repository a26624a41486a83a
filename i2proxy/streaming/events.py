"""Events a :class:`~i2proxy.streaming.connection.Connection` hands to its owner."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ResetReason(Enum):
    """Why a connection ended abnormally."""

    #: The peer sent a (valid, signed) RESET.
    PEER_RESET = "peer-reset"
    #: No answer to our SYN within the connect timeout.
    CONNECT_TIMEOUT = "connect-timeout"
    #: A packet was retransmitted max_resends times without an ACK.
    MAX_RESENDS = "max-resends"
    #: Nothing heard from the peer for the inactivity timeout (after pings).
    INACTIVITY = "inactivity"
    #: Our pre-ACK covered a SYN reply that never arrived, and it may have carried data.
    PRE_ACK_DATA_LOST = "pre-ack-data-lost"
    #: The local application aborted the connection.
    LOCAL = "local"
    #: The peer broke the protocol in a way that cannot be recovered (e.g. data after CLOSE).
    PROTOCOL_ERROR = "protocol-error"
    #: The router cannot deliver our SYN: a hard MessageStatus, or no LeaseSet on the network.
    UNDELIVERABLE = "undeliverable"


class Event:
    """Base class of connection events."""


@dataclass(frozen=True)
class ConnectionEstablished(Event):
    """Both stream ids are known: the SYN reply arrived (outgoing) or was sent (incoming)."""

    #: The stream id the peer chose.
    remote_stream_id: int


@dataclass(frozen=True)
class DataReceived(Event):
    """In-order application bytes from the peer."""

    #: The bytes, in order, never empty.
    data: bytes


@dataclass(frozen=True)
class StreamEnded(Event):
    """The peer sent CLOSE and every byte before it has been delivered (end of stream)."""


@dataclass(frozen=True)
class ConnectionReset(Event):
    """The connection is dead; nothing more will be delivered or sent."""

    #: Category of the failure.
    reason: ResetReason
    #: Human-readable detail for logs and error messages.
    detail: str = ""


@dataclass(frozen=True)
class ConnectionClosed(Event):
    """Both directions closed cleanly and every packet was acknowledged; forget the connection."""


@dataclass(frozen=True)
class PongReceived(Event):
    """Answer to our ping (ECHO)."""

    #: Seconds between the ping and this pong.
    rtt: float
    #: Payload echoed back.
    payload: bytes
