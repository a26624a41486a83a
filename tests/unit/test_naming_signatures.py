"""Proposal 112 signed lines, signed in the test with freshly generated keys of every type."""

import time

import pytest

from i2proxy.i2p.destination import SigType
from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.feedsign import new_identity, sign_line
from i2proxy.naming.hoststxt import parse_line
from i2proxy.naming.merge import check_entry

SIG_TYPES = [
    SigType.EDDSA_SHA512_ED25519,
    SigType.ECDSA_SHA256_P256,
    SigType.ECDSA_SHA384_P384,
    SigType.ECDSA_SHA512_P521,
    SigType.DSA_SHA1,
]
FEED = "http://feed.i2p/hosts.txt"
NOW = time.time()


def _tamper(line: str, key: str) -> str:
    """Flip one character inside the base64 value of ``key``."""
    start = line.index(f"#{key}=") + len(key) + 2
    pos = start + 5
    ch = "A" if line[pos] != "A" else "B"
    return line[:pos] + ch + line[pos + 1 :]


def _book(tmp_path) -> AddressBook:
    return AddressBook.open(tmp_path, subscriptions=[FEED], default_hosts=b"")


def _merge(book: AddressBook, *lines: str):
    return book.merge_text("\n".join(lines).encode(), into=FEED, now=NOW)


def _key_change(action: str, new, new_key, old, old_key) -> str:
    """A ``changedest``/``adddest`` line for ``site.i2p``.

    ``new_key`` signs it; ``old_key`` (None: no ``oldsig``) counter-signs for ``olddest``.
    """
    return sign_line(
        "site.i2p",
        new.to_base64(),
        new_key,
        old_key=old_key,
        action=action,
        olddest=old.to_base64(),
    )


@pytest.mark.parametrize("sig_type", SIG_TYPES, ids=lambda t: t.name)
def test_signed_add_verifies_for_every_signing_type(sig_type):
    dest, key = new_identity(sig_type)
    line = sign_line("signed.i2p", dest.to_base64(), key, date=str(int(NOW)))
    assert check_entry(parse_line(line), now=NOW) is None


@pytest.mark.parametrize("sig_type", SIG_TYPES, ids=lambda t: t.name)
def test_tampered_signature_is_rejected(sig_type):
    dest, key = new_identity(sig_type)
    line = sign_line("signed.i2p", dest.to_base64(), key, date=str(int(NOW)))
    assert check_entry(parse_line(_tamper(line, "sig")), now=NOW) == "bad-signature"


@pytest.mark.parametrize("sig_type", SIG_TYPES, ids=lambda t: t.name)
def test_tampered_content_is_rejected(sig_type):
    dest, key = new_identity(sig_type)
    line = sign_line("signed.i2p", dest.to_base64(), key, date=str(int(NOW)))
    forged = line.replace(f"date={int(NOW)}", f"date={int(NOW) + 1}")
    assert check_entry(parse_line(forged), now=NOW) == "bad-signature"
    renamed = line.replace("signed.i2p=", "signet.i2p=", 1)
    assert check_entry(parse_line(renamed), now=NOW) == "bad-signature"


def test_signature_by_another_key_is_rejected():
    dest, _ = new_identity()
    _, other_key = new_identity()
    line = sign_line("signed.i2p", dest.to_base64(), other_key)
    assert check_entry(parse_line(line), now=NOW) == "bad-signature"


def test_lines_with_properties_must_be_signed_and_plain_lines_need_not():
    dest, _ = new_identity()
    b64 = dest.to_base64()
    assert check_entry(parse_line(f"x.i2p={b64}#!date=1"), now=NOW) == "missing-signature"
    assert check_entry(parse_line(f"x.i2p={b64}"), now=NOW) is None


def test_expired_and_unknown_actions_are_invalid():
    dest, key = new_identity()
    b64 = dest.to_base64()
    expired = sign_line("x.i2p", b64, key, expires=str(int(NOW) - 10))
    assert check_entry(parse_line(expired), now=NOW) == "expired"
    odd = sign_line("x.i2p", b64, key, action="teleport")
    assert check_entry(parse_line(odd), now=NOW) == "unknown-action"


@pytest.mark.parametrize(
    ("new_type", "old_type"),
    [
        (SigType.EDDSA_SHA512_ED25519, SigType.DSA_SHA1),
        (SigType.ECDSA_SHA256_P256, SigType.EDDSA_SHA512_ED25519),
        (SigType.EDDSA_SHA512_ED25519, SigType.ECDSA_SHA512_P521),
    ],
    ids=lambda t: t.name,
)
def test_changedest_with_valid_oldsig_replaces_the_destination(tmp_path, new_type, old_type):
    old, old_key = new_identity(old_type)
    new, new_key = new_identity(new_type)
    book = _book(tmp_path)
    _merge(book, f"site.i2p={old.to_base64()}")
    line = _key_change("changedest", new, new_key, old, old_key)
    stats = _merge(book, line)
    assert stats.changed == 1, stats
    assert book.lookup("site.i2p") == new
    assert book.reverse(old.hash) is None
    assert book.reverse(new.hash) == "site.i2p"


