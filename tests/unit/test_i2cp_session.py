"""The sans-IO I2CP session, driven message by message as i2pd 2.45.1 answers."""

from __future__ import annotations

import os

import pytest

from i2proxy.i2cp import events as ev
from i2proxy.i2cp import messages as m
from i2proxy.i2cp.payload import decode_payload, encode_payload
from i2proxy.i2cp.session import I2CPSession, State

DEST = os.urandom(384) + bytes.fromhex("05000400070000")
NOW = 1_700_000_000.0


class FakeIdentity:
    """Stands in for the keys: records what the session asked it to sign."""

    destination_bytes = DEST

    def __init__(self) -> None:
        self.signed: list[bytes] = []
        self.lease_requests: list[tuple[tuple[m.RequestedLease, ...], int]] = []
        self.sessions = 0

    def new_session(self) -> None:
        self.sessions += 1

    def sign(self, data: bytes) -> bytes:
        self.signed.append(data)
        return b"S" * 64

    def lease_set2(self, leases, now_ms):
        self.lease_requests.append((leases, now_ms))
        return b"LS2", ((4, b"x" * 32), (0, b"e" * 256))


def router_says(session: I2CPSession, *messages: m.Message, now: float = NOW) -> list[ev.Event]:
    session.receive_data(b"".join(m.encode_message(msg) for msg in messages), now)
    events = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def sent(session: I2CPSession) -> list[m.Message]:
    data = session.data_to_send()
    if data.startswith(m.PROTOCOL_BYTE):
        data = data[1:]
    return [frame.decode() for frame in m.FrameDecoder().feed(data)]


def created_session(options=None) -> tuple[I2CPSession, FakeIdentity]:
    identity = FakeIdentity()
    session = I2CPSession(identity, options or {"inbound.length": "1"})
    session.connect(NOW)
    session.data_to_send()
    router_says(session, m.SetDate(int(NOW * 1000) + 5000, m.CLIENT_VERSION))
    session.data_to_send()
    router_says(session, m.SessionStatus(0x4242, m.SessionStatusCode.CREATED))
    return session, identity


def test_handshake_starts_with_protocol_byte_then_get_date():
    session = I2CPSession(FakeIdentity())
    session.connect(NOW)
    data = session.data_to_send()
    assert data[:1] == b"\x2a"
    assert session.identity.sessions == 1  # per-session keys were chosen first
    assert m.FrameDecoder().feed(data[1:])[0].decode() == m.GetDate(m.CLIENT_VERSION)
    assert session.state is State.HANDSHAKE


def test_set_date_triggers_create_session_signed_in_router_time():
    identity = FakeIdentity()
    session = I2CPSession(identity, {"outbound.length": "1", "inbound.length": "1"})
    session.connect(NOW)
    session.data_to_send()
    router_date = int(NOW * 1000) + 5000  # router clock 5 s ahead of ours
    events = router_says(session, m.SetDate(router_date, "0.9.62"))
    assert events == [ev.RouterDateReceived(router_date, "0.9.62")]
    (create,) = sent(session)
    assert isinstance(create, m.CreateSession)
    assert create.config.date_ms == router_date
    assert create.config.destination == DEST
    assert create.config.options == {"inbound.length": "1", "outbound.length": "1"}
    assert identity.signed == [m.CreateSession(create.config).encode_body()[:-64]]
    assert session.state is State.CREATING


def test_session_status_created_gives_session_id():
    session, _ = created_session()
    assert session.session_id == 0x4242
    assert session.state is State.CREATED


@pytest.mark.parametrize("status", [m.SessionStatusCode.INVALID, m.SessionStatusCode.REFUSED])
def test_rejected_create_session_closes(status):
    session = I2CPSession(FakeIdentity())
    session.connect(NOW)
    router_says(session, m.SetDate(int(NOW * 1000)))
    events = router_says(session, m.SessionStatus(0x1111, status))
    assert events == [ev.SessionRejected(status)]
    assert session.state is State.CLOSED


def test_variable_lease_set_request_is_answered_at_once_with_both_private_keys():
    session, identity = created_session()
    lease = m.RequestedLease(b"G" * 32, 7, int(NOW * 1000) + 600_000)
    events = router_says(session, m.RequestVariableLeaseSet(0x4242, (lease,)))
    assert events == [ev.LeaseSetCreated((lease,), first=True)]
    expected = m.CreateLeaseSet2(0x4242, b"LS2", ((4, b"x" * 32), (0, b"e" * 256)))
    assert session.data_to_send() == m.encode_message(expected)
    assert identity.lease_requests == [((lease,), int(NOW * 1000) + 5000)]
    assert session.state is State.READY
    events = router_says(session, m.RequestVariableLeaseSet(0x4242, (lease, lease)))
    assert events == [ev.LeaseSetCreated((lease, lease), first=False)]


