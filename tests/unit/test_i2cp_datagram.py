"""I2P datagrams (protocols 17-20): each test is a clause of the datagram spec / proposal 163."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from i2proxy.i2cp.datagram import (
    DATAGRAM_PROTOCOLS,
    MAX_DATAGRAM_SIZE,
    DatagramFormatError,
    DatagramReceiver,
    InvalidDatagramSignature,
    decode_datagram2,
    decode_datagram3,
    decode_repliable,
    encode_datagram,
    encode_datagram2,
    encode_datagram3,
    encode_repliable,
)
from i2proxy.i2cp.payload import Payload, Protocol, decode_payload, encode_payload
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.sigtypes import SigType

ALICE = PrivateKeys.generate()
BOB = PrivateKeys.generate()
NOW = 1_800_000_000.0


def test_datagram1_is_destination_then_signature_over_the_payload_then_payload():
    data = encode_repliable(ALICE, b"ping")
    dest = ALICE.destination.to_bytes()
    assert data.startswith(dest)
    signature = data[len(dest) : len(dest) + 64]
    assert data[len(dest) + 64 :] == b"ping"
    # Ed25519: the signature is over the payload itself, not over a hash of it.
    assert ALICE.destination.verify(b"ping", signature)
    assert decode_repliable(data) == (ALICE.destination, b"ping")


def test_datagram1_overhead_is_at_least_427_bytes():
    assert len(encode_repliable(ALICE, b"")) >= 387 + 40


def test_datagram1_from_a_dsa_sha1_sender_signs_the_sha256_of_the_payload():
    dsa = PrivateKeys.generate(SigType.DSA_SHA1)
    data = encode_repliable(dsa, b"legacy")
    dest = dsa.destination.to_bytes()
    signature = data[len(dest) : len(dest) + 40]
    assert dsa.destination.verify(hashlib.sha256(b"legacy").digest(), signature)
    assert not dsa.destination.verify(b"legacy", signature)
    assert decode_repliable(data) == (dsa.destination, b"legacy")


def test_datagram1_from_an_ecdsa_sender_signs_the_payload():
    ecdsa = PrivateKeys.generate(SigType.ECDSA_SHA256_P256)
    data = encode_repliable(ecdsa, b"x" * 100)
    assert decode_repliable(data)[1] == b"x" * 100


@pytest.mark.parametrize("where", ["payload", "signature", "sender"])
def test_datagram1_with_a_flipped_bit_is_rejected(where):
    data = bytearray(encode_repliable(ALICE, b"payload bytes"))
    dest_len = len(ALICE.destination.to_bytes())
    index = {"payload": len(data) - 1, "signature": dest_len + 3, "sender": 383}[where]  # the key
    data[index] ^= 0x01
    with pytest.raises(DatagramFormatError):  # InvalidDatagramSignature is one
        decode_repliable(bytes(data))


def test_datagram1_claiming_another_sender_is_rejected():
    data = encode_repliable(ALICE, b"hi")
    forged = BOB.destination.to_bytes() + data[len(ALICE.destination.to_bytes()) :]
    with pytest.raises(InvalidDatagramSignature):
        decode_repliable(forged)


@pytest.mark.parametrize("length", [0, 10, 390, 387 + 3 + 63])
def test_truncated_datagram1_is_malformed(length):
    data = encode_repliable(ALICE, b"")
    with pytest.raises(DatagramFormatError):
        decode_repliable(data[:length])


def test_datagram2_signature_covers_the_target_hash_so_it_verifies_only_for_its_target():
    data = encode_datagram2(ALICE, b"to bob", BOB.destination.hash)
    sender, payload, options = decode_datagram2(data, BOB.destination.hash, NOW)
    assert (sender, payload, options) == (ALICE.destination, b"to bob", {})
    with pytest.raises(InvalidDatagramSignature):
        decode_datagram2(data, ALICE.destination.hash, NOW)  # replayed to someone else


def test_datagram2_layout_from_flags_payload_signature():
    data = encode_datagram2(ALICE, b"abc", BOB.destination.hash)
    dest = ALICE.destination.to_bytes()
    assert data.startswith(dest)
    assert data[len(dest) : len(dest) + 2] == b"\x00\x02"  # version 2, no options, not offline
    assert data[len(dest) + 2 : len(dest) + 5] == b"abc"
    signature = data[len(dest) + 5 :]
    assert len(signature) == 64
    assert ALICE.destination.verify(BOB.destination.hash + b"\x00\x02abc", signature)


def test_datagram2_options_are_a_mapping_flagged_0x10():
    data = encode_datagram2(ALICE, b"p", BOB.destination.hash, {"b": "2", "a": "1"})
    dest_len = len(ALICE.destination.to_bytes())
    assert data[dest_len : dest_len + 2] == b"\x00\x12"
    _, payload, options = decode_datagram2(data, BOB.destination.hash, NOW)
    assert (payload, options) == (b"p", {"a": "1", "b": "2"})


def _offline_signed_datagram2(expires: int, transient: PrivateKeys, *, tamper=False) -> bytes:
    """Built by hand from proposal 163: ALICE delegates to ``transient``'s key."""
    block = struct.pack(">IH", expires, int(SigType.ED25519))
    block += transient.destination.signing_public_key
    offline_sig = ALICE.sign(block)
    if tamper:
        offline_sig = bytes([offline_sig[0] ^ 1]) + offline_sig[1:]
    tail = b"\x00\x22" + block + offline_sig + b"offline payload"
    signature = transient.sign(BOB.destination.hash + tail)
    return ALICE.destination.to_bytes() + tail + signature


