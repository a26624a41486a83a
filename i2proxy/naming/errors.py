"""Errors of the naming layer. Each says what was wrong, so callers can report it precisely."""

from __future__ import annotations


class NamingError(Exception):
    """Base class of every naming error."""


class InvalidName(NamingError, ValueError):
    """A host name breaks the naming rules (``reason`` says which one)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid host name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class InvalidDestination(NamingError, ValueError):
    """A base64 destination that does not parse as an I2P Destination."""


class NameConflict(NamingError):
    """The name is already bound to another destination in the book being written."""

    def __init__(self, name: str, existing_b64: str) -> None:
        super().__init__(f"{name} is already bound to another destination")
        self.name = name
        self.existing_b64 = existing_b64


class UnknownBook(NamingError, KeyError):
    """No book of that name (``local``, ``session``, ``default`` or a subscription)."""


class ReadOnlyBook(NamingError):
    """The shipped default book and subscription books change only through their own paths."""
