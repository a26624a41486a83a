"""Feeds never leave I2P: the connector refuses every URL it cannot dial as an I2P stream.

The dialer here is a tripwire, not a fake: refusal must happen before any stream (or DNS lookup,
or TCP socket) is attempted, so a dialer that is called at all fails the test.
"""

from __future__ import annotations

import pytest

from i2proxy.naming.fetch import FeedError, fetch_feed, make_session


class TripwireDialer:
    """Fails the test if the connector tries to open a stream."""

    async def open_stream(self, *args: object, **kwargs: object) -> None:
        pytest.fail(f"the connector dialed {args!r}")


def unresolvable(host: str) -> None:
    return None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hosts.txt", "not an .i2p host"),
        ("http://127.0.0.1:7657/hosts.txt", "not an .i2p host"),
        ("http://[::1]/hosts.txt", "not an .i2p host"),
        ("http://i2p.example.com/hosts.txt", "not an .i2p host"),
        ("https://stats.i2p/hosts.txt", "only http:// feeds"),
        ("http://unknown.i2p/hosts.txt", "not in the address book"),
    ],
)
async def test_a_feed_url_that_is_not_a_known_i2p_host_is_refused_before_dialing(url, reason):
    session = make_session(TripwireDialer(), unresolvable)  # type: ignore[arg-type]
    try:
        with pytest.raises(FeedError, match=reason):
            await fetch_feed(session, url)
    finally:
        await session.close()
