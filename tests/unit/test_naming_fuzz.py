"""Whatever a feed contains, the parser answers with an entry, nothing, or a LineError."""

from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.naming.hoststxt import HostsEntry, LineError, parse_document, parse_line, split_lines

_ALPHABET = st.sampled_from([*list("ab.-=#!;~ \t\r\x00é\u2028A0z9"), "i2p", "#!sig=", "action="])
lines = st.lists(_ALPHABET, max_size=80).map("".join)


@settings(max_examples=500, deadline=None)
@given(lines)
def test_parse_line_never_raises_anything_but_line_error(line):
    try:
        result = parse_line(line)
    except LineError as exc:
        assert exc.reason
        return
    assert result is None or isinstance(result, HostsEntry)
    if isinstance(result, HostsEntry) and result.name is not None:
        assert result.name == result.name.lower() and result.name.endswith(".i2p")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_as_a_document(data):
    entries = list(parse_document(split_lines(data)))
    assert all(isinstance(e, HostsEntry) for e in entries)
