"""The address book: layered books searched in order, with a reverse index and atomic storage.

Search order: ``local`` (the user's, writable) → ``session`` (this run only, e.g. an address
helper the user accepted without saving) → ``default`` (shipped ``hosts.txt``, read-only) → one
book per subscription, in the configured order. ``.b32.i2p`` names need no book.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2proxy.i2p.errors import I2PFormatError
from i2proxy.i2p.names import b32_hash_from_name, is_b32_name, is_b33_name
from i2proxy.log import get_logger
from i2proxy.naming import storage
from i2proxy.naming.book import Book, dest_hash
from i2proxy.naming.errors import InvalidDestination, NameConflict, ReadOnlyBook, UnknownBook
from i2proxy.naming.hoststxt import HostsEntry, ParseStats, parse_document, split_lines
from i2proxy.naming.merge import MergeStats, apply_entry, check_entry
from i2proxy.naming.names import normalize, validate_hostname
from i2proxy.naming.signing import parse_destination
from i2proxy.naming.storage import default_data_dir, shipped_hosts_text, subscription_slug

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

log = get_logger("i2proxy.naming")

#: Feeds of the well-known providers. reg.i2p is addressed by its b32 name because its
#: destination is not in the shipped book (the b32 is the one i2pd ships as its default URL).
DEFAULT_SUBSCRIPTIONS: tuple[str, ...] = (
    "http://i2p-projekt.i2p/hosts.txt",
    "http://stats.i2p/cgi-bin/newhosts.txt",
    "http://notbob.i2p/hosts.txt",
    "http://shx5vqsw7usdaunyzr2qmes2fq37oumybpudrd4jjj4e4vk4uusa.b32.i2p/hosts.txt",
)
#: Entries from which the books are frozen out of GC scans (see ``freeze_if_large``).
FREEZE_THRESHOLD = 20_000


def validate_feed_url(url: str) -> str:
    """A subscription URL must be ``http://<name>.i2p/...`` or ``http://<b32>.b32.i2p/...``."""
    from urllib.parse import urlsplit

    url = url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or not host:
        raise ValueError(f"{url!r}: subscriptions are http:// URLs (fetched over I2P)")
    if not (is_b32_name(host) or host.endswith(".i2p")):
        raise ValueError(f"{url!r}: the host must be an .i2p name or a .b32.i2p address")
    if not is_b32_name(host):
        validate_hostname(host)
    return url


def _to_b64(destination: Destination | str) -> str:
    """Accept a Destination or its base64; validate by parsing."""
    if isinstance(destination, str):
        text = destination.strip()
        parse_destination(text)
        return text
    return destination.to_base64()


@dataclass
class _Snapshot:
    books: list[tuple[Book, Path, str, list[tuple[str, list[str]]]]]
    state: dict[str, Any]