def test_changedest_without_oldsig_is_refused(tmp_path):
    old, _ = new_identity()
    new, new_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={old.to_base64()}")
    line = _key_change("changedest", new, new_key, old, None)
    stats = _merge(book, line)
    assert stats.invalid == {"missing-oldsig": 1}
    assert book.lookup("site.i2p") == old


def test_changedest_with_oldsig_by_a_stranger_is_refused(tmp_path):
    old, _ = new_identity()
    new, new_key = new_identity()
    _, stranger_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={old.to_base64()}")
    line = _key_change("changedest", new, new_key, old, stranger_key)
    assert _merge(book, line).invalid == {"bad-inner-signature": 1}
    assert book.lookup("site.i2p") == old


def test_changedest_with_tampered_oldsig_is_refused(tmp_path):
    old, old_key = new_identity()
    new, new_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={old.to_base64()}")
    line = _key_change("changedest", new, new_key, old, old_key)
    # The outer sig covers oldsig, so a changed oldsig breaks the outer signature first.
    assert _merge(book, _tamper(line, "oldsig")).invalid == {"bad-signature": 1}
    assert book.lookup("site.i2p") == old


def test_changedest_for_a_name_bound_elsewhere_is_a_mismatch(tmp_path):
    current, _ = new_identity()
    claimed_old, claimed_key = new_identity()
    new, new_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={current.to_base64()}")
    line = _key_change("changedest", new, new_key, claimed_old, claimed_key)
    assert _merge(book, line).invalid == {"old-value-mismatch": 1}
    assert book.lookup("site.i2p") == current


def test_plain_line_for_a_known_name_is_a_conflict_first_come_first_served(tmp_path):
    first, _ = new_identity()
    second, second_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={first.to_base64()}")
    stats = _merge(
        book,
        f"site.i2p={second.to_base64()}",
        sign_line("site.i2p", second.to_base64(), second_key),
        sign_line("site.i2p", second.to_base64(), second_key, action="update", date="1"),
        f"site.i2p={first.to_base64()}",
    )
    assert (stats.conflicts, stats.unchanged) == (3, 1)
    assert book.lookup("site.i2p") == first


def test_adddest_adds_an_alternate_destination(tmp_path):
    old, old_key = new_identity(SigType.DSA_SHA1)
    new, new_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={old.to_base64()}")
    line = _key_change("adddest", new, new_key, old, old_key)
    assert _merge(book, line).changed == 1
    assert book.lookup("site.i2p") == old  # the primary stays
    assert book.reverse(new.hash) == "site.i2p"
    assert book.subscription_book(FEED).get_all("site.i2p") == [old.to_base64(), new.to_base64()]


def test_addname_adds_an_alias_of_a_known_destination(tmp_path):
    dest, key = new_identity()
    other, _ = new_identity()
    book = _book(tmp_path)
    _merge(book, f"site.i2p={dest.to_base64()}", f"other.i2p={other.to_base64()}")
    ok = sign_line("alias.i2p", dest.to_base64(), key, action="addname", oldname="site.i2p")
    bad = sign_line("alias2.i2p", dest.to_base64(), key, action="addname", oldname="other.i2p")
    stats = _merge(book, ok, bad)
    assert stats.added == 1 and stats.invalid == {"old-value-mismatch": 1}
    assert book.lookup("alias.i2p") == dest and book.lookup("alias2.i2p") is None


def test_changename_moves_the_name(tmp_path):
    dest, key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"oldname.i2p={dest.to_base64()}")
    line = sign_line(
        "newname.i2p", dest.to_base64(), key, action="changename", oldname="oldname.i2p"
    )
    stats = _merge(book, line)
    assert (stats.added, stats.removed) == (1, 1)
    assert book.lookup("newname.i2p") == dest and book.lookup("oldname.i2p") is None


def test_addsubdomain_needs_the_parent_key(tmp_path):
    parent, parent_key = new_identity()
    sub, sub_key = new_identity(SigType.ECDSA_SHA256_P256)
    _, stranger_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"example.i2p={parent.to_base64()}")

    def line(name, old_key):
        return sign_line(
            name,
            sub.to_base64(),
            sub_key,
            old_key=old_key,
            action="addsubdomain",
            oldname="example.i2p",
            olddest=parent.to_base64(),
        )

    stats = _merge(
        book,
        line("www.example.i2p", parent_key),
        line("mail.example.i2p", stranger_key),
        line("www.elsewhere.i2p", parent_key),
    )
    assert stats.added == 1
    assert stats.invalid == {"bad-inner-signature": 1, "not-a-subdomain": 1}
    assert book.lookup("www.example.i2p") == sub


