"""The LeaseSet2 we hand the router: signed over 0x03 ‖ body, both keys, both private keys."""

from __future__ import annotations

import pytest

from i2proxy.i2cp import messages as m
from i2proxy.i2cp.identity import KeysIdentity
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.leaseset import LeaseSet2
from i2proxy.i2p.sigtypes import CryptoType


@pytest.fixture(scope="module")
def identity() -> KeysIdentity:
    return KeysIdentity(PrivateKeys.generate())


def test_lease_set2_verifies_and_lists_x25519_then_elgamal(identity):
    now_ms = 1_700_000_000_500
    leases = (
        m.RequestedLease(b"A" * 32, 1, now_ms + 600_000),
        m.RequestedLease(b"B" * 32, 2, now_ms + 300_000),
    )
    raw, private_keys = identity.lease_set2(leases, now_ms)
    lease_set = LeaseSet2.from_bytes(raw)
    assert lease_set.verify()
    assert lease_set.destination == identity.keys.destination
    assert lease_set.published == now_ms // 1000
    assert lease_set.expires == (now_ms + 600_000) // 1000
    assert [(x.gateway, x.tunnel_id) for x in lease_set.leases] == [(b"A" * 32, 1), (b"B" * 32, 2)]
    assert [k.crypto_type for k in lease_set.encryption_keys] == [
        CryptoType.X25519,
        CryptoType.ELGAMAL,
    ]
    assert [t for t, _ in private_keys] == [4, 0]
    assert [len(k) for _, k in private_keys] == [32, 256]
    public = {k.crypto_type: k.key for k in lease_set.encryption_keys}
    for key in identity.encryption_keys:
        assert public[key.crypto_type] == key.public
    assert public[CryptoType.ELGAMAL] == identity.keys.destination.encryption_public_key


def test_create_lease_set2_message_walks_the_real_lease_set(identity):
    raw, private_keys = identity.lease_set2((m.RequestedLease(b"G" * 32, 9, 10**12),), 10**12)
    message = m.CreateLeaseSet2(7, raw, private_keys)
    decoded = m.FrameDecoder().feed(m.encode_message(message))[0].decode()
    assert decoded == message


def test_session_signature_verifies_with_destination(identity):
    config = m.SessionConfig.build(identity.destination_bytes, {"a": "b"}, 123, identity.sign)
    signed = m.SessionConfig.signed_bytes(config.destination, config.options, config.date_ms)
    assert identity.keys.destination.verify(signed, config.signature)


def test_empty_lease_list_still_gives_a_valid_expiry(identity):
    raw, _ = identity.lease_set2((), 10**12)
    lease_set = LeaseSet2.from_bytes(raw)
    assert lease_set.expires > lease_set.published


def test_each_session_gets_a_fresh_x25519_key_and_keeps_the_elgamal_key():
    identity = KeysIdentity(PrivateKeys.generate())
    identity.new_session()
    first = identity.encryption_keys
    identity.new_session()
    second = identity.encryption_keys
    assert first[0].crypto_type == second[0].crypto_type == CryptoType.X25519
    assert first[0].private != second[0].private
    assert first[1] == second[1] == identity.keys.elgamal
    _, private_keys = identity.lease_set2((), 10**12)
    assert private_keys[0] == (4, second[0].private)
