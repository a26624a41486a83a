"""SAM v3 line codec: command building, quoting, reply parsing, RESULT codes, bounds."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from i2proxy.sam import protocol
from i2proxy.sam.protocol import (
    LineReader,
    LineTooLong,
    Reply,
    SAMProtocolError,
    parse_reply,
    split_params,
)

# i2pd 2.45.1 replies, verbatim from libi2pd_client/SAM.h of that tag.
I2PD_REPLIES = {
    b"HELLO REPLY RESULT=OK VERSION=3.1\n": ("HELLO", "REPLY", {"RESULT": "OK", "VERSION": "3.1"}),
    b"SESSION STATUS RESULT=DUPLICATED_ID\n": ("SESSION", "STATUS", {"RESULT": "DUPLICATED_ID"}),
    b'SESSION STATUS RESULT=I2P_ERROR MESSAGE="Socket already in use"\n': (
        "SESSION",
        "STATUS",
        {"RESULT": "I2P_ERROR", "MESSAGE": "Socket already in use"},
    ),
    b"STREAM STATUS RESULT=CANT_REACH_PEER\n": ("STREAM", "STATUS", {"RESULT": "CANT_REACH_PEER"}),
    b"NAMING REPLY RESULT=KEY_NOT_FOUND NAME=foo.i2p\n": (
        "NAMING",
        "REPLY",
        {"RESULT": "KEY_NOT_FOUND", "NAME": "foo.i2p"},
    ),
    b"DEST REPLY PUB=abc~- PRIV=def==\n": ("DEST", "REPLY", {"PUB": "abc~-", "PRIV": "def=="}),
}


@pytest.mark.parametrize("line", list(I2PD_REPLIES))
def test_i2pd_reply_lines_parse_to_topic_kind_and_params(line: bytes) -> None:
    topic, kind, params = I2PD_REPLIES[line]
    reply = parse_reply(line)
    assert (reply.topic, reply.kind, dict(reply.params)) == (topic, kind, params)


def test_crlf_line_ending_is_accepted() -> None:
    assert parse_reply(b"STREAM STATUS RESULT=OK\r\n").ok


def test_base64_padding_stays_in_the_value() -> None:
    """The first '=' separates key and value; I2P base64 padding must survive."""
    reply = parse_reply(b"SESSION STATUS RESULT=OK DESTINATION=AbC~-==\n")
    assert reply.params["DESTINATION"] == "AbC~-=="


def test_quoted_message_with_escapes() -> None:
    reply = parse_reply(b'STREAM STATUS RESULT=I2P_ERROR MESSAGE="a \\"b\\" \\\\ c"\n')
    assert reply.message == 'a "b" \\ c'


def test_key_without_value_has_empty_value() -> None:
    assert split_params("SILENT A=b") == {"SILENT": "", "A": "b"}


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"HTTP/1.1 200 OK\n",
        b"STREAM\n",
        b"STREAM RESULT=OK\n",
        b'STREAM STATUS MESSAGE="unterminated\n',
        b'STREAM STATUS MESSAGE="x"y\n',
        b"STREAM STATUS =v\n",
        b"\xff\xfe STATUS\n",
        b"STREAM STATUS A=b\x00\n",
    ],
)
def test_non_sam_lines_raise_protocol_error(line: bytes) -> None:
    with pytest.raises(SAMProtocolError):
        parse_reply(line)


def test_ping_and_pong_carry_free_text() -> None:
    assert parse_reply(b"PING 12 34\n") == Reply("PING", "", {}, "12 34")
    assert parse_reply(b"PONG abc\n").ok


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ("CANT_REACH_PEER", protocol.CantReachPeer),
        ("PEER_NOT_FOUND", protocol.PeerNotFound),
        ("INVALID_KEY", protocol.InvalidKey),
        ("INVALID_ID", protocol.InvalidId),
        ("TIMEOUT", protocol.SAMTimeout),
        ("DUPLICATED_ID", protocol.DuplicatedId),
        ("DUPLICATED_DEST", protocol.DuplicatedDest),
        ("I2P_ERROR", protocol.I2PError),
        ("KEY_NOT_FOUND", protocol.KeyNotFound),
        ("NOVERSION", protocol.NoVersion),
        ("ALREADY_ACCEPTING", protocol.AlreadyAccepting),
        ("LEASESET_NOT_FOUND", protocol.LeaseSetNotFound),
    ],
)
def test_each_result_code_raises_its_exception(result: str, error: type) -> None:
    reply = parse_reply(f'STREAM STATUS RESULT={result} MESSAGE="why"\n'.encode())
    with pytest.raises(error) as info:
        reply.raise_for_result()
    assert info.value.result == result
    assert info.value.message == "why"
    assert result in str(info.value) and "why" in str(info.value)


def test_unknown_result_code_is_a_plain_sam_error() -> None:
    with pytest.raises(protocol.SAMError) as info:
        parse_reply(b"STREAM STATUS RESULT=NEW_THING\n").raise_for_result()
    assert type(info.value) is protocol.SAMError
    assert info.value.result == "NEW_THING"


def test_reply_without_result_is_an_error_except_dest_and_pong() -> None:
    assert not parse_reply(b"STREAM STATUS\n").ok
    assert parse_reply(b"DEST REPLY PUB=a PRIV=b\n").ok


# --------------------------------------------------------------------------- building


def test_hello_asks_for_3_1_to_3_3() -> None:
    assert protocol.hello() == b"HELLO VERSION MIN=3.1 MAX=3.3\n"


def test_session_create_passes_options_through() -> None:
    line = protocol.session_create(
        "i2proxy-1",
        "TRANSIENT",
        signature_type="EdDSA_SHA512_Ed25519",
        options={"inbound.length": "1", "i2cp.leaseSetEncType": "4,0"},
    )
    assert line == (
        b"SESSION CREATE STYLE=STREAM ID=i2proxy-1 DESTINATION=TRANSIENT "
        b"SIGNATURE_TYPE=EdDSA_SHA512_Ed25519 inbound.length=1 i2cp.leaseSetEncType=4,0\n"
    )


def test_option_may_not_override_a_session_parameter() -> None:
    with pytest.raises(ValueError, match="collides"):
        protocol.session_create("x", options={"id": "y"})


def test_stream_connect_ports_only_when_given() -> None:
    assert protocol.stream_connect("s", "a.b32.i2p") == (
        b"STREAM CONNECT ID=s DESTINATION=a.b32.i2p SILENT=false\n"
    )
    assert protocol.stream_connect("s", "d", to_port=80, from_port=0).endswith(
        b"FROM_PORT=0 TO_PORT=80\n"
    )
    with pytest.raises(ValueError):
        protocol.stream_connect("s", "d", to_port=70000)


def test_ping_always_has_a_space_because_i2pd_drops_a_bare_ping() -> None:
    assert protocol.ping() == b"PING \n"
    assert protocol.ping("x") == b"PING x\n"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_values_with_line_breaks_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        protocol.naming_lookup(bad)


@pytest.mark.parametrize("key", ["", "A B", "A=B", 'A"', "A\n"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        protocol.build_command(("X", "Y"), {key: "v"})


def test_command_longer_than_i2pd_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        protocol.naming_lookup("a" * protocol.MAX_COMMAND_LENGTH)


def test_values_are_bare_unless_they_need_quotes() -> None:
    assert protocol.quote_value("4,0") == "4,0"
    assert protocol.quote_value("a=b==") == "a=b=="
    assert protocol.quote_value("") == '""'
    assert protocol.quote_value('say "hi"') == '"say \\"hi\\""'


# Values a SAM line can carry: printable text without line breaks or NUL.
sam_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r\0"),
    max_size=60,
) | st.text(alphabet=' \t"\\=abc', max_size=20)
sam_keys = st.text(
    alphabet=st.characters(
        whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="._-", max_codepoint=127
    ),
    min_size=1,
    max_size=20,
)


@settings(deadline=None)
@given(st.dictionaries(sam_keys, sam_values, max_size=8))
@example({"MESSAGE": 'a "quoted" \\ value', "X": ""})
def test_built_params_parse_back_to_the_same_mapping(params: dict[str, str]) -> None:
    line = protocol.build_command(("STREAM", "STATUS"), params)
    reply = parse_reply(line)
    assert (reply.topic, reply.kind) == ("STREAM", "STATUS")
    assert dict(reply.params) == params


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_fails_with_anything_but_protocol_error(data: bytes) -> None:
    with contextlib.suppress(SAMProtocolError):
        parse_reply(data)


@settings(deadline=None)
@given(st.text(max_size=200))
def test_param_splitter_raises_only_protocol_error(text: str) -> None:
    with contextlib.suppress(SAMProtocolError):
        split_params(text)


# --------------------------------------------------------------------------- line splitting


@settings(deadline=None)
@given(
    st.lists(st.binary(max_size=50).filter(lambda b: b"\n" not in b), max_size=10),
    st.integers(min_value=1, max_value=17),
)
def test_line_reader_returns_lines_whatever_the_chunking(lines: list[bytes], chunk: int) -> None:
    data = b"".join(line + b"\n" for line in lines) + b"rest"
    reader = LineReader(max_length=64)
    out: list[bytes] = []
    for i in range(0, len(data), chunk):
        out += reader.feed(data[i : i + chunk])
    assert out == lines
    assert reader.take_rest() == b"rest"


def test_line_reader_bounds_a_line_without_newline() -> None:
    reader = LineReader(max_length=10)
    reader.feed(b"0123456789")
    with pytest.raises(LineTooLong):
        reader.feed(b"x")


def test_line_reader_bounds_a_long_complete_line() -> None:
    with pytest.raises(LineTooLong):
        LineReader(max_length=10).feed(b"0123456789AB\n")


def test_reply_line_over_the_bound_is_refused() -> None:
    with pytest.raises(LineTooLong):
        parse_reply(b"DEST REPLY PUB=" + b"a" * protocol.MAX_REPLY_LENGTH + b"\n")


@pytest.mark.parametrize(
    ("text", "version"), [("3.1", (3, 1)), ("3.3", (3, 3)), ("3", (3, 0)), ("10.12", (10, 12))]
)
def test_versions_parse(text: str, version: tuple[int, int]) -> None:
    assert protocol.parse_version(text) == version


@pytest.mark.parametrize("text", ["", "x", "3.", "3.1.2", "-3.1", "3.x", "1234.1"])
def test_bad_versions_raise(text: str) -> None:
    with pytest.raises(SAMProtocolError):
        protocol.parse_version(text)
