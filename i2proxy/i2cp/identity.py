"""Our keys as the I2CP session needs them: destination bytes, signer, LeaseSet2 builder."""

from __future__ import annotations

from i2proxy.i2cp.messages import RequestedLease
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.leaseset import Lease2, LeaseSet2

#: A LeaseSet2 without leases still needs an expiry; i2pd's own default lifetime.
EMPTY_LEASESET_LIFETIME = 600


class KeysIdentity:
    """Adapts ``PrivateKeys`` to ``i2proxy.i2cp.session.SessionIdentity``.

    The LeaseSet2 carries every encryption key we hold, in our order of preference (X25519
    first, then ElGamal so ElGamal-only peers such as i2pd's default SAM sessions can reach us),
    and the router gets every matching private key, in the same order.
    """

    def __init__(self, keys: PrivateKeys) -> None:
        self.keys = keys
        self.destination_bytes = keys.destination.to_bytes()

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
            encryption_keys=[(int(k.crypto_type), k.public) for k in self.keys.encryption_keys],
        ).sign(self.keys)
        private_keys = tuple((int(k.crypto_type), k.private) for k in self.keys.encryption_keys)
        return lease_set.to_bytes(), private_keys
