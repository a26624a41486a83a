"""Errors raised by the I2P data-structure layer.

Every parser in :mod:`i2proxy.i2p` raises :class:`I2PFormatError` (a ``ValueError``) for malformed
input, so callers that already guard against ``ValueError`` stay correct, and callers that care can
tell a malformed I2P structure apart from other bugs.
"""

from __future__ import annotations


class I2PFormatError(ValueError):
    """Malformed I2P data: the message names the structure, the problem and the byte offset."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.offset = offset
        #: The message without the offset suffix, for :meth:`within`.
        self.detail = message
        if offset is not None:
            message = f"{message} (at offset {offset})"
        super().__init__(message)

    def within(self, what: str) -> I2PFormatError:
        """The same error, of the same type and offset, with the enclosing structure named first
        (``raise exc.within("leaseset2") from None``)."""
        return type(self)(f"{what}: {self.detail}", offset=self.offset)


class TruncatedError(I2PFormatError):
    """The input ended before the structure did (more bytes might make it valid)."""


class UnsupportedTypeError(I2PFormatError):
    """A well-formed structure uses a signing or crypto type this package cannot handle."""


class B33NotSupported(I2PFormatError):
    """A ``.b32.i2p`` name of 56 or more characters: a b33 (blinded/encrypted) address.

    Recognised so the user gets a clear message instead of "bad base32"; resolving it needs
    LeaseSet blinding, which i2proxy does not implement yet.
    """


def need(data: bytes, offset: int, length: int, what: str) -> None:
    """Raise :class:`TruncatedError` unless ``data`` holds ``length`` bytes at ``offset``."""
    if offset + length > len(data):
        raise TruncatedError(
            f"{what}: need {length} bytes, only {max(0, len(data) - offset)} left",
            offset=offset,
        )
