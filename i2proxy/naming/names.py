"""Host name rules of the I2P naming spec (as enforced by Java I2P's ``isValidKey``).

Why so strict: a name is the only thing a user checks before trusting a destination, so names
that look alike through case, b32 shapes or reserved words must never enter a book.
"""

from __future__ import annotations

import re

from i2proxy.naming.errors import InvalidName

#: Longest host name, ``.i2p`` included (naming spec).
MAX_NAME_LENGTH = 67
#: Shortest: one character plus ``.i2p``.
MIN_NAME_LENGTH = 5
B32_SUFFIX = ".b32.i2p"
#: RFC 9476 alias of the ``.i2p`` TLD; accepted on lookup, stripped to ``.i2p``.
ALT_SUFFIX = ".i2p.alt"
#: Names that belong to the local router or proxy, never to a remote destination.
RESERVED = frozenset({"proxy.i2p", "router.i2p", "console.i2p", "b32.i2p"})

_RESERVED_SUFFIXES = tuple("." + r for r in RESERVED)
_ALLOWED = re.compile(r"[0-9a-z.\-]+")
#: Fast path: labels of [a-z0-9] with single inner hyphens, ending in .i2p. A name that fails it
#: goes through the rule-by-rule checks below, which also name the broken rule.
_COMMON_NAME = re.compile(r"(?:[a-z0-9](?:-?[a-z0-9])*\.)+i2p")
_B32_CHARS = re.compile(r"[a-z2-7]+")


def normalize(name: str) -> str:
    """Lower-case, strip one trailing dot and map ``.i2p.alt`` to ``.i2p`` (for lookups)."""
    name = name.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if name.endswith(ALT_SUFFIX):
        name = name[: -len(".alt")]
    return name


def validate_hostname(name: str) -> str:
    """Return ``name`` lower-cased if it may be stored in an address book, else raise InvalidName.

    ``.b32.i2p`` names are refused here on purpose: they resolve without any book.
    """
    host = name.strip().lower()
    if (
        MIN_NAME_LENGTH <= len(host) <= MAX_NAME_LENGTH
        and _COMMON_NAME.fullmatch(host) is not None
        and not host.endswith(B32_SUFFIX)
        and host not in RESERVED
        and not host.endswith(_RESERVED_SUFFIXES)
        and not (len(host) == 56 and _B32_CHARS.fullmatch(host, 0, 52))
    ):
        return host
    if not host.endswith(".i2p"):
        raise InvalidName(name, "must end with .i2p")
    if len(host) > MAX_NAME_LENGTH:
        raise InvalidName(name, f"longer than {MAX_NAME_LENGTH} characters")
    if len(host) < MIN_NAME_LENGTH:
        raise InvalidName(name, "empty label before .i2p")
    if _ALLOWED.fullmatch(host) is None:
        bad = next(c for c in host if not (c.isascii() and (c.isalnum() or c in ".-")))
        raise InvalidName(name, f"illegal character {bad!r}")
    if host.startswith((".", "-")):
        raise InvalidName(name, "must not start with '.' or '-'")
    for seq in ("..", ".-", "-."):
        if seq in host:
            raise InvalidName(name, f"must not contain {seq!r}")
    for label in host.split("."):
        if "--" in label and not label.startswith("xn--"):
            raise InvalidName(name, "'--' is only allowed in xn-- (IDN) labels")
    if host.endswith(B32_SUFFIX) or host in RESERVED:
        raise InvalidName(name, "reserved name")
    if any(host.endswith("." + reserved) for reserved in RESERVED):
        raise InvalidName(name, "subdomain of a reserved name")
    first = host[: -len(".i2p")]
    if len(first) == 52 and _B32_CHARS.fullmatch(first):
        raise InvalidName(name, "looks like a b32 address")
    return host


def is_valid_hostname(name: str) -> bool:
    """Boolean form of :func:`validate_hostname`."""
    try:
        validate_hostname(name)
    except InvalidName:
        return False
    return True


def parent_domain(name: str) -> str | None:
    """``a.b.i2p`` -> ``b.i2p``; None for a second-level name."""
    head, _, rest = name.partition(".")
    return rest if rest.count(".") >= 1 and head else None
