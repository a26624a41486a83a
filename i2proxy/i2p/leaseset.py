"""Lease2 and LeaseSet2 (database store type 3): build, sign, verify, decode.

LeaseSet2 layout: Destination ‖ published (4, s) ‖ expires (2, s after published) ‖ flags (2)
‖ [offline signature block if flag bit 0] ‖ properties (Mapping) ‖ n keys (1) ‖ n * [type (2) ‖
length (2) ‖ key] ‖ n leases (1) ‖ n * Lease2 ‖ signature.  The signature covers the byte 0x03
(the store type) followed by everything before the signature: i2pd rejects a LeaseSet2 whose
signature leaves the type byte out.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from i2proxy.i2p.destination import Destination
from i2proxy.i2p.errors import I2PFormatError, UnsupportedTypeError, need
from i2proxy.i2p.signatures import verify as verify_signature
from i2proxy.i2p.sigtypes import CRYPTO_PUBLIC_KEY_SIZES, SIG_SIZES, CryptoType, SigType, sig_type
from i2proxy.i2p.structures import Mapping

STORE_TYPE = 3
SIGNATURE_PREFIX = bytes([STORE_TYPE])
FLAG_OFFLINE_KEYS = 0x0001
FLAG_UNPUBLISHED = 0x0002
FLAG_BLINDED = 0x0004
MAX_LEASES = 16
LEASE2_LENGTH = 40
EMPTY_MAPPING = Mapping()
_KEY_SIZES_BY_CODE = {int(t): n for t, n in CRYPTO_PUBLIC_KEY_SIZES.items()}


class Signer(Protocol):
    """Anything that signs as the destination (or its transient key)."""

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Lease2:
    """One inbound tunnel: gateway router hash, tunnel id, end time in whole seconds."""

    gateway: bytes
    tunnel_id: int
    end: int

    def __post_init__(self) -> None:
        if len(self.gateway) != 32:
            raise I2PFormatError(f"lease: gateway hash is {len(self.gateway)} bytes, not 32")
        if not 0 <= self.tunnel_id < 1 << 32:
            raise I2PFormatError(f"lease: tunnel id {self.tunnel_id} does not fit in 4 bytes")
        if not 0 <= self.end < 1 << 32:
            raise I2PFormatError(f"lease: end {self.end} does not fit in 4 bytes")

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[Lease2, int]:
        """Parse 40 bytes at ``offset``."""
        need(data, offset, LEASE2_LENGTH, "lease2")
        tunnel_id, end = struct.unpack_from(">II", data, offset + 32)
        return cls(bytes(data[offset : offset + 32]), tunnel_id, end), offset + LEASE2_LENGTH

    def to_bytes(self) -> bytes:
        """gateway ‖ tunnel id ‖ end (seconds)."""
        return self.gateway + struct.pack(">II", self.tunnel_id, self.end)


@dataclass(frozen=True)
class PublicEncryptionKey:
    """A LeaseSet2 encryption key entry; unknown types are kept opaque (forward compatible)."""

    crypto_type: int
    key: bytes

    def to_bytes(self) -> bytes:
        """type ‖ length ‖ key."""
        return struct.pack(">HH", self.crypto_type, len(self.key)) + self.key


@dataclass(frozen=True)
class OfflineSignature:
    """A transient signing key authorised by the destination until ``expires`` (seconds)."""

    expires: int
    transient_sig_type: SigType
    transient_public_key: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        """What the destination signed: expires ‖ type ‖ transient key."""
        return struct.pack(">IH", self.expires, self.transient_sig_type) + self.transient_public_key

    def to_bytes(self) -> bytes:
        """The block as it sits in the LeaseSet2 header."""
        return self.signed_bytes() + self.signature


@dataclass(frozen=True)
class LeaseSet2:
    """A LeaseSet2, signed or not (``signature`` empty until :meth:`sign`)."""

    destination: Destination
    published: int
    expires: int
    leases: tuple[Lease2, ...]
    encryption_keys: tuple[PublicEncryptionKey, ...]
    properties: Mapping = EMPTY_MAPPING
    flags: int = 0
    offline_signature: OfflineSignature | None = None
    signature: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.published < 1 << 32:
            raise I2PFormatError(f"leaseset2: published {self.published} does not fit in 4 bytes")
        if not 0 <= self.expires - self.published < 1 << 16:
            raise I2PFormatError(
                f"leaseset2: expires must be 0..65535 s after published, "
                f"got {self.expires - self.published}"
            )
        if len(self.leases) > MAX_LEASES:
            raise I2PFormatError(f"leaseset2: {len(self.leases)} leases, at most {MAX_LEASES}")
        if not 0 < len(self.encryption_keys) < 256:
            raise I2PFormatError("leaseset2: needs 1..255 encryption keys")
        if bool(self.flags & FLAG_OFFLINE_KEYS) != (self.offline_signature is not None):
            raise I2PFormatError("leaseset2: offline flag and offline signature disagree")

    @classmethod
    def build(
        cls,
        destination: Destination,
        *,
        published: int,
        expires: int,
        leases: Sequence[Lease2],
        encryption_keys: Sequence[tuple[int, bytes]],
        properties: AbcMapping[str, str] | None = None,
        flags: int = 0,
    ) -> LeaseSet2:
        """An unsigned LeaseSet2; ``encryption_keys`` are (type, public key) pairs."""
        return cls(
            destination,
            published,
            expires,
            tuple(leases),
            tuple(PublicEncryptionKey(int(t), bytes(k)) for t, k in encryption_keys),
            Mapping.from_dict(properties or {}),
            flags,
        )

    # --- signing --------------------------------------------------------------------------------

    @property
    def signer_sig_type(self) -> SigType:
        """The type of the key that signs the body: transient if offline-signed."""
        if self.offline_signature is not None:
            return self.offline_signature.transient_sig_type
        return self.destination.sig_type

    def body_bytes(self) -> bytes:
        """Everything before the signature."""
        parts = [
            self.destination.to_bytes(),
            struct.pack(">IHH", self.published, self.expires - self.published, self.flags),
        ]
        if self.offline_signature is not None:
            parts.append(self.offline_signature.to_bytes())
        parts.append(self.properties.to_bytes())
        parts.append(bytes([len(self.encryption_keys)]))
        parts.extend(k.to_bytes() for k in self.encryption_keys)
        parts.append(bytes([len(self.leases)]))
        parts.extend(lease.to_bytes() for lease in self.leases)
        return b"".join(parts)

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: 0x03 ‖ body."""
        return SIGNATURE_PREFIX + self.body_bytes()

    def sign(self, signer: Signer) -> LeaseSet2:
        """Return a signed copy; ``signer`` is e.g. PrivateKeys or a SigningPrivateKey."""
        signature = signer.sign(self.signed_bytes())
        expected = SIG_SIZES[self.signer_sig_type].signature
        if len(signature) != expected:
            raise I2PFormatError(f"leaseset2: signature is {len(signature)} bytes, not {expected}")
        return replace(self, signature=signature)

    def verify(self) -> bool:
        """True iff the signature (and any offline authorisation) is valid."""
        try:
            if self.offline_signature is not None:
                off = self.offline_signature
                if not self.destination.verify(off.signed_bytes(), off.signature):
                    return False
                return verify_signature(
                    off.transient_sig_type, off.transient_public_key,
                    self.signed_bytes(), self.signature,
                )  # fmt: skip
            return self.destination.verify(self.signed_bytes(), self.signature)
        except UnsupportedTypeError:
            return False

    def to_bytes(self) -> bytes:
        """The full LeaseSet2 (without the leading store-type byte)."""
        if not self.signature:
            raise I2PFormatError("leaseset2: not signed")
        return self.body_bytes() + self.signature

    # --- parsing --------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[LeaseSet2, int]:
        """Parse a LeaseSet2 at ``offset`` (no store-type byte); return it and its end."""
        try:
            dest, pos = Destination.parse(data, offset)
        except I2PFormatError as exc:
            raise exc.within("leaseset2") from None
        need(data, pos, 8, "leaseset2 header")
        published, expires_delta, flags = struct.unpack_from(">IHH", data, pos)
        pos += 8
        offline = None
        if flags & FLAG_OFFLINE_KEYS:
            offline, pos = _parse_offline(data, pos, dest)
        properties, pos = Mapping.parse(data, pos)
        need(data, pos, 1, "leaseset2 key count")
        nkeys = data[pos]
        pos += 1
        if nkeys == 0:
            raise I2PFormatError("leaseset2: no encryption keys", offset=pos - 1)
        keys = []
        for _ in range(nkeys):
            key, pos = _parse_encryption_key(data, pos)
            keys.append(key)
        need(data, pos, 1, "leaseset2 lease count")
        nleases = data[pos]
        if nleases > MAX_LEASES:
            raise I2PFormatError(f"leaseset2: {nleases} leases, at most {MAX_LEASES}", offset=pos)
        pos += 1
        leases = []
        for _ in range(nleases):
            lease, pos = Lease2.parse(data, pos)
            leases.append(lease)
        sig_len = SIG_SIZES[offline.transient_sig_type if offline else dest.sig_type].signature
        need(data, pos, sig_len, "leaseset2 signature")
        signature = bytes(data[pos : pos + sig_len])
        ls = cls(
            dest, published, published + expires_delta, tuple(leases), tuple(keys),
            properties, flags, offline, signature,
        )  # fmt: skip
        return ls, pos + sig_len

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseSet2:
        """Parse exactly one LeaseSet2."""
        ls, end = cls.parse(data)
        if end != len(data):
            raise I2PFormatError(
                f"leaseset2: {len(data) - end} unexpected bytes after the signature", offset=end
            )
        return ls


