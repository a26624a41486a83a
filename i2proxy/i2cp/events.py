"""Events the sans-IO I2CP session emits (``I2CPSession.next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass

from i2proxy.i2cp.messages import RequestedLease
from i2proxy.i2cp.payload import Payload


class Event:
    """Base of every session event."""


@dataclass(frozen=True, slots=True)
class RouterDateReceived(Event):
    """SetDate arrived (handshake, or later when the router's clock shifts)."""

    #: The router's clock, ms since the epoch.
    date_ms: int
    #: The version string the router sent back (i2pd echoes ours).
    version: str | None


@dataclass(frozen=True, slots=True)
class SessionCreated(Event):
    """SessionStatus 1: the router accepted our CreateSession. Tunnels do not exist yet."""

    session_id: int


@dataclass(frozen=True, slots=True)
class SessionRejected(Event):
    """SessionStatus 3 (invalid, e.g. bad signature or duplicate destination) or 4 (refused)."""

    status: int


@dataclass(frozen=True, slots=True)
class SessionReconfigured(Event):
    """SessionStatus 2 or 3 in answer to ReconfigureSession."""

    accepted: bool


@dataclass(frozen=True, slots=True)
class SessionDestroyed(Event):
    """SessionStatus 0: the session is gone (after DestroySession, or the router ended it)."""


@dataclass(frozen=True, slots=True)
class LeaseSetCreated(Event):
    """We answered RequestVariableLeaseSet with a signed LeaseSet2 for these leases."""

    leases: tuple[RequestedLease, ...]
    #: True the first time: the destination becomes reachable once the router publishes it.
    first: bool


@dataclass(frozen=True, slots=True)
class LeaseSetFailed(Event):
    """Building or signing the LeaseSet failed; i2pd will end the session after 10 s."""

    error: Exception


@dataclass(frozen=True, slots=True)
class LookupCompleted(Event):
    """A HostLookup ended: found (``destination`` set), not found, or timed out."""

    request_id: int
    destination: bytes | None
    #: 0 found, 1…255 the router's failure code, None when our own deadline passed first.
    result_code: int | None


@dataclass(frozen=True, slots=True)
class MessageStatusReceived(Event):
    """A MessageStatus for a message we sent with a nonzero nonce."""

    nonce: int
    status: int
    #: True when no further status will follow for this nonce.
    final: bool


@dataclass(frozen=True, slots=True)
class PayloadReceived(Event):
    """An incoming message, unframed: protocol, ports and data."""

    payload: Payload
    message_id: int


@dataclass(frozen=True, slots=True)
class BandwidthLimitsReceived(Event):
    limits: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MessageDropped(Event):
    """A message from the router that could not be decoded was skipped (never fatal)."""

    message_type: int
    error: Exception


@dataclass(frozen=True, slots=True)
class ConnectionTerminated(Event):
    """The router sent Disconnect, or the byte stream broke framing: close the socket."""

    reason: str
