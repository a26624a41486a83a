"""Destination key files: the one place that reads and writes them, whatever wrote them.

A key file may come from us or from a router, so reading recognises every format the project
documents (``docs/I2P-CORE.md``) by its content, never by its name:

- ``JSON``: ours (``i2proxy keys generate``, ``--persistent``, :func:`save_key_file`), the only
  layout that holds both the X25519 and the ElGamal key;
- ``BINARY``: a private key file as i2pd writes it (a tunnel's ``keys = *.dat``) and as Java's
  I2PTunnel writes it (``privKeyFile``): Destination ‖ crypto private key ‖ signing private key;
- ``SAM_BASE64``: that binary layout in I2P base64, as SAM's ``DEST GENERATE`` returns it
  (``PRIV=``) and ``i2proxy keys export-sam`` prints it.

Every failure is a :class:`KeyFileError` naming the file and the format it was read as, so the
CLI and ``i2proxy run`` can print one line instead of a traceback.
"""

from __future__ import annotations

import enum
import os
import tempfile
from pathlib import Path

from i2proxy.i2p import base64 as i2b64
from i2proxy.i2p.errors import I2PFormatError
from i2proxy.i2p.keys import PrivateKeys

#: The persistent client destination's file in the data directory (``--persistent``).
DEFAULT_KEY_FILE_NAME = "client-destination.keys"
#: Far above any real key file (~1 KiB); bounds what a wrong path makes us read.
MAX_KEY_FILE = 64 * 1024

_SAM_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~=")


class KeyFormat(enum.Enum):
    """A key-file format, its value the name an error message gives it."""

    JSON = "i2proxy JSON key file"
    BINARY = "binary private key file (i2pd .dat / Java I2PTunnel)"
    SAM_BASE64 = "SAM private-key base64 (DEST GENERATE PRIV=)"


class KeyFileError(I2PFormatError):
    """A key file that cannot be read or used; the message says which file and which format."""


def detect_format(data: bytes) -> KeyFormat:
    """The format ``data`` looks like: JSON starts with ``{``, SAM base64 is all base64
    characters (binary key material never is), anything else is read as binary."""
    text = data.strip()
    if text.startswith(b"{"):
        return KeyFormat.JSON
    if text and all(byte in _SAM_ALPHABET for byte in text):
        return KeyFormat.SAM_BASE64
    return KeyFormat.BINARY


def parse_key_file(data: bytes, source: str = "key file") -> PrivateKeys:
    """Keys from the content of a key file in any format (``source`` names it in errors).

    A binary file that happens to start with ``{`` or to look like base64 is still read as
    binary when its likely format fails, so detection never rejects a valid file.
    """
    if not data.strip():
        raise KeyFileError(f"{source}: empty; expected one of: {_formats()}")
    likely = detect_format(data)
    try:
        return _parse_as(likely, data)
    except I2PFormatError as exc:
        error = exc
    if likely is not KeyFormat.BINARY:
        try:
            return _parse_as(KeyFormat.BINARY, data)
        except I2PFormatError:
            pass
    raise KeyFileError(f"{source}: not a valid {likely.value}: {error}") from None


def read_key_file(path: str | os.PathLike[str]) -> PrivateKeys:
    """Load the key file at ``path`` (any format); :class:`KeyFileError` if it is missing,
    unreadable, too large or invalid."""
    try:
        return parse_key_file(_read_bounded(path), str(path))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None


def load_or_create_key_file(path: str | os.PathLike[str]) -> PrivateKeys:
    """Load ``path``, or generate new keys and save them there (our JSON) if it does not exist."""
    try:
        return parse_key_file(_read_bounded(path), str(path))
    except FileNotFoundError:
        pass
    keys = PrivateKeys.generate()
    save_key_file(keys, path)
    return keys


def keys_from(keys: PrivateKeys | str | os.PathLike[str] | None) -> PrivateKeys | None:
    """A dialer's ``keys`` argument as PrivateKeys: a path is loaded (created if absent), None
    stays None (a destination of this run only)."""
    if keys is None or isinstance(keys, PrivateKeys):
        return keys
    if isinstance(keys, str | os.PathLike):
        return load_or_create_key_file(keys)
    raise TypeError(f"keys must be PrivateKeys or a key file path, not {type(keys).__name__}")


def save_key_file(keys: PrivateKeys, path: str | os.PathLike[str]) -> None:
    """Write ``keys`` as our JSON key file, atomically (temp file + rename) with mode 0600.

    A crash mid-write leaves the old file intact, and the secret is never readable by others,
    not even briefly.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot("write", path, exc) from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(keys.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot("write", path, exc) from None
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_bounded(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes (FileNotFoundError passes through for load-or-create)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _cannot("read", path, exc) from None
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError(f"{path}: larger than {MAX_KEY_FILE} bytes, not a key file")
    return data


def _parse_as(fmt: KeyFormat, data: bytes) -> PrivateKeys:
    if fmt is KeyFormat.JSON:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise I2PFormatError("not UTF-8", offset=exc.start) from None
        return PrivateKeys.from_json(text)
    if fmt is KeyFormat.SAM_BASE64:
        return PrivateKeys.from_binary(i2b64.b64decode(data.decode("ascii").strip()))
    return PrivateKeys.from_binary(data)


def _cannot(action: str, path: str | os.PathLike[str], exc: OSError) -> KeyFileError:
    return KeyFileError(f"{path}: cannot {action} the key file: {exc.strerror or exc}")


def _formats() -> str:
    return "; ".join(fmt.value for fmt in KeyFormat)
