"""The contract between proxy frontends and the router backends (I2CP native, SAM v3)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from i2proxy.streaming.errors import StreamStats

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

__all__ = [
    "DialError",
    "DialTimeout",
    "Dialer",
    "InvalidTarget",
    "LocalLimitReached",
    "PeerRefused",
    "PeerUnreachable",
    "RouterUnavailable",
    "StreamStats",
    "Target",
]

#: What a dialer can connect to: a full Destination (from the address book), or a string that is
#: a ``<52 chars>.b32.i2p`` name or a full I2P-base64 destination (the router resolves b32 names).
Target: TypeAlias = "Destination | str"


class DialError(Exception):
    """A stream could not be opened. Subclasses say why, so frontends can pick the reply code."""


class InvalidTarget(DialError):
    """The target is not a destination, a b32 name or a full base64 destination."""


class PeerUnreachable(DialError):
    """The destination's LeaseSet could not be found or the peer never answered the SYN."""


class DestinationOffline(PeerUnreachable):
    """The destination is not on the network: no LeaseSet found, even by a second lookup.

    The site is offline (or its address is wrong); retrying later is all a user can do.
    """


class ReplyLost(PeerUnreachable):
    """The peer received our first bytes and answered, but the start of its answer was lost
    for good (native streaming: its SYN reply, on first contact; docs/STREAMING.md).

    The request did reach the site. Only a request that is safe to repeat (a GET, say) may be
    sent again; the HTTP proxy does that once.
    """


class PeerRefused(DialError):
    """The peer answered with a RESET (nothing listens on that port, or it refused us)."""


class DialTimeout(DialError, TimeoutError):
    """No answer within the connect timeout (also a ``TimeoutError``, like asyncio's)."""


class RouterUnavailable(DialError):
    """The local router (I2CP or SAM) is not connected; the dialer is reconnecting."""


class LocalLimitReached(DialError):
    """One of our own limits (open I2P streams) is reached; the message says which setting."""


@runtime_checkable
class Dialer(Protocol):
    """Opens I2P streams. ``open_stream`` mirrors ``asyncio.open_connection``."""

    async def start(self) -> None:
        """Connect to the router and create the session; returns when streams can be opened."""

    async def close(self) -> None:
        """Close all streams and the session."""

    async def open_stream(
        self,
        target: Destination | str,
        port: int = 0,
        initial_data: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a stream to ``target`` on I2P port ``port``.

        ``initial_data`` is sent as early as the backend allows: inside the SYN on the native
        stack, right after the connect on SAM. Raises a ``DialError`` subclass on failure.
        """
        ...
