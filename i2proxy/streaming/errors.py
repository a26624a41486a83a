"""Why the streaming layer could not open a stream, and its per-stream counters.

These are the streaming layer's own words; ``dialer/native.py`` maps them to the ``DialError``
the proxy frontends understand, so nothing below ``dialer/`` imports from it.
"""

from __future__ import annotations

from dataclasses import dataclass


class StreamOpenError(ConnectionError):
    """A stream could not be opened; the subclass says why."""


class StreamRefused(StreamOpenError):
    """The peer answered the SYN with a RESET (nothing listens there, or it refused us)."""


class StreamConnectTimeout(StreamOpenError, TimeoutError):
    """No answer to the SYN within the connect timeout."""


class StreamUnreachable(StreamOpenError):
    """The stream died before it was established (no route, no answer, closed)."""


class StreamReplyLost(StreamUnreachable):
    """The peer got our SYN, and so its data, and answered, but its SYN reply was lost after our
    pre-ACK had counted it and it cannot be resent (first contact; docs/STREAMING.md): the
    request reached the peer and the start of its answer is gone."""


class StreamDestinationOffline(StreamUnreachable):
    """The router found no LeaseSet for our SYN, nor did a second lookup: the peer is offline."""


class StreamLimitReached(StreamOpenError):
    """Our own limit of open streams (``max_streams``) is reached: a local limit, not the peer."""


@dataclass
class StreamStats:
    """Counters of one stream, readable via ``writer.get_extra_info("stream_stats")``."""

    packets_sent: int = 0
    packets_received: int = 0
    retransmissions: int = 0
    #: Smoothed round-trip time in seconds, None before the first sample.
    rtt: float | None = None
    #: True when the initial data went out inside the SYN packet itself.
    initial_data_in_syn: bool = False
    #: Bytes of application data that rode in the SYN.
    syn_payload_bytes: int = 0
