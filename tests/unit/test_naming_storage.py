"""Atomic storage: a writer killed with SIGKILL mid-write leaves the old or the new book."""

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from i2proxy.naming import storage
from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.book import Book
from i2proxy.naming.feedsign import new_identity

REPO = Path(__file__).resolve().parents[2]
ENTRIES = 20_000

WRITER = textwrap.dedent(
    """
    import itertools, sys
    from pathlib import Path
    from i2proxy.naming import storage

    path, dest_a, dest_b, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    for version, dest in itertools.cycle([("a", dest_a), ("b", dest_b)]):
        pairs = ((f"host{i}.i2p", [dest]) for i in range(count))
        storage.write_book(path, pairs, header=f"version {version}")
    """
)


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "book.txt"
    storage.atomic_write(path, [b"one\n"])
    storage.atomic_write(path, [b"two\n", b"three\n"])
    assert path.read_bytes() == b"two\nthree\n"
    assert os.listdir(tmp_path) == ["book.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "book.txt"
    storage.atomic_write(path, [b"old\n"])

    def chunks():
        yield b"new, half"
        raise RuntimeError("disk on fire")

    with contextlib.suppress(RuntimeError):
        storage.atomic_write(path, chunks())
    assert path.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["book.txt"]


def test_sigkill_during_a_large_write_leaves_a_complete_book(tmp_path):
    dest_a, dest_b = new_identity()[0].to_base64(), new_identity()[0].to_base64()
    path = tmp_path / "addressbook" / "local.txt"
    path.parent.mkdir()
    rng = random.Random()
    seen_versions = set()
    killed_mid_write = 0
    for _round in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), dest_a, dest_b, str(ENTRIES)],
            cwd=REPO,
        )
        try:
            pattern = f".local.txt.{proc.pid}.*.tmp"

            def writing(pattern=pattern) -> bool:
                return any(t.stat().st_size > 0 for t in path.parent.glob(pattern))

            deadline = time.monotonic() + 30
            # Wait for a complete book, then for the next write to be under way.
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.001)
            while time.monotonic() < deadline:
                with contextlib.suppress(FileNotFoundError):
                    if writing():
                        break
                time.sleep(0.0005)
            else:
                raise AssertionError("writer never started a second write")
            time.sleep(rng.uniform(0, 0.03))
        finally:
            in_progress = any(path.parent.glob(pattern))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        killed_mid_write += in_progress

        book = Book("local", kind="local")
        stats = storage.load_book(path, book)
        assert stats.invalid_total == 0
        assert len(book) == ENTRIES
        dests = {book.get(f"host{i}.i2p") for i in range(ENTRIES)}
        assert dests in ({dest_a}, {dest_b})
        header = path.read_text().splitlines()[0]
        seen_versions.add(header)
        assert header == ("# version a" if dests == {dest_a} else "# version b")

        # The next open cleans the dead writer's temp file and serves the book.
        opened = AddressBook.open(tmp_path, subscriptions=[])
        assert len(opened.local) == ENTRIES
        assert not list(path.parent.glob(".*.tmp"))
    assert killed_mid_write >= 3, "the kills did not land inside writes"


def test_oversized_files_are_refused_not_read(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 1001)
    with pytest.raises(storage.FileTooLarge):
        storage.read_bounded(path, 1000)
    assert storage.read_bounded(path, 1001) == b"x" * 1001
