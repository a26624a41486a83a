"""Errors of the I2CP layer. Malformed input from the router raises ``I2CPProtocolError``."""

from __future__ import annotations


class I2CPError(Exception):
    """Base of every I2CP failure."""


class I2CPProtocolError(I2CPError, ValueError):
    """The router sent bytes that do not form a valid I2CP message (what and where in the text)."""


class MessageTooLong(I2CPProtocolError):
    """A message announced or built a body larger than the bounded maximum."""


class PayloadFormatError(I2CPProtocolError):
    """An I2CP payload is not the gzip frame the protocol requires, or inflates too large."""


class SessionError(I2CPError):
    """The router refused, invalidated or destroyed our session."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RouterDisconnected(I2CPError, ConnectionError):
    """No usable I2CP connection or session right now (lost, closed, not ready yet, timed out).

    ``dialer/native.py`` turns it into the dialer's ``RouterUnavailable``.
    """
