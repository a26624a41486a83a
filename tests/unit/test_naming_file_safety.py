"""The address book's files cannot be redirected or bloated by someone else (issue 13 item 6).

Each test fails on the code before: a predictable temp name opened without O_EXCL/O_NOFOLLOW
(a planted symlink got the book written through it), a lock file that followed symlinks, a data
dir trusted whatever its owner and mode, and ``splitlines()`` over a whole feed.
"""

from __future__ import annotations

import os
import tracemalloc

import pytest

from i2proxy.naming import storage
from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.hoststxt import ParseStats, parse_document, split_lines


def test_a_symlink_planted_at_the_old_temp_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    book = tmp_path / "book" / "local.txt"
    book.parent.mkdir(mode=0o700)
    (book.parent / f".local.txt.{os.getpid()}.tmp").symlink_to(victim)
    storage.atomic_write(book, [b"a=b\n"])
    assert victim.read_bytes() == b"precious\n"
    assert book.read_bytes() == b"a=b\n" and not book.is_symlink()
    assert oct(book.stat().st_mode & 0o777) == oct(0o600)


def test_the_lock_does_not_follow_a_planted_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    (tmp_path / ".lock").symlink_to(target)
    with pytest.raises(OSError), storage.exclusive_lock(tmp_path):
        pass
    assert not target.exists()


def test_a_data_dir_writable_by_others_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    with pytest.raises(storage.UnsafeDirectory, match="writable by others"):
        AddressBook.open(data, subscriptions=[])
    data.chmod(0o700)
    (data / "addressbook").mkdir()
    (data / "addressbook").chmod(0o1777)  # sticky does not help: files can be planted
    with pytest.raises(storage.UnsafeDirectory, match="writable by others"):
        AddressBook.open(data, subscriptions=[])


def test_a_data_dir_of_another_user_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    owner = data.stat().st_uid
    monkeypatch.setattr(storage.os, "geteuid", lambda: owner + 1)
    with pytest.raises(storage.UnsafeDirectory, match="belongs to uid"):
        AddressBook.open(data, subscriptions=[])


def test_a_new_data_dir_is_private_and_opens(tmp_path):
    book = AddressBook.open(tmp_path / "new", subscriptions=[])
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new" / "addressbook").stat().st_mode & 0o777 == 0o700
    assert book.local is not None


def test_a_feed_of_short_lines_is_parsed_in_bounded_memory():
    feed = b"ab\n" * 1_000_000  # 3 MiB; splitlines() made it a list of a million strings
    tracemalloc.start()
    try:
        lines = sum(1 for _ in split_lines(feed))  # parse_document consumes it line by line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == 1_000_000
    assert peak < 8 << 20, f"{peak >> 20} MiB to split 3 MiB of short lines"


def test_lines_beyond_the_cap_are_not_parsed_and_counted_once():
    doc = b"# comment\n" * 50
    stats = ParseStats()
    assert list(parse_document(split_lines(doc), stats, max_lines=20)) == []
    assert stats.lines == 20 and stats.comments == 20
    assert stats.invalid["too-many-lines"] == 1


@pytest.mark.parametrize(
    ("doc", "lines"),
    [
        (b"a\nb\r\nc\rd", ["a", "b", "c", "d"]),
        (b"\xef\xbb\xbfa\n\n", ["a", ""]),
        ("\ufeffa\r\n", ["a"]),
        (b"\xff\n", ["\ufffd"]),
        (b"", []),
        (b"x" * 70000 + b"\r\ny", ["x" * (4 * 4096 + 4), "y"]),  # cut, still too long
        (b"a\x0bb\x0cc", ["a\x0bb\x0cc"]),  # only LF, CR and CRLF end a line (as Java's readLine)
    ],
    ids=["lf-crlf-cr", "bom-bytes", "bom-text", "bad-utf8", "empty", "long-line", "vt-ff"],
)
def test_split_lines_handles_line_breaks_bom_bad_utf8_and_long_lines(doc, lines):
    assert list(split_lines(doc)) == lines


def test_an_over_long_line_is_cut_but_still_refused_as_too_long():
    stats = ParseStats()
    doc = b"x" * (1 << 20) + b"\nok.i2p=" + b"A" * 10 + b"\n"
    assert list(parse_document(split_lines(doc), stats)) == []
    assert stats.invalid["line-too-long"] == 1 and stats.invalid["bad-destination"] == 1