class AddressBook:
    """Name → destination resolution over layered books, with subscriptions merged in.

    Methods are safe to call from one event loop; merges apply their (cheap) changes in the
    caller's thread, while parsing and signature checks may run in a worker thread.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        subscriptions: Iterable[str] | None = None,
        default_hosts: bytes | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.local = Book("local", kind="local")
        self.session = Book("session", kind="session")
        self.default = Book("default", kind="default", writable=False)
        self._subs: dict[str, Book] = {}
        self._state: dict[str, Any] = {"subscriptions": {}, "default_masked": []}
        self._masked: set[str] = set()
        self._file_sigs: dict[str, tuple[int, int] | None] = {}
        self._lock = threading.RLock()
        #: True when the feed list comes from subscriptions.txt (refresh() then follows edits).
        self._urls_from_file = False
        self.load_stats: dict[str, ParseStats] = {}
        stats = ParseStats()
        raw = default_hosts if default_hosts is not None else shipped_hosts_text()
        self.default.load_pairs(
            (e.name, e.dest)
            for e in parse_document(split_lines(raw), stats)
            if e.name is not None and e.dest is not None
        )
        self.load_stats["default"] = stats
        if subscriptions is not None:
            for url in subscriptions:
                self._subs.setdefault(url, Book(url, kind="subscription"))

    # --- opening and saving ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path | str | None = None,
        *,
        subscriptions: Iterable[str] | None = None,
        default_hosts: bytes | None = None,
    ) -> AddressBook:
        """Load the books of ``data_dir`` (default: :func:`default_data_dir`), creating it.

        ``subscriptions`` overrides ``subscriptions.txt``; when neither exists the well-known
        feeds are used and written to ``subscriptions.txt`` so the user can edit them.
        """
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        directory = root / "addressbook"
        storage.ensure_private_dir(root)
        storage.ensure_private_dir(directory)
        storage.remove_stale_temp_files(directory)
        storage.remove_stale_temp_files(directory / "subscriptions")
        urls = list(subscriptions) if subscriptions is not None else None
        if urls is None:
            urls = storage.read_url_list(directory / "subscriptions.txt")
            if urls is None:
                urls = list(DEFAULT_SUBSCRIPTIONS)
                storage.atomic_write(directory / "subscriptions.txt", [storage.url_list_text(urls)])
        book = cls(root, subscriptions=urls, default_hosts=default_hosts)
        book._urls_from_file = subscriptions is None
        book._file_sigs["subscriptions.txt"] = storage.file_sig(directory / "subscriptions.txt")
        book._load_all()
        book.freeze_if_large()
        return book

    def freeze_if_large(self) -> bool:
        """Move a big book set out of the cyclic GC's reach (``gc.freeze``).

        A full collection scans every object; with 100 000 entries that is ~70 ms of stalled
        event loop, each time. Book objects are acyclic (dicts, lists, strings) and are still freed
        by reference counting once replaced, so freezing them costs nothing.
        """
        if sum(len(b) for b in self.books()) < FREEZE_THRESHOLD:
            return False
        gc.freeze()
        return True

    @property
    def directory(self) -> Path | None:
        return self.data_dir / "addressbook" if self.data_dir is not None else None

    def _path_of(self, book: Book) -> Path | None:
        directory = self.directory
        if directory is None:
            return None
        if book.kind == "local":
            return directory / "local.txt"
        if book.kind == "subscription":
            return directory / "subscriptions" / f"{subscription_slug(book.name)}.txt"
        return None

    def _load_book(self, book: Book) -> None:
        path = self._path_of(book)
        if path is None:
            return
        book.reset()
        stats = storage.load_book(path, book)
        self._file_sigs[book.name] = storage.file_sig(path)
        self.load_stats[book.name] = stats
        if stats.invalid_total:
            # A subscription book's name is its feed URL: at debug level only.
            log.warning("addressbook.invalid_lines", book=book.kind, invalid=dict(stats.invalid))
            log.debug("addressbook.invalid_lines", book=book.name)

    def _load_all(self) -> None:
        directory = self.directory
        assert directory is not None
        self._load_book(self.local)
        for book in self._subs.values():
            self._load_book(book)
        self._load_state()

    def _load_state(self) -> None:
        directory = self.directory
        if directory is None:
            return
        state = storage.read_json(directory / "state.json")
        subs = state.get("subscriptions")
        self._state = {
            "subscriptions": subs if isinstance(subs, dict) else {},
            "default_masked": [n for n in state.get("default_masked", []) if isinstance(n, str)],
        }
        self._masked = set(self._state["default_masked"])
        self._file_sigs["state.json"] = storage.file_sig(directory / "state.json")

    def refresh(self) -> bool:
        """Reload books another process (the CLI) rewrote since we read them; True if any."""
        changed = False
        with self._lock:
            for book in (self.local, *self._subs.values()):
                path = self._path_of(book)
                if path is not None and storage.file_sig(path) != self._file_sigs.get(book.name):
                    if book.dirty:
                        continue  # ours is newer; it will be written next
                    self._load_book(book)
                    changed = True
            directory = self.directory
            if directory is not None:
                sig = storage.file_sig(directory / "state.json")
                if sig != self._file_sigs.get("state.json"):
                    self._load_state()
                    changed = True
                changed = self._refresh_url_list(directory) or changed
        return changed

    def _refresh_url_list(self, directory: Path) -> bool:
        """Follow edits of subscriptions.txt (``addressbook subscribe`` next to a running proxy)."""
        path = directory / "subscriptions.txt"
        sig = storage.file_sig(path)
        if not self._urls_from_file or sig == self._file_sigs.get("subscriptions.txt"):
            return False
        self._file_sigs["subscriptions.txt"] = sig
        urls = storage.read_url_list(path)
        if urls is None or urls == list(self._subs):
            return False
        old = self._subs
        self._subs = {}
        for url in urls:
            if url in old:
                self._subs[url] = old[url]
            else:
                self.subscription_book(url)
        log.info("addressbook.subscriptions_changed", feeds=len(urls))
        log.debug("addressbook.subscriptions_changed", feeds=urls)
        return True

    def save(self) -> None:
        """Write every changed book, then the state; each file atomically."""
        self.write_snapshot(self.snapshot_for_save())

    def snapshot_for_save(self) -> _Snapshot:
        """Copy what must be written (cheap, in the caller's thread) so that the slow part,
        :meth:`write_snapshot`, can run in a worker thread while lookups and merges go on."""
        with self._lock:
            books = []
            for book in (self.local, *self._subs.values()):
                path = self._path_of(book)
                if book.dirty and path is not None:
                    pairs = [(n, list(d)) for n, d in book.items()]
                    books.append((book, path, storage.book_header(book), pairs))
                    book.dirty = False
            self._state["default_masked"] = sorted(self._masked)
            state = json.loads(json.dumps(self._state))
        return _Snapshot(books, state)

    def write_snapshot(self, snapshot: _Snapshot) -> None:
        """Write a snapshot: books first, state (ETags) last, under the cross-process lock."""
        directory = self.directory
        if directory is None:
            return
        try:
            with storage.exclusive_lock(directory):
                for book, path, header, pairs in snapshot.books:
                    storage.write_book(path, pairs, header)
                    self._file_sigs[book.name] = storage.file_sig(path)
                storage.write_json(directory / "state.json", snapshot.state)
                self._file_sigs["state.json"] = storage.file_sig(directory / "state.json")
        except BaseException:
            for book, *_ in snapshot.books:
                book.dirty = True  # try again on the next save
            raise

    def _write_book(self, book: Book) -> None:
        path = self._path_of(book)
        if path is None:
            return
        storage.write_book(path, list(book.items()), storage.book_header(book))
        book.dirty = False
        self._file_sigs[book.name] = storage.file_sig(path)

    # --- books ----------------------------------------------------------------------------------

    def books(self) -> list[Book]:
        """All books in search order."""
        return [self.local, self.session, self.default, *self._subs.values()]

    def book(self, name: str) -> Book:
        """A book by name: ``local``, ``session``, ``default`` or a subscription URL."""
        for b in self.books():
            if b.name == name:
                return b
        raise UnknownBook(name)

    @property
    def subscription_urls(self) -> list[str]:
        return list(self._subs)

    def subscription_book(self, url: str) -> Book:
        book = self._subs.get(url)
        if book is None:
            book = self._subs[url] = Book(url, kind="subscription")
            self._load_book(book)
        return book

    def subscribe(self, url: str) -> bool:
        """Add a feed URL (saved to subscriptions.txt); False if it was already there."""
        url = validate_feed_url(url)
        if url in self._subs:
            return False
        self.subscription_book(url)
        self._write_url_list()
        return True

    def unsubscribe(self, url: str) -> bool:
        """Drop a feed, its book and its state; False if it was not subscribed."""
        book = self._subs.pop(url, None)
        if book is None:
            return False
        path = self._path_of(book)
        if path is not None:
            path.unlink(missing_ok=True)
        self._state["subscriptions"].pop(url, None)
        self._write_url_list()
        self.save()
        return True

    def _write_url_list(self) -> None:
        directory = self.directory
        if directory is None:
            return
        with storage.exclusive_lock(directory):
            storage.atomic_write(
                directory / "subscriptions.txt", [storage.url_list_text(self._subs)]
            )
        self._file_sigs["subscriptions.txt"] = storage.file_sig(directory / "subscriptions.txt")

    def subscription_state(self, url: str) -> dict[str, Any]:
        """Mutable per-subscription metadata (etag, last_modified, fetch times, counters)."""
        subs = self._state["subscriptions"]
        state = subs.get(url)
        if not isinstance(state, dict):
            state = subs[url] = {}
        return state

    # --- lookups --------------------------------------------------------------------------------

    def find(self, name: str) -> Book | None:
        """The first book, in search order, that binds ``name`` (BookView for merges)."""
        for book in (self.local, self.session):
            if name in book:
                return book
        if name in self.default and name not in self._masked:
            return self.default
        for book in self._subs.values():
            if name in book:
                return book
        return None

    def lookup_b64(self, name: str) -> str | None:
        """Primary base64 destination of a book name (no b32 handling)."""
        name = normalize(name)
        book = self.find(name)
        return book.get(name) if book is not None else None

    def lookup(self, name: str) -> Destination | str | None:
        """Resolve a host name to what a Dialer takes.

        ``<52>.b32.i2p`` (and b33) names come back as the normalized name itself: the router
        resolves them. Book names give a parsed ``Destination``; unknown or invalid names None.
        """
        host = normalize(name)
        if host.endswith(".b32.i2p"):
            return host if is_b32_name(host) or is_b33_name(host) else None
        b64 = self.lookup_b64(host)
        if b64 is None:
            return None
        try:
            return parse_destination(b64)
        except InvalidDestination:
            log.warning("addressbook.unparsable_entry")
            log.debug("addressbook.unparsable_entry", name=host)
            return None

    resolve = lookup

    def lookup_entry(self, name: str) -> tuple[str, str] | None:
        """(book name, base64 destination) for a book name: which book answered."""
        host = normalize(name)
        book = self.find(host)
        if book is None:
            return None
        b64 = book.get(host)
        return (book.name, b64) if b64 is not None else None

    def reverse(self, key: bytes | str) -> str | None:
        """Host name for a destination hash (32 bytes), a ``.b32.i2p`` name or a Destination."""
        if isinstance(key, str):
            try:
                h = b32_hash_from_name(normalize(key))
            except I2PFormatError:  # not a b32 name, or a non-canonical spelling of one
                return None
        elif isinstance(key, bytes | bytearray):
            h = bytes(key)
        else:
            h = key.hash
        for book in (self.local, self.session, self.default, *self._subs.values()):
            for name in book.names_for_hash(h):
                if book is self.default and name in self._masked:
                    continue
                if self.find(name) is book:
                    return name
        return None

    def build_reverse_indexes(self) -> None:
        """Build every book's reverse index now (it is otherwise built on first use).

        Safe in a worker thread: a concurrent change of a book makes that one build start over.
        """
        for book in self.books():
            book.build_reverse_index()

    def holders_of(self, dest_b64: str) -> list[tuple[Book, str]]:
        """Every (book, name) binding ``dest_b64`` (BookView for removeall)."""
        h = dest_hash(dest_b64)
        out: list[tuple[Book, str]] = []
        for book in (self.local, self.session, self.default, *self._subs.values()):
            for name in book.names_for_hash(h):
                if book is self.default and name in self._masked:
                    continue
                out.append((book, name))
        return out

    def mask_default(self, name: str) -> None:
        """Hide a shipped entry that a signed command changed or removed (BookView)."""
        self._masked.add(name)

    def __contains__(self, name: str) -> bool:
        return self.lookup(name) is not None

    def _visible(self) -> Iterator[tuple[Book, str, list[str]]]:
        """(book, name, dests) of every name a lookup can answer, each once, in search order."""
        seen: set[str] = set()
        for book in self.books():
            for name, dests in book.items():
                if name in seen or (book is self.default and name in self._masked):
                    continue
                seen.add(name)
                yield book, name, dests

    def names(self) -> Iterator[tuple[str, str, str]]:
        """(name, book, primary base64) of every visible name, each once, in search order."""
        for book, name, dests in self._visible():
            yield name, book.name, dests[0]

    def export_lines(self, book: str | None = None) -> Iterator[str]:
        """hosts.txt lines (no newline): one book, or every visible name with all its dests."""
        if book is not None:
            for name, dests in self.book(book).items():
                for d in dests:
                    yield f"{name}={d}"
            return
        for _book, name, dests in self._visible():
            for d in dests:
                yield f"{name}={d}"

    # --- changes by the user ----------------------------------------------------------------------

    def add(
        self,
        name: str,
        destination: Destination | str,
        book: str = "local",
        *,
        replace: bool = False,
    ) -> bool:
        """Bind ``name`` in the user's ``local`` (saved at once) or ``session`` book.

        Returns False if it was already bound to that destination there. Raises InvalidName,
        InvalidDestination, or NameConflict when the book binds it elsewhere and not ``replace``.
        Other books are not consulted: the user's choice wins over feeds (local is searched
        first).
        """
        host = validate_hostname(normalize(name))
        b64 = _to_b64(destination)
        target = self._user_book(book)
        with self._lock:
            if target is self.local:
                self._sync_local()
            current = target.get(host)
            if current == b64:
                return False
            if current is not None and not replace:
                raise NameConflict(host, current)
            target.put(host, b64)
            if target is self.local:
                self._persist_local()
        log.info("addressbook.added", book=book)
        log.debug("addressbook.added", name=host, book=book)
        return True

    def add_session(self, name: str, destination: Destination | str) -> bool:
        """Bind ``name`` for this run only (an address-helper choice the user did not save)."""
        return self.add(name, destination, book="session", replace=True)

    def remove(self, name: str, book: str = "local") -> bool:
        """Remove ``name`` from the local or session book; True if it was there."""
        host = normalize(name)
        target = self._user_book(book)
        with self._lock:
            if target is self.local:
                self._sync_local()
            removed = target.remove(host)
            if removed and target is self.local:
                self._persist_local()
        return removed

    def _user_book(self, book: str) -> Book:
        """The book the user may change by hand: ``local`` or ``session``, else ReadOnlyBook."""
        if book == "local":
            return self.local
        if book == "session":
            return self.session
        raise ReadOnlyBook(f"book {book!r} is not writable by the user")

    def _sync_local(self) -> None:
        path = self._path_of(self.local)
        if (
            path is not None
            and not self.local.dirty
            and storage.file_sig(path) != self._file_sigs.get("local")
        ):
            self._load_book(self.local)

    def _persist_local(self) -> None:
        directory = self.directory
        if directory is None:
            return
        with storage.exclusive_lock(directory):
            self._write_book(self.local)

    # --- merging feeds ---------------------------------------------------------------------------

    def merge_text(
        self,
        data: bytes | str,
        *,
        into: str,
        source: str | None = None,
        now: float | None = None,
    ) -> MergeStats:
        """Parse, check and merge a hosts.txt document into a subscription or the local book.

        Synchronous (CLI import, tests); the subscription manager splits the phases instead.
        """
        now = time.time() if now is None else now
        stats = MergeStats(source=source or into)
        entries = list(parse_document(split_lines(data), stats.parse))
        checked = [(e, check_entry(e, now=now)) for e in entries]
        self.apply_checked(checked, into=into, stats=stats)
        self.log_merge(stats)
        return stats

    def apply_checked(
        self,
        checked: Iterable[tuple[HostsEntry, str | None]],
        *,
        into: str,
        stats: MergeStats,
    ) -> MergeStats:
        """Apply (entry, invalid-reason) pairs from :func:`check_entry` to the books."""
        target = self.local if into == "local" else self.subscription_book(into)
        with self._lock:
            if target is self.local:
                self._sync_local()
            for entry, reason in checked:
                if reason is not None:
                    stats.record_invalid(entry, reason)
                    continue
                apply_entry(self, target, entry, stats)
        return stats

    def log_merge(self, stats: MergeStats) -> None:
        """Log a finished merge once: its counters, and at debug level its source and a few
        example notes (they name hosts, and which of them are in the user's own book)."""
        for example in stats.examples:
            log.debug("addressbook.merge_note", source=stats.source, note=example)
        log.debug("addressbook.merged", source=stats.source)
        log.info(
            "addressbook.merged",
            **stats.summary(),
            invalid_reasons=dict(stats.invalid + stats.parse.invalid),
        )
