"""A destination together with its private keys: generation, signing and key files.

Our key file (``save``/``load``) is a small JSON document, documented in ``docs/I2P-CORE.md``::

    {"format": "i2proxy-private-keys", "version": 1,
     "destination": "<I2P base64>",
     "signing_private_key": "<I2P base64 of the raw key>",
     "encryption_private_keys": [{"type": 4, "key": "<I2P base64>"},
                                 {"type": 0, "key": "<I2P base64>"}]}

JSON rather than i2pd's binary layout because i2pd's layout has room for only one encryption
key, and a destination that works with i2pd needs two (X25519 and ElGamal).  Loading checks that
the private keys match the destination, so a damaged file is reported, not silently used.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from i2proxy.i2p import base64 as i2b64
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.encryption import EncryptionKey
from i2proxy.i2p.errors import I2PFormatError
from i2proxy.i2p.signing import SigningPrivateKey
from i2proxy.i2p.sigtypes import SIG_SIZES, CryptoType, SigType

FILE_FORMAT = "i2proxy-private-keys"
FILE_VERSION = 1
MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class PrivateKeys:
    """A Destination with its signing key and encryption keys (ordered by preference)."""

    destination: Destination
    signing_key: SigningPrivateKey
    encryption_keys: tuple[EncryptionKey, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.signing_key.sig_type != self.destination.sig_type:
            raise I2PFormatError(
                f"signing key is {self.signing_key.sig_type.name}, destination is "
                f"{self.destination.sig_type.name}"
            )
        if self.signing_key.public_bytes() != self.destination.signing_public_key:
            raise I2PFormatError("signing private key does not match the destination")
        types = [k.crypto_type for k in self.encryption_keys]
        if len(set(types)) != len(types):
            raise I2PFormatError("two encryption keys of the same type")
        for key in self.encryption_keys:
            if (
                key.crypto_type == self.destination.crypto_type
                and key.public != self.destination.encryption_public_key
            ):
                raise I2PFormatError(
                    f"{key.crypto_type.name} private key does not match the destination"
                )

    @classmethod
    def generate(cls, sig_type: SigType = SigType.EDDSA_SHA512_ED25519) -> PrivateKeys:
        """A new destination that i2pd accepts and that ElGamal-only peers can reach.

        Crypto type 0 in the certificate with the ElGamal public key in the 256-byte field, and
        both an X25519 and an ElGamal key pair for the LeaseSet2 (see the interop notes).  The
        signing-key padding is one random 32-byte block repeated, as i2pd and Java make it.
        """
        signing = SigningPrivateKey.generate(sig_type)
        x25519 = EncryptionKey.generate(CryptoType.X25519)
        elgamal = EncryptionKey.generate(CryptoType.ELGAMAL)
        pad_len = max(0, 128 - SIG_SIZES[signing.sig_type].public_key)
        block = secrets.token_bytes(32)
        padding = (block * (pad_len // 32 + 1))[:pad_len]
        dest = Destination.create(
            sig_type=signing.sig_type,
            signing_public_key=signing.public_bytes(),
            crypto_type=CryptoType.ELGAMAL,
            crypto_public_key=elgamal.public,
            padding=padding,
        )
        return cls(dest, signing, (x25519, elgamal))

    # --- use -------------------------------------------------------------------------------------

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` as this destination."""
        return self.signing_key.sign(data)

    def encryption_key(self, crypto_type: CryptoType) -> EncryptionKey | None:
        """The encryption key of ``crypto_type``, if we hold one."""
        for key in self.encryption_keys:
            if key.crypto_type == crypto_type:
                return key
        return None

    @property
    def x25519(self) -> EncryptionKey | None:
        """The X25519 (type 4) key pair."""
        return self.encryption_key(CryptoType.X25519)

    @property
    def elgamal(self) -> EncryptionKey | None:
        """The ElGamal (type 0) key pair."""
        return self.encryption_key(CryptoType.ELGAMAL)

    # --- our key file ------------------------------------------------------------------------

    def to_json(self) -> str:
        """The key-file document (see the module docstring)."""
        doc = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "destination": self.destination.to_base64(),
            "signing_private_key": i2b64.b64encode(self.signing_key.raw),
            "encryption_private_keys": [
                {"type": int(k.crypto_type), "key": i2b64.b64encode(k.private)}
                for k in self.encryption_keys
            ],
        }
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PrivateKeys:
        """Parse and check a key-file document."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise I2PFormatError(f"key file: not JSON ({exc.msg})", offset=exc.pos) from None
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise I2PFormatError(f"key file: 'format' is not {FILE_FORMAT!r}")
        if doc.get("version") != FILE_VERSION:
            raise I2PFormatError(f"key file: unsupported version {doc.get('version')!r}")
        dest = Destination.from_base64(_field(doc, "destination", str))
        signing = SigningPrivateKey(
            dest.sig_type, i2b64.b64decode(_field(doc, "signing_private_key", str))
        )
        enc = []
        for i, entry in enumerate(_field(doc, "encryption_private_keys", list)):
            if not isinstance(entry, dict):
                raise I2PFormatError(f"key file: encryption_private_keys[{i}] is not an object")
            ctype = _field(entry, "type", int)
            try:
                ct = CryptoType(ctype)
            except ValueError:
                raise I2PFormatError(f"key file: unknown crypto type {ctype}") from None
            enc.append(EncryptionKey(ct, i2b64.b64decode(_field(entry, "key", str))))
        return cls(dest, signing, tuple(enc))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key file atomically (temp file + rename) with mode 0600.

        A crash mid-write leaves the old file intact, and the secret is never readable by
        others, not even briefly.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrivateKeys:
        """Read and check a key file written by :meth:`save`."""
        with open(path, "rb") as fh:
            raw = fh.read(MAX_KEY_FILE + 1)
        if len(raw) > MAX_KEY_FILE:
            raise I2PFormatError(f"key file {path}: larger than {MAX_KEY_FILE} bytes")
        try:
            return cls.from_json(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise I2PFormatError(f"key file {path}: not UTF-8", offset=exc.start) from None
        except I2PFormatError as exc:
            raise type(exc)(f"{path}: {exc}") from None

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> PrivateKeys:
        """Load ``path``, or generate and save new keys there if it does not exist."""
        try:
            return cls.load(path)
        except FileNotFoundError:
            keys = cls.generate()
            keys.save(path)
            return keys

    def __repr__(self) -> str:
        return f"PrivateKeys({self.destination.b32}, <secret>)"


def _field(doc: dict[str, object], name: str, kind: type) -> object:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise I2PFormatError(f"key file: {name!r} missing or not {kind.__name__}")
    return value


def encryption_keys_of(keys: Iterable[EncryptionKey]) -> list[tuple[CryptoType, bytes]]:
    """(type, public key) pairs in order: what a LeaseSet2 publishes."""
    return [(k.crypto_type, k.public) for k in keys]
