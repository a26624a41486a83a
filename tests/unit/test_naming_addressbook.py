"""The layered address book against the real default hosts file shipped with I2P."""

import os
from pathlib import Path

import pytest

from i2proxy.i2p.destination import Destination
from i2proxy.naming.addressbook import DEFAULT_SUBSCRIPTIONS, AddressBook, shipped_hosts_text
from i2proxy.naming.errors import InvalidDestination, InvalidName, NameConflict, ReadOnlyBook
from i2proxy.naming.feedsign import new_identity

REPO = Path(__file__).resolve().parents[2]
SHARED_HOSTS = Path("/work/shared/data/i2p-default-hosts.txt")
B32_OF_NOTHING = "a" * 52 + ".b32.i2p"


@pytest.fixture
def hosts_file() -> bytes:
    if not SHARED_HOSTS.exists():
        pytest.skip("shared I2P default hosts file not present")
    return SHARED_HOSTS.read_bytes()


def _pairs(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)


def test_every_entry_of_the_real_default_hosts_file_loads_and_resolves(tmp_path, hosts_file):
    expected = _pairs(hosts_file)
    assert len(expected) == 68
    book = AddressBook.open(tmp_path, subscriptions=[], default_hosts=b"")
    stats = book.merge_text(hosts_file, into="local")
    assert stats.added == 68 and stats.invalid_total == 0
    for name, b64 in expected.items():
        dest = book.lookup(name)
        assert isinstance(dest, Destination) and dest.to_base64() == b64
        assert book.reverse(dest.hash) == name
        assert book.reverse(dest.b32) == name
        assert book.lookup(dest.b32) == dest.b32  # b32 names resolve without a book


def test_export_reimports_identically(tmp_path, hosts_file):
    book = AddressBook.open(tmp_path / "a")
    book.merge_text(hosts_file, into="local")
    book.save()
    exported = "\n".join(book.export_lines()) + "\n"
    fresh = AddressBook.open(tmp_path / "b")
    stats = fresh.merge_text(exported.encode(), into="local")
    assert stats.invalid_total == 0 and stats.conflicts == 0
    assert "\n".join(fresh.export_lines()) + "\n" == exported
    assert _pairs(exported.encode()) == _pairs(hosts_file)


def test_books_persist_across_restarts(tmp_path, hosts_file):
    book = AddressBook.open(tmp_path)
    book.merge_text(hosts_file, into="local")
    book.save()
    again = AddressBook.open(tmp_path)
    assert len(again.local) == len(book.local)
    assert again.lookup("zzz.i2p") == book.lookup("zzz.i2p")
    assert (tmp_path / "addressbook" / "local.txt").stat().st_mode & 0o777 == 0o600


def test_shipped_default_book_is_the_repository_hosts_txt_and_resolves(tmp_path):
    top = REPO / "hosts.txt"
    assert top.resolve() == (REPO / "i2proxy" / "naming" / "hosts.txt").resolve()
    assert top.read_bytes() == shipped_hosts_text()
    book = AddressBook.open(tmp_path)
    assert book.load_stats["default"].invalid_total == 0
    for name in ("i2p-projekt.i2p", "stats.i2p", "notbob.i2p", "identiguy.i2p"):
        assert book.lookup_entry(name)[0] == "default"
    for url in DEFAULT_SUBSCRIPTIONS:  # every default feed host is reachable from a fresh install
        host = url.split("/")[2]
        assert book.lookup(host) is not None, host


def test_subscriptions_txt_is_written_with_the_defaults_and_is_editable(tmp_path):
    AddressBook.open(tmp_path)
    path = tmp_path / "addressbook" / "subscriptions.txt"
    assert [u for u in path.read_text().splitlines() if not u.startswith("#")] == list(
        DEFAULT_SUBSCRIPTIONS
    )
    path.write_text("# mine\nhttp://example.i2p/hosts.txt\n")
    assert AddressBook.open(tmp_path).subscription_urls == ["http://example.i2p/hosts.txt"]


def test_lookup_order_local_then_session_then_default_then_subscriptions(tmp_path):
    d1, d2, d3, d4 = (new_identity()[0] for _ in range(4))
    feed = "http://feed.i2p/hosts.txt"
    book = AddressBook.open(
        tmp_path, subscriptions=[feed], default_hosts=f"x.i2p={d3.to_base64()}\n".encode()
    )
    book.merge_text(f"x.i2p={d4.to_base64()}\ny.i2p={d4.to_base64()}\n", into=feed)
    assert book.lookup_entry("x.i2p")[0] == "default"  # feed entry was a conflict
    assert book.lookup("y.i2p") == d4
    book.add_session("x.i2p", d2)
    assert book.lookup("x.i2p") == d2
    book.add("x.i2p", d1)
    assert book.lookup("x.i2p") == d1
    book.remove("x.i2p")
    assert book.lookup("x.i2p") == d2


def test_add_validates_and_reports_conflicts(tmp_path):
    d1, d2 = new_identity()[0], new_identity()[0]
    book = AddressBook.open(tmp_path)
    assert book.add("Mine.I2P", d1.to_base64()) is True
    assert book.add("mine.i2p", d1) is False
    with pytest.raises(NameConflict):
        book.add("mine.i2p", d2)
    assert book.add("mine.i2p", d2, replace=True) is True
    with pytest.raises(InvalidName):
        book.add("mine.com", d1)
    with pytest.raises(InvalidDestination):
        book.add("other.i2p", "A" * 400)
    with pytest.raises(ReadOnlyBook):
        book.add("other.i2p", d1, book="default")
    assert AddressBook.open(tmp_path).lookup("mine.i2p") == d2  # saved at once