def test_datagram2_offline_signed_by_a_transient_key_verifies():
    transient = PrivateKeys.generate()
    data = _offline_signed_datagram2(int(NOW) + 3600, transient)
    sender, payload, _ = decode_datagram2(data, BOB.destination.hash, NOW)
    assert (sender, payload) == (ALICE.destination, b"offline payload")


@pytest.mark.parametrize("case", ["expired", "bad offline signature"])
def test_datagram2_offline_block_expired_or_forged_is_rejected(case):
    transient = PrivateKeys.generate()
    expires = int(NOW) - 1 if case == "expired" else int(NOW) + 3600
    data = _offline_signed_datagram2(expires, transient, tamper=case != "expired")
    with pytest.raises(InvalidDatagramSignature):
        decode_datagram2(data, BOB.destination.hash, NOW)


def test_datagram2_with_another_version_is_malformed():
    data = bytearray(encode_datagram2(ALICE, b"x", BOB.destination.hash))
    data[len(ALICE.destination.to_bytes()) + 1] = 0x03
    with pytest.raises(DatagramFormatError):
        decode_datagram2(bytes(data), BOB.destination.hash, NOW)


def test_datagram3_is_sender_hash_flags_payload_unsigned():
    data = encode_datagram3(ALICE.destination.hash, b"cheap")
    assert data == ALICE.destination.hash + b"\x00\x03cheap"
    assert decode_datagram3(data) == (ALICE.destination.hash, b"cheap", {})
    with_options = encode_datagram3(ALICE.destination.hash, b"y", {"k": "v"})
    assert decode_datagram3(with_options) == (ALICE.destination.hash, b"y", {"k": "v"})


def test_datagram3_too_short_or_wrong_version_is_malformed():
    with pytest.raises(DatagramFormatError):
        decode_datagram3(b"\x00" * 33)
    with pytest.raises(DatagramFormatError):
        decode_datagram3(b"\x00" * 32 + b"\x00\x02")


def test_raw_datagram_is_the_payload_itself():
    assert encode_datagram(Protocol.RAW_DATAGRAM, b"raw", signer=ALICE) == b"raw"


def test_datagrams_larger_than_the_bound_are_refused_both_ways():
    with pytest.raises(DatagramFormatError):
        encode_repliable(ALICE, b"\x00" * MAX_DATAGRAM_SIZE)
    receiver = DatagramReceiver(BOB.destination.hash)
    big = Payload(int(Protocol.RAW_DATAGRAM), 0, 0, b"\x00" * (MAX_DATAGRAM_SIZE + 1))
    assert receiver.receive(big, NOW) is None
    assert receiver.stats.malformed == 1


@pytest.mark.parametrize("protocol", sorted(DATAGRAM_PROTOCOLS))
def test_each_type_survives_the_i2cp_frame_with_ports_and_protocol(protocol):
    target = BOB.destination.hash
    data = encode_datagram(protocol, b"\x00\xffdata", signer=ALICE, target_hash=target)
    frame = encode_payload(data, protocol=protocol, src_port=1234, dst_port=53)
    receiver = DatagramReceiver(BOB.destination.hash)
    datagram = receiver.receive(decode_payload(frame), NOW)
    assert datagram is not None
    assert (datagram.protocol, datagram.src_port, datagram.dst_port) == (protocol, 1234, 53)
    assert datagram.payload == b"\x00\xffdata"
    expected_sender = None if protocol == Protocol.RAW_DATAGRAM else ALICE.destination.hash
    assert datagram.sender_hash == expected_sender
    assert datagram.authenticated == (protocol in (17, 19))


def test_receiver_drops_and_counts_forged_and_garbage_datagrams():
    receiver = DatagramReceiver(BOB.destination.hash)
    good = encode_repliable(ALICE, b"ok")
    forged = good[:-1] + b"!"
    for data, protocol in ((good, 17), (forged, 17), (b"\x01" * 50, 17), (b"junk", 19)):
        receiver.receive(Payload(protocol, 0, 0, data), NOW)
    assert receiver.stats.received == 1
    assert receiver.stats.invalid_signature == 1
    assert receiver.stats.malformed == 2


def test_receiver_counts_senders_whose_signature_type_it_cannot_verify():
    # An RSA-2048 sender (type 4): the destination parses, the signature cannot be checked.
    dest = ALICE.destination.to_bytes()[:384]
    excess = b"\x00" * 128  # RSA-2048's key is 256 bytes: 128 in the slot, 128 in the cert
    cert = b"\x05" + struct.pack(">HHH", 4 + 128, int(SigType.RSA_SHA256_2048), 0) + excess
    data = dest + cert + b"\x00" * 256 + b"payload"
    receiver = DatagramReceiver(BOB.destination.hash)
    assert receiver.receive(Payload(17, 0, 0, data), NOW) is None
    assert receiver.stats.unverifiable == 1


def test_a_repliable_datagram_i2pd_sent_verifies_and_names_its_sender():
    captured = json.loads(
        (Path(__file__).parent / "data" / "i2pd_repliable_datagram.json").read_text()
    )
    payload = decode_payload(bytes.fromhex(captured["frame_hex"]))
    assert (payload.protocol, payload.src_port, payload.dst_port) == (17, 8008, 40000)
    receiver = DatagramReceiver(hashlib.sha256(b"us").digest())
    datagram = receiver.receive(payload, NOW)
    assert datagram is not None and datagram.authenticated
    assert datagram.payload == captured["payload"].encode()
    assert datagram.sender is not None and datagram.sender.b32 == captured["sender_b32"]
    # One flipped payload bit and i2pd's signature no longer verifies.
    forged = Payload(17, 8008, 40000, payload.data[:-1] + bytes([payload.data[-1] ^ 1]))
    assert receiver.receive(forged, NOW) is None and receiver.stats.invalid_signature == 1
