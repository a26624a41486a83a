"""A destination together with its private keys: generation, signing and their serialisations.

Our key-file document (``to_json``/``from_json``; files: :mod:`i2proxy.i2p.keyfile`) is small
JSON, documented in ``docs/I2P-CORE.md``::

    {"format": "i2proxy-private-keys", "version": 1,
     "destination": "<I2P base64>",
     "signing_private_key": "<I2P base64 of the raw key>",
     "encryption_private_keys": [{"type": 4, "key": "<I2P base64>"},
                                 {"type": 0, "key": "<I2P base64>"}]}

JSON rather than i2pd's binary layout because i2pd's layout has room for only one encryption
key, and a destination that works with i2pd needs two (X25519 and ElGamal).  Loading checks that
the signing key matches the destination, so a damaged file is reported, not silently used.
(Encryption keys need not match the destination's 256-byte field: peers take them from the
LeaseSet2, and i2pd itself fills that field with random bytes for the destinations it makes.)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from i2proxy.i2p import base64 as i2b64
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.encryption import EncryptionKey
from i2proxy.i2p.errors import I2PFormatError, UnsupportedTypeError, need
from i2proxy.i2p.signing import SigningPrivateKey
from i2proxy.i2p.sigtypes import SIG_SIZES, CryptoType, SigType

FILE_FORMAT = "i2proxy-private-keys"
FILE_VERSION = 1


@dataclass(frozen=True)
class PrivateKeys:
    """A Destination with its signing key and encryption keys (ordered by preference)."""

    destination: Destination
    signing_key: SigningPrivateKey
    encryption_keys: tuple[EncryptionKey, ...] = field(default=())
    #: The crypto-private-key slot of an imported i2pd/SAM key when it is not one of
    #: ``encryption_keys`` (i2pd fills it with random bytes for destinations it creates);
    #: kept only so that :meth:`to_sam_base64` reproduces the imported bytes.
    crypto_key_slot: bytes | None = None

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
        if self.crypto_key_slot is not None and len(self.crypto_key_slot) != _slot_length(
            self.destination
        ):
            raise I2PFormatError(
                f"crypto key slot is {len(self.crypto_key_slot)} bytes, expected "
                f"{_slot_length(self.destination)}"
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

    # --- our key-file document ---------------------------------------------------------------

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
        if self.crypto_key_slot is not None:
            doc["crypto_key_slot"] = i2b64.b64encode(self.crypto_key_slot)
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PrivateKeys:
        """Parse and check a key-file document."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise I2PFormatError(f"not JSON ({exc.msg})", offset=exc.pos) from None
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise I2PFormatError(f"'format' is not {FILE_FORMAT!r}")
        if doc.get("version") != FILE_VERSION:
            raise I2PFormatError(f"unsupported version {doc.get('version')!r}")
        dest = Destination.from_base64(_field(doc, "destination", str))
        signing = SigningPrivateKey(
            dest.sig_type, i2b64.b64decode(_field(doc, "signing_private_key", str))
        )
        enc = []
        for i, entry in enumerate(_field(doc, "encryption_private_keys", list)):
            if not isinstance(entry, dict):
                raise I2PFormatError(f"encryption_private_keys[{i}] is not an object")
            ctype = _field(entry, "type", int)
            try:
                ct = CryptoType(ctype)
            except ValueError:
                raise I2PFormatError(f"unknown crypto type {ctype}") from None
            enc.append(EncryptionKey(ct, i2b64.b64decode(_field(entry, "key", str))))
        slot = doc.get("crypto_key_slot")
        if slot is not None and not isinstance(slot, str):
            raise I2PFormatError("'crypto_key_slot' is not str")
        return cls(dest, signing, tuple(enc), i2b64.b64decode(slot) if slot else None)

    # --- i2pd and SAM layout -----------------------------------------------------------------

    def to_binary(self) -> bytes:
        """i2pd/SAM layout: Destination ‖ crypto private key ‖ signing private key.

        The crypto slot is 32 bytes for crypto type 4 and 256 otherwise (as i2pd reads it); it
        holds our key of the destination's crypto type (ElGamal for destinations we generate).
        """
        slot = self.crypto_key_slot
        if slot is None:
            key = self.encryption_key(self.destination.crypto_type)
            if key is None:
                raise I2PFormatError(
                    f"no {self.destination.crypto_type.name} private key for the i2pd/SAM layout"
                )
            slot = key.private
        return self.destination.to_bytes() + slot + self.signing_key.raw

    def to_sam_base64(self) -> str:
        """The private-key base64 that SAM's ``SESSION CREATE DESTINATION=`` accepts."""
        return i2b64.b64encode(self.to_binary())

    @classmethod
    def from_binary(cls, data: bytes) -> PrivateKeys:
        """Parse the binary layout of i2pd ``.dat``, Java I2PTunnel and SAM (see :meth:`to_binary`).

        The crypto slot becomes an encryption key only if it really is the private key of the
        destination's public-key field; i2pd-made destinations have random bytes there.  Any
        X25519/ElGamal key still missing is generated, as i2pd itself does at session start,
        so the result can publish the LeaseSet2 that i2pd and ElGamal-only peers need.
        Offline-signed key files (all-zero signing key) are not supported.
        """
        dest, pos = Destination.parse(data)
        slot_len = _slot_length(dest)
        need(data, pos, slot_len, f"{dest.crypto_type.name} private key")
        slot = bytes(data[pos : pos + slot_len])
        pos += slot_len
        sig_len = SIG_SIZES[dest.sig_type].private_key
        need(data, pos, sig_len, f"{dest.sig_type.name} signing private key")
        raw_signing = bytes(data[pos : pos + sig_len])
        pos += sig_len
        if not any(raw_signing):
            raise UnsupportedTypeError(
                "offline-signed key file (all-zero signing key) is not supported", offset=pos
            )
        if pos != len(data):
            raise I2PFormatError(
                f"private keys: {len(data) - pos} unexpected bytes after the signing key",
                offset=pos,
            )
        signing = SigningPrivateKey(dest.sig_type, raw_signing)
        keys: dict[CryptoType, EncryptionKey] = {}
        imported = _matching_key(dest, slot)
        if imported is not None:
            keys[imported.crypto_type] = imported
        for ct in (CryptoType.X25519, CryptoType.ELGAMAL):
            keys.setdefault(ct, EncryptionKey.generate(ct))
        ordered = (keys[CryptoType.X25519], keys[CryptoType.ELGAMAL])
        return cls(dest, signing, ordered, None if imported is not None else slot)

    @classmethod
    def from_sam_base64(cls, text: str) -> PrivateKeys:
        """Import the ``PRIV=`` base64 that SAM's ``DEST GENERATE`` returns."""
        try:
            return cls.from_binary(i2b64.b64decode(text.strip()))
        except I2PFormatError as exc:
            raise exc.within("SAM private key") from None

    def __repr__(self) -> str:
        return f"PrivateKeys({self.destination.b32}, <secret>)"


def _slot_length(dest: Destination) -> int:
    """i2pd's crypto-private-key slot: 32 bytes for X25519 destinations, else 256."""
    return 32 if dest.crypto_type == CryptoType.X25519 else 256


def _matching_key(dest: Destination, slot: bytes) -> EncryptionKey | None:
    """The slot as an EncryptionKey if it is the private key of the destination's field."""
    if dest.crypto_type not in (CryptoType.X25519, CryptoType.ELGAMAL):
        return None
    try:
        key = EncryptionKey(dest.crypto_type, slot)
    except I2PFormatError:
        return None
    return key if key.public == dest.encryption_public_key else None


def _field(doc: dict[str, object], name: str, kind: type) -> object:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise I2PFormatError(f"{name!r} missing or not {kind.__name__}")
    return value


def encryption_keys_of(keys: Iterable[EncryptionKey]) -> list[tuple[CryptoType, bytes]]:
    """(type, public key) pairs in order: what a LeaseSet2 publishes."""
    return [(k.crypto_type, k.public) for k in keys]
