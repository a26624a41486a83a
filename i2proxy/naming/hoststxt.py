"""The hosts.txt format and its Proposal 112 extension, as a sans-IO codec.

Line forms (one per line, LF or CRLF):

- ``name=b64dest`` — a plain entry; text after a lone ``#`` is a comment;
- ``name=b64dest#!k1=v1#k2=v2`` — an entry with properties (signed commands, Proposal 112);
- ``#!k1=v1#k2=v2`` — a command without an entry (``remove``, ``removeall``);
- blank lines, and lines starting with ``#`` (not ``#!``) or ``;`` — comments.

Nothing here touches a file, a socket or a clock; signature checks live in ``signing.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from i2proxy.naming.errors import InvalidName
from i2proxy.naming.names import validate_hostname

#: Longest accepted line. The longest legitimate line (addsubdomain: two 616-char destinations,
#: two signatures of up to 176 chars, names and keys) stays far below this.
MAX_LINE_CHARS = 4096
#: Most lines read from one document: a 512 MiB book of ordinary ~550-byte lines has ~1 million;
#: the rest of a longer document (a feed of empty lines) is not parsed.
MAX_LINES = 2_000_000
#: Most properties on one line; the spec defines nine keys, extra ones are allowed.
MAX_PROPS = 32
#: Destination base64 length bounds (387..~460 bytes, as Java I2P checks them).
MIN_DEST_CHARS = 516
MAX_DEST_CHARS = 616

PROPS_SEPARATOR = "#!"
PROP_SEPARATOR = "#"

ACTIONS = frozenset(
    {
        "adddest",
        "addname",
        "addsubdomain",
        "changedest",
        "changename",
        "remove",
        "removeall",
        "update",
    }
)

_B64_DEST = re.compile(r"[A-Za-z0-9~\-]+={0,2}")


class LineError(ValueError):
    """A line that is not valid hosts.txt; ``reason`` is a short stable key for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, eq=False)
class HostsEntry:
    """One parsed non-comment line."""

    #: Lower-cased host name; None on a command-only (``#!...``) line.
    name: str | None
    #: I2P-base64 destination as written; None on a command-only line.
    dest: str | None
    #: Properties after ``#!`` in file order; None on a plain ``name=dest`` line.
    props: Mapping[str, str] | None = None

    @property
    def action(self) -> str | None:
        """The Proposal 112 action; None for a plain line or a signed plain add."""
        return self.props.get("action") if self.props else None

    @property
    def is_command_only(self) -> bool:
        return self.name is None

    def to_line(self) -> str:
        """Serialize back (without newline), properties in their original order."""
        out = f"{self.name}={self.dest}" if self.name is not None else ""
        if self.props:
            out += PROPS_SEPARATOR + PROP_SEPARATOR.join(f"{k}={v}" for k, v in self.props.items())
        return out


def check_dest_shape(dest: str) -> None:
    """Cheap syntactic check of a base64 destination (full parsing happens on merge)."""
    if not MIN_DEST_CHARS <= len(dest) <= MAX_DEST_CHARS:
        raise LineError("bad-destination", f"length {len(dest)}")
    if _B64_DEST.fullmatch(dest) is None or len(dest) % 4 == 1:
        raise LineError("bad-destination", "not I2P base64")


def parse_props(text: str) -> dict[str, str]:
    """Parse ``k1=v1#k2=v2``: keys and values non-empty, no duplicate key."""
    props: dict[str, str] = {}
    text = text.strip()
    if not text:
        raise LineError("bad-properties", "empty property list")
    parts = text.split(PROP_SEPARATOR)
    if len(parts) > MAX_PROPS:
        raise LineError("bad-properties", f"more than {MAX_PROPS} properties")
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key or not value:
            raise LineError("bad-properties", f"no value in {part[:40]!r}")
        if key in props:
            raise LineError("duplicate-key", key)
        props[key] = value
    return props


def parse_line(line: str) -> HostsEntry | None:
    """Parse one line. Returns None for blank and comment lines; raises LineError otherwise."""
    if len(line) > MAX_LINE_CHARS:
        raise LineError("line-too-long", f"{len(line)} characters")
    line = line.strip()
    if not line or line.startswith(";"):
        return None
    hash_at = line.find("#")
    props: dict[str, str] | None = None
    if hash_at >= 0:
        is_props = line.startswith(PROPS_SEPARATOR, hash_at) and hash_at + 2 < len(line)
        if hash_at == 0:
            if not is_props:
                return None
            props = parse_props(line[2:])
            if "action" not in props:
                raise LineError("missing-action", "command line without action")
            return HostsEntry(None, None, props)
        if is_props:
            props = parse_props(line[hash_at + 2 :])
        line = line[:hash_at]
    name, eq, dest = line.partition("=")
    name, dest = name.strip(), dest.strip()
    if not eq or not name or not dest:
        raise LineError("not-name-dest", line[:60])
    try:
        name = validate_hostname(name)
    except InvalidName as exc:
        raise LineError("bad-name", exc.reason) from None
    check_dest_shape(dest)
    return HostsEntry(name, dest, props)