def test_remove_and_removeall_need_the_destination_key(tmp_path):
    a, a_key = new_identity()
    b, _ = new_identity()
    book = _book(tmp_path)
    _merge(
        book,
        f"one.i2p={a.to_base64()}",
        f"two.i2p={a.to_base64()}",
        f"three.i2p={b.to_base64()}",
    )
    forged = sign_line(None, None, a_key, action="remove", name="three.i2p", dest=b.to_base64())
    remove = sign_line(None, None, a_key, action="remove", name="one.i2p", dest=a.to_base64())
    stats = _merge(book, forged, remove)
    assert stats.invalid == {"bad-signature": 1} and stats.removed == 1
    assert book.lookup("one.i2p") is None and book.lookup("two.i2p") == a
    removeall = sign_line(None, None, a_key, action="removeall", dest=a.to_base64())
    assert _merge(book, removeall).removed == 1
    assert book.lookup("two.i2p") is None and book.lookup("three.i2p") == b


def test_a_refused_command_line_is_noted_by_the_name_it_targets(tmp_path):
    _, a_key = new_identity()
    b, _ = new_identity()
    book = _book(tmp_path)
    _merge(book, f"three.i2p={b.to_base64()}")
    forged = sign_line(None, None, a_key, action="remove", name="three.i2p", dest=b.to_base64())
    assert _merge(book, forged).examples == ["three.i2p: bad-signature"]


def test_feed_commands_never_change_the_users_local_book(tmp_path):
    mine, _ = new_identity()
    theirs, their_key = new_identity()
    book = _book(tmp_path)
    book.add("site.i2p", mine)
    line = sign_line(
        "site.i2p",
        theirs.to_base64(),
        their_key,
        old_key=None,
        action="update",
    )
    assert _merge(book, line).conflicts == 1
    assert book.lookup("site.i2p") == mine


def test_signed_change_of_a_shipped_default_name_masks_it(tmp_path):
    old, old_key = new_identity()
    new, new_key = new_identity()
    book = AddressBook.open(
        tmp_path, subscriptions=[FEED], default_hosts=f"site.i2p={old.to_base64()}\n".encode()
    )
    line = _key_change("changedest", new, new_key, old, old_key)
    assert _merge(book, line).changed == 1
    assert book.lookup_entry("site.i2p") == (FEED, new.to_base64())
    book.save()
    again = AddressBook.open(
        tmp_path, subscriptions=[FEED], default_hosts=f"site.i2p={old.to_base64()}\n".encode()
    )
    assert again.lookup("site.i2p") == new


# A line signed by Java I2P (i2ptunnel's "Registration Authentication"), as printed in the I2P
# project's eepsite-hosting guide (i2p/i2p.website): Ed25519 destination, `date` and `sig`.
JAVA_SIGNED_LINE = (
    "testwebsite.i2p=I8WiuSx1TcYAutCrhLveZ6gghdqsIJ1v9noSGPb7ItYjxaK5LHVNxgC60KuEu95nqCCF2qwg"
    "nW~2ehIY9vsi1iPForksdU3GALrQq4S73meoIIXarCCdb~Z6Ehj2-yLWI8WiuSx1TcYAutCrhLveZ6gghdqsIJ1v"
    "9noSGPb7ItYjxaK5LHVNxgC60KuEu95nqCCF2qwgnW~2ehIY9vsi1iPForksdU3GALrQq4S73meoIIXarCCdb~Z6"
    "Ehj2-yLWI8WiuSx1TcYAutCrhLveZ6gghdqsIJ1v9noSGPb7ItYjxaK5LHVNxgC60KuEu95nqCCF2qwgnW~2ehIY"
    "9vsi1iPForksdU3GALrQq4S73meoIIXarCCdb~Z6Ehj2-yLWI8WiuSx1TcYAutCrhLveZ6gghdqsIJ1v9noSGPb7"
    "ItYjxaK5LHVNxgC60KuEu95nqCCF2qwgnW~2ehIY9vsi1uNxFZ0HN7tQbbVj1pmbahepQZNxEW0ufwnMYAoFo8op"
    "BQAEAAcAAA==#!date=1762104890#sig=9DjEfrcNRxsoSxiE0Mp0-7rH~ktYWtgwU8c4J0eSo0VHbGxDxdiO9D"
    "1Cvwcx8hkherMO07UWOC9BWf-1wRyUAw=="
)


def test_a_line_signed_by_java_i2p_verifies_byte_for_byte():
    entry = parse_line(JAVA_SIGNED_LINE)
    assert entry.props == {
        "date": "1762104890",
        "sig": entry.props["sig"],
    }
    assert check_entry(entry, now=NOW) is None
    changed = JAVA_SIGNED_LINE.replace("date=1762104890", "date=1762104891")
    assert check_entry(parse_line(changed), now=NOW) == "bad-signature"


async def test_background_merge_path_applies_removeall_with_prebuilt_indexes(tmp_path):
    from i2proxy.naming.subscriptions import SubscriptionManager

    a, a_key = new_identity()
    book = _book(tmp_path)
    _merge(book, f"one.i2p={a.to_base64()}", f"two.i2p={a.to_base64()}")
    manager = SubscriptionManager(book, dialer=None)  # merge only: nothing is fetched
    removeall = sign_line(None, None, a_key, action="removeall", dest=a.to_base64())
    stats = await manager.merge_body(FEED, (removeall + "\n").encode(), now=NOW)
    assert stats.removed == 2
    assert book.lookup("one.i2p") is None and book.lookup("two.i2p") is None
