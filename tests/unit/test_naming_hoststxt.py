import pytest

from i2proxy.naming.hoststxt import (
    MAX_LINE_CHARS,
    HostsEntry,
    LineError,
    ParseStats,
    parse_document,
    parse_line,
    signed_message,
    split_lines,
)

DEST = "A" * 516
DEST2 = "B" * 520 + "AA=="


def test_plain_line_parses_and_name_is_lowercased():
    entry = parse_line(f"Stats.I2P={DEST}")
    assert (entry.name, entry.dest, entry.props) == ("stats.i2p", DEST, None)


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "; old comment", "#", "#!"])
def test_blank_and_comment_lines_yield_nothing(line):
    assert parse_line(line) is None


def test_trailing_comment_after_a_lone_hash_is_stripped():
    entry = parse_line(f"a.i2p={DEST} # added by hand")
    assert entry.dest == DEST and entry.props is None


def test_properties_keep_their_order_and_allow_equals_in_values():
    entry = parse_line(f"a.i2p={DEST}#!date=1#sig=abc==#action=update")
    assert list(entry.props.items()) == [("date", "1"), ("sig", "abc=="), ("action", "update")]
    assert entry.action == "update"


def test_command_only_line():
    entry = parse_line(f"#!action=remove#name=a.i2p#dest={DEST}#sig=xyz")
    assert entry.name is None and entry.is_command_only and entry.action == "remove"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("no-equals-sign", "not-name-dest"),
        (f"bad_name.i2p={DEST}", "bad-name"),
        ("a.i2p=short", "bad-destination"),
        ("a.i2p=" + "A" * 515 + "$", "bad-destination"),
        (f"a.i2p={DEST}#!sig=1#sig=2", "duplicate-key"),
        (f"a.i2p={DEST}#!novalue", "bad-properties"),
        (f"a.i2p={DEST}#!k=", "bad-properties"),
        ("#!name=a.i2p#sig=x", "missing-action"),
        ("x" * (MAX_LINE_CHARS + 1), "line-too-long"),
    ],
)
def test_invalid_lines_raise_with_a_countable_reason(line, reason):
    with pytest.raises(LineError) as info:
        parse_line(line)
    assert info.value.reason == reason


def test_documents_with_crlf_bom_and_garbage_are_parsed_line_by_line():
    doc = (
        f"\ufeff# header\r\na.i2p={DEST}\r\n\r\nbroken line\r\nb.i2p={DEST2}\r\nc.i2p=\xff\xfe\r\n"
    ).encode("utf-8", errors="surrogateescape")
    stats = ParseStats()
    entries = list(parse_document(split_lines(doc), stats))
    assert [e.name for e in entries] == ["a.i2p", "b.i2p"]
    assert stats.lines == 6 and stats.comments == 2 and stats.entries == 2
    assert stats.invalid == {"not-name-dest": 1, "bad-destination": 1}


def test_signed_message_sorts_keys_and_drops_sig():
    entry = HostsEntry("a.i2p", DEST, {"sig": "S", "date": "5", "action": "update", "zz": "1"})
    assert signed_message(entry) == f"a.i2p={DEST}#!action=update#date=5#zz=1".encode()


def test_outer_signature_covers_oldsig_and_inner_does_not():
    props = {"action": "changedest", "olddest": DEST2, "oldsig": "O", "sig": "S"}
    entry = HostsEntry("a.i2p", DEST, props)
    assert signed_message(entry) == (
        f"a.i2p={DEST}#!action=changedest#olddest={DEST2}#oldsig=O".encode()
    )
    assert signed_message(entry, inner=True) == (
        f"a.i2p={DEST}#!action=changedest#olddest={DEST2}".encode()
    )


def test_remove_commands_sign_only_the_properties():
    entry = HostsEntry(None, None, {"name": "a.i2p", "action": "remove", "dest": DEST, "sig": "S"})
    assert signed_message(entry) == f"#!action=remove#dest={DEST}#name=a.i2p".encode()


def test_to_line_round_trips():
    line = f"a.i2p={DEST}#!date=1#sig=abc=="
    assert parse_line(line).to_line() == line