def test_session_entries_are_not_saved(tmp_path):
    dest = new_identity()[0]
    book = AddressBook.open(tmp_path)
    book.add_session("temp.i2p", dest)
    book.save()
    assert book.lookup("temp.i2p") == dest
    assert AddressBook.open(tmp_path).lookup("temp.i2p") is None


def test_unknown_invalid_and_b32_lookups(tmp_path):
    book = AddressBook.open(tmp_path)
    assert book.lookup("nothing-here.i2p") is None
    assert book.lookup("not a name") is None
    assert book.lookup(B32_OF_NOTHING.upper()) == B32_OF_NOTHING
    assert book.lookup("abc.b32.i2p") is None
    assert book.reverse(B32_OF_NOTHING) is None
    assert book.reverse(b"\0" * 32) is None


def test_changes_by_another_process_are_picked_up(tmp_path):
    dest = new_identity()[0]
    running = AddressBook.open(tmp_path)
    cli = AddressBook.open(tmp_path)
    cli.add("fromcli.i2p", dest)
    assert running.lookup("fromcli.i2p") is None
    assert running.refresh() is True
    assert running.lookup("fromcli.i2p") == dest


def test_hand_edited_local_book_with_garbage_loads_the_good_lines(tmp_path, hosts_file):
    directory = tmp_path / "addressbook"
    directory.mkdir(parents=True)
    good = hosts_file.splitlines()[:3]
    (directory / "local.txt").write_bytes(
        b"\r\n".join([good[0], b"garbage", good[1], b"x" * 10000, good[2]]) + b"\r\n"
    )
    book = AddressBook.open(tmp_path)
    assert len(book.local) == 3
    assert book.load_stats["local"].invalid == {"not-name-dest": 1, "line-too-long": 1}


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    directory = tmp_path / "addressbook"
    directory.mkdir(parents=True)
    stale = directory / ".local.txt.999999999.tmp"
    stale.write_text("half a book")
    AddressBook.open(tmp_path)
    assert not stale.exists()
    assert not [p for p in os.listdir(directory) if p.endswith(".tmp")]


def test_a_running_book_follows_subscribe_and_unsubscribe_by_another_process(tmp_path):
    running = AddressBook.open(tmp_path)
    cli = AddressBook.open(tmp_path)
    url = "http://newfeed.i2p/hosts.txt"
    cli.subscribe(url)
    assert url not in running.subscription_urls
    assert running.refresh() is True
    assert running.subscription_urls[-1] == url
    cli.unsubscribe(DEFAULT_SUBSCRIPTIONS[0])
    running.refresh()
    assert DEFAULT_SUBSCRIPTIONS[0] not in running.subscription_urls
    assert running.refresh() is False


def test_a_change_during_a_background_index_build_is_not_lost(monkeypatch):
    """The subscription manager builds reverse indexes in a worker thread while the event loop
    may change a book. Replacing a name's destination keeps the dict's size, so the build's
    iteration does not notice; the book must, or the index keeps the old destination."""
    from i2proxy.naming import book as book_module
    from i2proxy.naming.book import dest_hash

    old, new, other = (new_identity()[0].to_base64() for _ in range(3))
    ab = AddressBook(None, default_hosts=b"")
    ab.session.put("a.i2p", other)
    ab.session.put("b.i2p", old)
    real_hash = book_module.dest_hash

    def hash_then_change(dest: str) -> bytes:
        if dest == old and ab.session.get("b.i2p") == old:
            ab.add_session("b.i2p", new)  # the loop, after the worker has read b's entry
        return real_hash(dest)

    monkeypatch.setattr(book_module, "dest_hash", hash_then_change)
    ab.build_reverse_indexes()
    monkeypatch.undo()
    assert ab.reverse(dest_hash(new)) == "b.i2p"
    assert ab.reverse(dest_hash(old)) is None


def test_above_debug_the_book_logs_no_feed_url_and_no_host_name(tmp_path):
    """Merges, conflicts with the user's own book, added names and a damaged feed file are
    logged with counts and reasons; the names and the feed's URL only at debug level."""
    import logging

    import structlog
    from structlog.testing import capture_logs

    url = "http://secretfeed.i2p/hosts.txt"
    mine, theirs = new_identity()[0].to_base64(), new_identity()[0].to_base64()
    book = AddressBook.open(tmp_path, subscriptions=[url], default_hosts=b"")
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            book.add("visited-site.i2p", mine, book="local")
            feed = f"visited-site.i2p={theirs}\nfeed-only-name.i2p={theirs}\nnot a line\n"
            book.merge_text(feed, into=url, source=url)
            book.save()
            feed_file = next((tmp_path / "addressbook" / "subscriptions").iterdir())
            feed_file.write_text(feed_file.read_text() + "bad entry line\n")
            AddressBook.open(tmp_path, subscriptions=[url], default_hosts=b"")
    finally:
        structlog.configure(**old)
    shown = [e for e in logs if e["log_level"] != "debug"]
    events = {e["event"] for e in shown}
    assert {"addressbook.added", "addressbook.merged", "addressbook.invalid_lines"} <= events
    assert next(e for e in shown if e["event"] == "addressbook.merged")["conflicts"] == 1
    for secret in ("secretfeed", "visited-site", "feed-only-name"):
        assert secret not in repr(shown), secret
    assert "secretfeed" in repr(logs) and "visited-site" in repr(logs)  # at debug level
