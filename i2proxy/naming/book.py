"""One address book in memory: name -> destinations, plus a reverse index hash -> names.

Destinations are kept as their base64 text (what hosts.txt stores) and parsed only when looked
up, so loading 100 000 entries costs dictionary inserts, not 100 000 Destination parses.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

#: Most destinations one name may carry (adddest aliases); Java I2P uses the same limit.
MAX_DESTS_PER_NAME = 8


def dest_hash(dest_b64: str) -> bytes:
    """SHA-256 of the destination bytes: the hash behind its ``.b32.i2p`` name."""
    return hashlib.sha256(base64.b64decode(dest_b64, altchars=b"-~", validate=False)).digest()


class Book:
    """Names in insertion order; each name has one or more destinations, the first is primary."""

    def __init__(self, name: str, *, kind: str = "subscription", writable: bool = True) -> None:
        self.name = name
        #: "local", "session", "default" or "subscription": decides who may change an entry.
        self.kind = kind
        self.writable = writable
        self._entries: dict[str, list[str]] = {}
        self._by_hash: dict[bytes, list[str]] | None = None  # built on first reverse lookup
        #: Change counter, odd while a change is under way (a seqlock): an index built in another
        #: thread meanwhile is thrown away. See :meth:`build_reverse_index`.
        self._version = 0
        #: Set on every change; storage clears it after a successful write.
        self.dirty = False

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self) -> Iterator[tuple[str, list[str]]]:
        """(name, destinations) pairs in insertion order."""
        return iter(self._entries.items())

    def get(self, name: str) -> str | None:
        """Primary destination of ``name``."""
        dests = self._entries.get(name)
        return dests[0] if dests else None

    def get_all(self, name: str) -> list[str] | None:
        dests = self._entries.get(name)
        return list(dests) if dests else None

    # --- changes -------------------------------------------------------------------------------

    def put(self, name: str, dest: str) -> None:
        """Bind ``name`` to exactly ``dest`` (replacing any previous destinations)."""
        old = self._entries.get(name)
        if old == [dest]:
            return
        self._version += 1
        if old:
            for d in old:
                self._unindex(name, d)
        self._entries[name] = [dest]
        self._index(name, dest)
        self.dirty = True
        self._version += 1

    def add_alternate(self, name: str, dest: str) -> bool:
        """Add a further destination to a known name (adddest); False when full or present."""
        dests = self._entries.get(name, [])
        if dest in dests or len(dests) >= MAX_DESTS_PER_NAME:
            return False
        self._version += 1
        dests.append(dest)
        self._entries[name] = dests
        self._index(name, dest)
        self.dirty = True
        self._version += 1
        return True

    def remove(self, name: str, dest: str | None = None) -> bool:
        """Remove ``name`` (or only its ``dest``); True if something was removed."""
        dests = self._entries.get(name)
        if not dests or (dest is not None and dest not in dests):
            return False
        self._version += 1
        if dest is None:
            removed = dests
            del self._entries[name]
        else:
            removed = [dest]
            dests.remove(dest)
            if not dests:
                del self._entries[name]
        for d in removed:
            self._unindex(name, d)
        self.dirty = True
        self._version += 1
        return True

    def reset(self) -> None:
        """Forget everything before a reload from disk (not a change: dirty stays False)."""
        self._version += 1
        self._entries.clear()
        self._by_hash = None
        self.dirty = False
        self._version += 1

    # --- reverse index -------------------------------------------------------------------------

    def names_for_hash(self, h: bytes) -> list[str]:
        """Names whose destinations hash to ``h`` (insertion order)."""
        index = self._by_hash
        if index is None:
            index = self._by_hash = self._indexed_entries()
        return list(index.get(h, ()))

    def build_reverse_index(self, attempts: int = 5) -> bool:
        """Build the reverse index now (else it is built on first use); True when built.

        Safe in a worker thread while the event loop changes the book: a change that began before
        or during the build shows in ``_version``, and that index is thrown away and built again
        (a change after the index is published updates it itself). After ``attempts`` tries the
        index is left to the first lookup.
        """
        for _attempt in range(attempts):
            version = self._version
            if version % 2:  # a change is half done
                continue
            try:
                index = self._indexed_entries()
            except RuntimeError:  # dictionary changed size during iteration
                continue
            self._by_hash = index
            if version == self._version:
                return True
            self._by_hash = None  # a change may have slipped past the build
        return False

    def _indexed_entries(self) -> dict[bytes, list[str]]:
        index: dict[bytes, list[str]] = {}
        for name, dests in self._entries.items():
            for d in dests:
                index.setdefault(dest_hash(d), []).append(name)
        return index

    def _index(self, name: str, dest: str) -> None:
        if self._by_hash is not None:
            names = self._by_hash.setdefault(dest_hash(dest), [])
            if name not in names:
                names.append(name)

    def _unindex(self, name: str, dest: str) -> None:
        if self._by_hash is not None:
            h = dest_hash(dest)
            names = self._by_hash.get(h)
            if names and name in names:
                names.remove(name)
                if not names:
                    del self._by_hash[h]

    # --- bulk load (storage) --------------------------------------------------------------------

    def load_pairs(self, pairs: Iterator[tuple[str, str]]) -> None:
        """Load trusted (already validated) pairs; a repeated name adds an alternate destination."""
        self._version += 1
        try:
            entries = self._entries
            for name, dest in pairs:
                dests = entries.get(name)
                if dests is None:
                    entries[name] = [dest]
                elif dest not in dests and len(dests) < MAX_DESTS_PER_NAME:
                    dests.append(dest)
            self._by_hash = None
        finally:
            self._version += 1
