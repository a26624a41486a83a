"""Every layer agrees on what a b32 and a b33 name is: they all ask ``i2p.names``.

Before, six copies disagreed: the proxy took 53-55 characters for b32, SAM and the address book
took any 56+ characters as b33 without checking they decode, the address helper refused b33.
"""

from __future__ import annotations

import pytest

from i2proxy.dialer.base import InvalidTarget
from i2proxy.dialer.sam import sam_destination
from i2proxy.i2p.names import b32_kind
from i2proxy.naming.addressbook import AddressBook
from i2proxy.proxy.http import HttpError, parse_helper_value
from i2proxy.proxy.routing import HostKind, classify_host

B32 = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p"
NAMES = {
    B32: "b32",
    B32.upper(): "b32",
    B32 + ".": "b32",
    "s" * 52 + ".b32.i2p": "b32",  # non-canonical last character: routers still read it
    "a" * 56 + ".b32.i2p": "b33",
    "a" * 60 + ".b32.i2p": "b33",
    "a" * 53 + ".b32.i2p": None,
    "a" * 55 + ".b32.i2p": None,
    "1" * 56 + ".b32.i2p": None,  # 56 characters, but not base32
    "a" * 51 + ".b32.i2p": None,
    ".b32.i2p": None,
    "site.i2p": None,
}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_the_one_parser(name):
    assert b32_kind(name) == NAMES[name]


@pytest.mark.parametrize("name", sorted(NAMES))
def test_proxy_routing_agrees(name):
    kind, _ = classify_host(name)
    if NAMES[name] is not None:
        assert kind is HostKind.B32
    else:
        assert kind is not HostKind.B32


@pytest.mark.parametrize("name", sorted(NAMES))
def test_sam_dialer_agrees(name):
    if NAMES[name] is not None:
        assert sam_destination(name) == name.lower().rstrip(".")
    else:
        with pytest.raises(InvalidTarget):
            sam_destination(name)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_address_book_agrees(name):
    book = AddressBook(None, subscriptions=[], default_hosts=b"")
    found = book.lookup(name.lower().rstrip("."))
    assert (found is not None) == (NAMES[name] is not None)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_address_helper_takes_b32_only(name):
    if NAMES[name] == "b32":
        assert parse_helper_value(name) == name.lower()
    else:
        with pytest.raises(HttpError):
            parse_helper_value(name)
