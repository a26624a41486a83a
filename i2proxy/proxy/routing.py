"""Which hosts the proxy may reach, and how a host name becomes a dial target.

Only ``.i2p`` names go anywhere. An IP literal, ``localhost`` or a clearnet name is refused here,
before any resolver or socket is involved: the proxy never does DNS and never connects directly.
``.i2p.alt`` (RFC 9476, the special-use name for I2P) is accepted as a spelling of ``.i2p``.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from i2proxy.i2p.names import b32_kind

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

#: Host names that the proxy answers itself (health page, PAC file, address-helper form).
PROXY_HOSTS = frozenset({"proxy.i2p", "i2proxy.i2p"})

_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+i2p$")


class HostKind(enum.Enum):
    B32 = "b32"  # a b32 or b33 name (i2p.names): the router finds it, no address book needed
    NAME = "name"  # some.name.i2p: needs the address book
    PROXY = "proxy"  # proxy.i2p: our own pages
    IP = "ip"  # an IPv4/IPv6 literal
    LOCAL = "local"  # localhost and friends
    CLEARNET = "clearnet"  # anything else: would need an outproxy, which we do not have
    INVALID = "invalid"  # not a host name at all


def normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith(".i2p.alt"):
        host = host[: -len(".alt")]
    return host


def classify_host(host: str) -> tuple[HostKind, str]:
    """Return the kind of ``host`` and its normalised spelling (lower case, no trailing dot).

    Memoized for host names of a plausible length (every request classifies its host twice,
    and a b32 name costs a base32 decode and a failed ``ip_address`` parse, an exception, each
    time); a longer string is classified afresh, so the cache stays small (1024 x 300 bytes).
    """
    if len(host) <= _CACHED_HOST_LENGTH:
        return _classify_cached(host)
    return _classify(host)


_CACHED_HOST_LENGTH = 300


def _classify(host: str) -> tuple[HostKind, str]:
    name = normalize_host(host)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return HostKind.IP, name
    if not name or len(name) > 255:
        return HostKind.INVALID, name
    if name in PROXY_HOSTS:
        return HostKind.PROXY, name
    if name == "localhost" or name.endswith(".localhost"):
        return HostKind.LOCAL, name
    if name.endswith(".b32.i2p"):
        return (HostKind.B32 if b32_kind(name) is not None else HostKind.INVALID), name
    if name.endswith(".i2p"):
        return (HostKind.NAME if _NAME.match(name) else HostKind.INVALID), name
    if re.fullmatch(r"[0-9.]+", name) or ":" in name:
        # Shorthand IPv4 forms (127.1, 0x7f.1) and stray colons are not names either.
        return HostKind.IP, name
    return HostKind.CLEARNET, name


_classify_cached = functools.lru_cache(maxsize=1024)(_classify)


class NameBook(Protocol):
    """The part of ``i2proxy.naming.AddressBook`` the proxy uses."""

    def lookup(self, name: str) -> Destination | None: ...

    def add(
        self, name: str, destination: Destination, book: str = "local", *, replace: bool = False
    ) -> Any: ...

    def add_session(self, name: str, destination: Destination) -> Any: ...


def b32_of(target: Destination | str) -> str:
    """The ``.b32.i2p`` name of a dial target (a Destination or a b32 string)."""
    return target if isinstance(target, str) else target.b32


def same_destination(a: Destination | str, b: Destination | str) -> bool:
    return b32_of(a) == b32_of(b)


@dataclass
class Resolver:
    """Turns a host into a dial target: b32 names directly, other names via the address book.

    ``session`` holds names accepted "for this run only" whose value is a bare b32 name (an
    address helper may carry one); full destinations go to the book's own session store.
    """

    book: NameBook | None = None
    session: dict[str, Destination | str] = field(default_factory=dict)

    def resolve(self, host: str) -> Destination | str | None:
        kind, name = classify_host(host)
        if kind is HostKind.B32:
            return name
        if kind is not HostKind.NAME:
            return None
        if name in self.session:
            return self.session[name]
        if self.book is None:
            return None
        try:
            return self.book.lookup(name)
        except Exception:  # a broken book must not take the connection down
            return None

    def remember(self, name: str, target: Destination | str, *, save: bool) -> None:
        """Store an address-helper answer the user confirmed (never called automatically).

        A bare b32 name cannot go into the book (it stores full destinations), and without a
        book everything is kept for this run only; ``save`` is honoured whenever possible.
        """
        if isinstance(target, str) or self.book is None:
            self.session[name] = target
            return
        self.session.pop(name, None)
        if save:
            # The user confirmed on the page, having seen any conflict: replace it.
            self.book.add(name, target, book="local", replace=True)
        else:
            self.book.add_session(name, target)

    def can_save(self, target: Destination | str) -> bool:
        return self.book is not None and not isinstance(target, str)
