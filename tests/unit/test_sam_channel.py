"""The sans-IO SAM control channel: reply matching, router PINGs; it never PINGs itself."""

from __future__ import annotations

import pytest

from i2proxy.sam import protocol
from i2proxy.sam.channel import ControlChannel, PingReceived, PongReceived, ReplyReceived
from i2proxy.sam.protocol import SAMProtocolError


def hello(channel: ControlChannel, version: str, now: float = 0.0) -> None:
    channel.send_command(protocol.hello(), now)
    assert channel.data_to_send() == b"HELLO VERSION MIN=3.1 MAX=3.3\n"
    channel.receive_data(f"HELLO REPLY RESULT=OK VERSION={version}\n".encode(), now)
    event = channel.next_event()
    assert isinstance(event, ReplyReceived) and event.command == "HELLO VERSION"


def test_hello_reply_sets_the_negotiated_version() -> None:
    channel = ControlChannel()
    hello(channel, "3.1")
    assert channel.version == (3, 1)
    assert not channel.supports_ping


def test_replies_are_matched_to_commands_in_order_even_when_split() -> None:
    channel = ControlChannel()
    hello(channel, "3.3")
    channel.send_command(protocol.naming_lookup("ME"), 1.0)
    channel.send_command(protocol.naming_lookup("x.b32.i2p"), 1.0)
    channel.receive_data(b"NAMING REPLY RESULT=OK NAME=ME VAL", 2.0)
    assert channel.next_event() is None
    channel.receive_data(b"UE=abc\nNAMING REPLY RESULT=KEY_NOT_FOUND NAME=x.b32.i2p\n", 2.0)
    first, second = channel.next_event(), channel.next_event()
    assert isinstance(first, ReplyReceived) and first.reply.params["VALUE"] == "abc"
    assert isinstance(second, ReplyReceived) and second.reply.result == "KEY_NOT_FOUND"
    assert channel.outstanding == 0


def test_i2pd_session_status_error_is_accepted_as_reply_to_a_stream_command() -> None:
    channel = ControlChannel()
    channel.send_command(protocol.stream_connect("s", "d"), 0.0)
    channel.receive_data(b'SESSION STATUS RESULT=I2P_ERROR MESSAGE="Socket already in use"\n', 0)
    event = channel.next_event()
    assert isinstance(event, ReplyReceived)
    with pytest.raises(protocol.I2PError):
        event.reply.raise_for_result()


def test_ok_reply_with_the_wrong_topic_is_a_protocol_error() -> None:
    channel = ControlChannel()
    channel.send_command(protocol.naming_lookup("ME"), 0.0)
    with pytest.raises(SAMProtocolError):
        channel.receive_data(b"STREAM STATUS RESULT=OK\n", 0.0)


def test_unsolicited_reply_is_a_protocol_error() -> None:
    with pytest.raises(SAMProtocolError, match="unsolicited"):
        ControlChannel().receive_data(b"STREAM STATUS RESULT=OK\n", 0.0)


def test_router_ping_is_answered_with_pong_of_the_same_text() -> None:
    channel = ControlChannel()
    hello(channel, "3.2")
    channel.receive_data(b"PING 1234\n", 5.0)
    assert channel.next_event() == PingReceived("1234")
    assert channel.data_to_send() == b"PONG 1234\n"


def test_the_channel_never_pings_on_its_own() -> None:
    """i2pd 2.58 answers PONG and closes the socket: a PING here would end the session."""
    channel = ControlChannel()
    hello(channel, "3.3")
    channel.send_command(protocol.session_create("s"), 1.0)
    channel.receive_data(b"SESSION STATUS RESULT=OK DESTINATION=abc\n", 21.0)
    channel.next_event()
    assert channel.data_to_send().startswith(b"SESSION CREATE")
    assert channel.data_to_send() == b""
    assert not hasattr(channel, "get_timer")


def test_a_stray_pong_is_reported_and_ignored() -> None:
    channel = ControlChannel()
    hello(channel, "3.3")
    channel.receive_data(b"PONG other\n", 1.0)
    assert channel.next_event() == PongReceived("other")
    assert channel.outstanding == 0


def test_command_must_be_one_line() -> None:
    with pytest.raises(ValueError):
        ControlChannel().send_command(b"A B\nC D\n", 0.0)


def test_overlong_reply_line_raises() -> None:
    channel = ControlChannel(max_line=100)
    channel.send_command(protocol.naming_lookup("ME"), 0.0)
    with pytest.raises(protocol.LineTooLong):
        channel.receive_data(b"NAMING REPLY RESULT=OK VALUE=" + b"a" * 200, 0.0)