def test_lookup_matches_reply_by_request_id_and_times_out_by_timer():
    session, _ = created_session()
    first = session.lookup(NOW, hash=b"h" * 32, timeout=5)
    second = session.lookup(NOW, name="demo.i2p", timeout=2)
    assert [type(x) for x in sent(session)] == [m.HostLookup, m.HostLookup]
    assert session.get_timer() == NOW + 2
    events = router_says(session, m.HostReply(0x4242, first, 0, DEST))
    assert events == [ev.LookupCompleted(first, DEST, 0)]
    session.handle_timer(NOW + 2)
    assert session.next_event() == ev.LookupCompleted(second, None, None)
    assert session.get_timer() is None
    # A late reply after our deadline is not reported twice.
    assert router_says(session, m.HostReply(0x4242, second, 1)) == []


def test_lookup_before_session_uses_no_session_id():
    session = I2CPSession(FakeIdentity())
    session.connect(NOW)
    session.data_to_send()
    session.lookup(NOW, hash=b"h" * 32)
    (lookup,) = sent(session)
    assert lookup.session_id == m.NO_SESSION


def test_send_payload_frames_and_uses_nonce_zero_unless_tracked():
    session, _ = created_session()
    nonce = session.send_payload(DEST, b"data", NOW, protocol=6, src_port=1, dst_port=2)
    assert nonce == 0
    (message,) = sent(session)
    assert isinstance(message, m.SendMessageExpires)
    assert message.nonce == 0 and message.destination == DEST
    payload = decode_payload(message.payload)
    assert (payload.protocol, payload.src_port, payload.dst_port, payload.data) == (
        6,
        1,
        2,
        b"data",
    )
    assert message.expiration_ms == int(NOW * 1000) + 5000 + 60_000


def test_tracked_message_status_until_final():
    session, _ = created_session()
    nonce = session.send_payload(DEST, b"x", NOW, protocol=6, track=True)
    assert nonce != 0
    events = router_says(
        session,
        m.MessageStatus(0x4242, 1, m.MessageStatusCode.ACCEPTED, 0, nonce),
        m.MessageStatus(0x4242, 1, m.MessageStatusCode.NO_LEASESET, 0, nonce),
        m.MessageStatus(0x4242, 1, m.MessageStatusCode.NO_LEASESET, 0, nonce),
    )
    assert events == [
        ev.MessageStatusReceived(nonce, 1, final=False),
        ev.MessageStatusReceived(nonce, 21, final=True),
    ]


def test_messages_awaiting_a_status_are_bounded_oldest_forgotten():
    from i2proxy.i2cp.session import MAX_PENDING_NONCES

    session, _ = created_session()
    first = session.send_payload(DEST, b"x", NOW, protocol=6, track=True)
    for _ in range(MAX_PENDING_NONCES):
        last = session.send_payload(DEST, b"x", NOW, protocol=6, track=True)
    events = router_says(
        session,
        m.MessageStatus(0x4242, 1, m.MessageStatusCode.GUARANTEED_SUCCESS, 0, first),
        m.MessageStatus(0x4242, 2, m.MessageStatusCode.GUARANTEED_SUCCESS, 0, last),
    )
    assert events == [ev.MessageStatusReceived(last, 4, final=True)]


def test_incoming_payload_is_unframed_and_bad_frames_are_counted_not_fatal():
    session, _ = created_session()
    good = encode_payload(b"packet", protocol=6, src_port=9, dst_port=80)
    events = router_says(
        session,
        m.MessagePayload(0x4242, 1, b"garbage-not-gzip-at-all"),
        m.MessagePayload(0x4242, 2, good),
    )
    assert isinstance(events[0], ev.MessageDropped)
    assert events[1] == ev.PayloadReceived(decode_payload(good), 2)
    assert session.dropped_messages == 1
    assert session.state is State.CREATED


