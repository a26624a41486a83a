"""The dialer: name or destination → an I2P stream that can carry initial data.

Frontends (SOCKS, HTTP) and the subscription fetcher speak only this interface; the native I2CP
stack and the SAM v3 backend both implement it.
"""

from i2proxy.dialer.base import (
    DestinationOffline,
    Dialer,
    DialError,
    DialTimeout,
    InvalidTarget,
    LocalLimitReached,
    PeerRefused,
    PeerUnreachable,
    RouterUnavailable,
    StreamStats,
    Target,
)

__all__ = [
    "DestinationOffline",
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
