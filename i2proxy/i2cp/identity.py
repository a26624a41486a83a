"""Our keys as the I2CP session needs them: destination bytes, signer, LeaseSet2 builder."""

from __future__ import annotations

from i2proxy.i2cp.messages import RequestedLease
from i2proxy.i2p.encryption import EncryptionKey
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.leaseset import Lease2, LeaseSet2
from i2proxy.i2p.sigtypes import CryptoType

#: A LeaseSet2 without leases still needs an expiry; i2pd's own default lifetime.
EMPTY_LEASESET_LIFETIME = 600


class KeysIdentity:
    """Adapts ``PrivateKeys`` to ``i2proxy.i2cp.session.SessionIdentity``.

    The LeaseSet2 carries an X25519 key first, then the destination's ElGamal key (so
    ElGamal-only peers such as i2pd's default SAM sessions can reach us), and the router gets
    the matching private keys in the same order.

    The X25519 key is fresh for every I2CP session (``new_session``): it lives only in the
    LeaseSet, and a peer that still holds a ratchet session with our previous key (before a
    router restart) keeps answering on that session, which our restarted router cannot
    decrypt ("ECIESx25519 session with static key … already exists" in i2pd's log). A new key
    makes the peer start a new session.
    """

    def __init__(self, keys: PrivateKeys, *, rotate_x25519: bool = True) -> None:
        self.keys = keys
        self.destination_bytes = keys.destination.to_bytes()
        self.rotate_x25519 = rotate_x25519
        self._encryption_keys: tuple[EncryptionKey, ...] = keys.encryption_keys

    def new_session(self) -> None:
        """Called before every CreateSession: pick this session's encryption keys."""
        if not self.rotate_x25519:
            return
        others = tuple(k for k in self.keys.encryption_keys if k.crypto_type != CryptoType.X25519)
        self._encryption_keys = (EncryptionKey.generate(CryptoType.X25519), *others)

    @property
    def encryption_keys(self) -> tuple[EncryptionKey, ...]:
        return self._encryption_keys

    def sign(self, data: bytes) -> bytes:
        return self.keys.sign(data)

    def lease_set2(
        self, leases: tuple[RequestedLease, ...], now_ms: int
    ) -> tuple[bytes, tuple[tuple[int, bytes], ...]]:
        published = now_ms // 1000
        lease2s = [
            Lease2(lease.gateway, lease.tunnel_id, lease.end_date_ms // 1000) for lease in leases
        ]
        expires = max((lease.end for lease in lease2s), default=published + EMPTY_LEASESET_LIFETIME)
        expires = min(max(expires, published), published + 0xFFFF)
        lease_set = LeaseSet2.build(
            self.keys.destination,
            published=published,
            expires=expires,
            leases=lease2s,
            encryption_keys=[(int(k.crypto_type), k.public) for k in self._encryption_keys],
        ).sign(self.keys)
        private_keys = tuple((int(k.crypto_type), k.private) for k in self._encryption_keys)
        return lease_set.to_bytes(), private_keys