def test_malformed_message_is_dropped_and_session_continues():
    session, _ = created_session()
    bad = b"\x00\x00\x00\x01" + bytes([m.MessageType.SESSION_STATUS]) + b"\x00"
    session.receive_data(bad + m.encode_message(m.BandwidthLimits((1,) * 16)), NOW)
    first, second = session.next_event(), session.next_event()
    assert isinstance(first, ev.MessageDropped)
    assert second == ev.BandwidthLimitsReceived((1,) * 16)


def test_oversized_frame_terminates_and_fails_pending_lookups():
    session, _ = created_session()
    request_id = session.lookup(NOW, hash=b"h" * 32)
    session.receive_data(b"\x7f\xff\xff\xff\x1f", NOW)
    events = [session.next_event(), session.next_event()]
    assert events[0] == ev.LookupCompleted(request_id, None, None)
    assert isinstance(events[1], ev.ConnectionTerminated)
    assert session.state is State.CLOSED


def test_disconnect_message_terminates():
    session, _ = created_session()
    events = router_says(session, m.Disconnect("shutting down"))
    assert events == [ev.ConnectionTerminated("router disconnected: shutting down")]


def test_reconfigure_and_destroy():
    session, identity = created_session()
    session.reconfigure({"inbound.quantity": "3"}, NOW)
    (message,) = sent(session)
    assert isinstance(message, m.ReconfigureSession)
    assert message.config.options["inbound.quantity"] == "3"
    assert identity.signed[-1] == message.encode_body()[2:-64]
    assert router_says(session, m.SessionStatus(0x4242, 2)) == [ev.SessionReconfigured(True)]
    session.destroy()
    assert sent(session) == [m.DestroySession(0x4242)]
    assert router_says(session, m.SessionStatus(0x4242, 0)) == [ev.SessionDestroyed()]
    assert session.state is State.CLOSED


def test_republish_resends_a_freshly_signed_lease_set_only_when_ready():
    session, identity = created_session()
    assert session.republish_lease_set(NOW) is False  # no leases yet
    assert session.data_to_send() == b""
    lease = m.RequestedLease(b"G" * 32, 7, int(NOW * 1000) + 600_000)
    router_says(session, m.RequestVariableLeaseSet(0x4242, (lease,)))
    session.data_to_send()
    assert session.republish_lease_set(NOW + 3) is True
    expected = m.CreateLeaseSet2(0x4242, b"LS2", ((4, b"x" * 32), (0, b"e" * 256)))
    assert session.data_to_send() == m.encode_message(expected)
    assert identity.lease_requests[-1] == ((lease,), int((NOW + 3) * 1000) + 5000)


def test_announced_message_is_fetched_and_confirmed_as_in_slow_receive_mode():
    """Java without i2cp.fastReceive: AVAILABLE → ReceiveMessageBegin → payload → End."""
    session, _ = created_session()
    tracked = session.send_payload(DEST, b"x", NOW, protocol=6, track=True)
    session.data_to_send()
    # Java announces with a nonce of its own, which may equal one of ours: not a send status.
    events = router_says(
        session, m.MessageStatus(0x4242, 77, m.MessageStatusCode.AVAILABLE, 120, tracked)
    )
    assert events == []
    assert sent(session) == [m.ReceiveMessageBegin(0x4242, 77)]
    good = encode_payload(b"packet", protocol=6)
    events = router_says(session, m.MessagePayload(0x4242, 77, good))
    assert events == [ev.PayloadReceived(decode_payload(good), 77)]
    assert sent(session) == [m.ReceiveMessageEnd(0x4242, 77)]
    assert session.announced_messages == 1
    # A pushed (fast-receive) payload is not confirmed; another session's announcement is ignored.
    router_says(session, m.MessagePayload(0x4242, 78, good))
    router_says(session, m.MessageStatus(0x9999, 79, m.MessageStatusCode.AVAILABLE, 10, 0))
    assert sent(session) == []


def test_announced_messages_awaiting_their_payload_are_bounded():
    from i2proxy.i2cp.session import MAX_REQUESTED_MESSAGES

    session, _ = created_session()
    for message_id in range(MAX_REQUESTED_MESSAGES + 5):
        router_says(session, m.MessageStatus(0x4242, message_id, 0, 10, 0))
    assert len(sent(session)) == MAX_REQUESTED_MESSAGES + 5
    assert len(session._requested) == MAX_REQUESTED_MESSAGES
    router_says(session, m.MessagePayload(0x4242, 0, encode_payload(b"p", protocol=6)))
    assert sent(session) == []  # forgotten: the oldest went first