def format_line(name: str, dest: str, props: Mapping[str, str] | None = None) -> str:
    """``name=dest`` plus ``#!k=v#...`` when properties are given (no newline)."""
    return HostsEntry(name, dest, dict(props) if props else None).to_line()


def signed_message(entry: HostsEntry, *, inner: bool = False) -> bytes:
    """The exact bytes a ``sig`` (or, with ``inner=True``, an ``oldsig``) signs.

    Per the subscription spec: drop ``sig`` (and ``oldsig`` for the inner signature), write
    ``name=dest`` for entry lines, then ``#!`` and the remaining properties sorted by key as
    ``k=v`` joined by ``#``; UTF-8, no newline. Command-only lines (remove, removeall) sign just
    the ``#!...`` part. The outer ``sig`` therefore covers ``oldsig``.
    """
    props = dict(entry.props or {})
    props.pop("sig", None)
    if inner:
        props.pop("oldsig", None)
    out = f"{entry.name}={entry.dest}" if entry.name is not None else ""
    if props:
        out += PROPS_SEPARATOR + PROP_SEPARATOR.join(
            f"{k}={props[k]}" for k in sorted(props, key=lambda k: k.encode())
        )
    return out.encode("utf-8")


def sign_entry_props(
    name: str | None, dest: str | None, props: Mapping[str, str], *, inner: bool = False
) -> bytes:
    """Bytes to sign for a line being built (``props`` without the signature being made)."""
    return signed_message(HostsEntry(name, dest, dict(props)), inner=inner)


@dataclass
class ParseStats:
    """What one source contained: counted per kind, invalid lines per reason."""

    lines: int = 0
    entries: int = 0
    comments: int = 0
    invalid: Counter[str] = field(default_factory=Counter)

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())


#: Bytes of one line that are decoded: more than enough to fail ``MAX_LINE_CHARS`` (a UTF-8
#: character is at most 4 bytes), so a 16 MiB line never becomes a 16 MiB string.
_MAX_LINE_BYTES = 4 * MAX_LINE_CHARS + 4
#: Lines are split a block at a time (C speed, bounded memory).
_BLOCK = 64 * 1024


def split_lines(data: bytes | str) -> Iterator[str]:
    """The lines of a document (LF, CRLF or CR), lazily, each decoded as UTF-8 leniently.

    Lazy on purpose: ``splitlines()`` of a 16 MiB feed of empty lines is a list of 16 million
    strings (~383 MiB); here at most one 64 KiB block is split at a time. Undecodable bytes become
    U+FFFD, which then fails name/destination checks on that line only; an over-long line is cut
    (it is refused as too long anyway).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    n = len(data)
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while pos < n:
        end = min(pos + _BLOCK, n)
        cut = max(data.rfind(b"\n", pos, end), data.rfind(b"\r", pos, end))
        if cut < 0:  # no line break in a whole block: one long line (or the last one)
            lf, cr = data.find(b"\n", end), data.find(b"\r", end)
            stop = min((i for i in (lf, cr) if i >= 0), default=n)
            yield data[pos : min(stop, pos + _MAX_LINE_BYTES)].decode("utf-8", errors="replace")
            pos = stop + (2 if data[stop : stop + 2] == b"\r\n" else 1)
            continue
        if data[cut : cut + 2] == b"\r\n":
            cut += 1
        for line in data[pos : cut + 1].splitlines():
            yield line[:_MAX_LINE_BYTES].decode("utf-8", errors="replace")
        pos = cut + 1


def parse_document(
    lines: Iterable[str], stats: ParseStats | None = None, *, max_lines: int = MAX_LINES
) -> Iterator[HostsEntry]:
    """Yield the valid entries of a document; invalid lines are skipped and counted in ``stats``.

    After ``max_lines`` lines the rest is not read (counted once as ``too-many-lines``).
    """
    st = stats if stats is not None else ParseStats()
    for line in lines:
        if st.lines >= max_lines:
            st.invalid["too-many-lines"] += 1
            return
        st.lines += 1
        try:
            entry = parse_line(line)
        except LineError as exc:
            st.invalid[exc.reason] += 1
            continue
        if entry is None:
            st.comments += 1
            continue
        st.entries += 1
        yield entry