def _parse_offline(data: bytes, pos: int, dest: Destination) -> tuple[OfflineSignature, int]:
    need(data, pos, 6, "offline signature header")
    expires, code = struct.unpack_from(">IH", data, pos)
    transient_type = sig_type(code, offset=pos + 4)
    pos += 6
    key_len = SIG_SIZES[transient_type].public_key
    need(data, pos, key_len, "offline transient key")
    key = bytes(data[pos : pos + key_len])
    pos += key_len
    need(data, pos, dest.signature_length, "offline signature")
    sig = bytes(data[pos : pos + dest.signature_length])
    return OfflineSignature(expires, transient_type, key, sig), pos + dest.signature_length


def _parse_encryption_key(data: bytes, pos: int) -> tuple[PublicEncryptionKey, int]:
    need(data, pos, 4, "encryption key header")
    ctype, length = struct.unpack_from(">HH", data, pos)
    expected = _KEY_SIZES_BY_CODE.get(ctype)
    if expected is not None and length != expected:
        raise I2PFormatError(
            f"leaseset2: {CryptoType(ctype).name} key length {length}, expected {expected}",
            offset=pos + 2,
        )
    need(data, pos + 4, length, f"encryption key ({length} bytes)")
    return PublicEncryptionKey(ctype, bytes(data[pos + 4 : pos + 4 + length])), pos + 4 + length
