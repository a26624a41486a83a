"""Merging a feed into the address book: first come, first served, changed only by signed commands.

Sans-IO and in two phases so the caller can keep its event loop responsive:

1. :func:`check_entry` — pure and CPU-bound (destination parsing, signature checks); run it in a
   worker thread for big feeds.
2. :func:`apply_entry` — cheap dictionary updates against the books; run it where the books live.

Rules (Java I2P's, with the holes closed; see docs/ADDRESSBOOK.md):

- a plain or signed ``name=dest`` for an unknown name is added to the feed's book; for a known name
  it is *unchanged* (same destination) or a *conflict* (another one), logged and ignored;
- every line carrying properties must have a valid ``sig``; ``adddest``, ``changedest`` and
  ``addsubdomain`` also a valid ``oldsig`` by ``olddest``;
- a command may change a name only if its old value (``olddest`` / ``oldname``) matches what the
  book holds; names in the user's local and session books are never changed by a feed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from i2proxy.naming.book import Book
from i2proxy.naming.errors import InvalidDestination, InvalidName
from i2proxy.naming.hoststxt import ACTIONS, HostsEntry, ParseStats
from i2proxy.naming.names import validate_hostname
from i2proxy.naming.signing import has_valid_inner_sig, has_valid_sig, parse_destination

#: Book kinds whose entries a feed never changes: the user's own choices.
PROTECTED_KINDS = frozenset({"local", "session"})
_MAX_EXAMPLES = 20


@dataclass
class MergeStats:
    """Outcome of merging one source; ``invalid`` counts per reason (parse and check failures)."""

    source: str = ""
    added: int = 0
    changed: int = 0
    removed: int = 0
    conflicts: int = 0
    unchanged: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    parse: ParseStats = field(default_factory=ParseStats)
    #: A few "name: reason" lines for the log, so a bad feed is diagnosable without flooding it.
    examples: list[str] = field(default_factory=list)

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values()) + self.parse.invalid_total

    def note(self, text: str) -> None:
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(text)

    def record_invalid(self, entry: HostsEntry, reason: str) -> None:
        """Count an entry :func:`check_entry` refused, and note it by name (or its ``name``
        property on a command-only ``#!`` line)."""
        self.invalid[reason] += 1
        self.note(f"{entry.name or (entry.props or {}).get('name', '#!')}: {reason}")

    def summary(self) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "conflicts": self.conflicts,
            "unchanged": self.unchanged,
            "invalid": self.invalid_total,
        }


class BookView(Protocol):
    """What the merge needs from the address book."""

    def find(self, name: str) -> Book | None:
        """The first book, in search order, that binds ``name``."""
        ...

    def holders_of(self, dest_b64: str) -> list[tuple[Book, str]]:
        """Every (book, name) whose destinations include ``dest_b64``."""
        ...

    def mask_default(self, name: str) -> None:
        """Hide a shipped default entry that a signed command superseded."""
        ...


def check_entry(entry: HostsEntry, *, now: float) -> str | None:
    """Validate one parsed line: None if it may be applied, else the reason it is invalid."""
    if entry.name is not None:
        try:
            parse_destination(entry.dest or "")
        except InvalidDestination:
            return "bad-destination"
    props = entry.props
    if props is None:
        return None
    expires = props.get("expires")
    if expires is not None:
        try:
            if int(expires) < now:
                return "expired"
        except ValueError:
            return "bad-expires"
    action = props.get("action")
    if action is not None and action not in ACTIONS:
        return "unknown-action"
    if "sig" not in props:
        return "missing-signature"
    if entry.name is None:
        if action not in ("remove", "removeall"):
            return "unknown-action"
        if "dest" not in props or (action == "remove" and "name" not in props):
            return "missing-key"
        if "name" in props:
            try:
                validate_hostname(props["name"])
            except InvalidName:
                return "bad-name"
        return None if has_valid_sig(entry) else "bad-signature"
    if action in ("remove", "removeall"):
        return "remove-with-entry"
    if action in ("addname", "changename", "addsubdomain"):
        oldname = props.get("oldname")
        if not oldname:
            return "missing-oldname"
        try:
            validate_hostname(oldname)
        except InvalidName:
            return "bad-oldname"
        if action == "addsubdomain" and not entry.name.endswith("." + oldname):
            return "not-a-subdomain"
    if not has_valid_sig(entry):
        return "bad-signature"
    if action in ("adddest", "changedest", "addsubdomain"):
        if "olddest" not in props or "oldsig" not in props:
            return "missing-oldsig"
        if not has_valid_inner_sig(entry):
            return "bad-inner-signature"
    return None


def _place(view: BookView, target: Book, holder: Book, name: str, dests: list[str] | None) -> bool:
    """Rebind ``name`` (None: remove it) in a feed-owned book; False if the holder is protected."""
    if holder.kind in PROTECTED_KINDS:
        return False
    if holder.kind == "default":
        view.mask_default(name)
        holder = target
    if dests is None:
        holder.remove(name)
        return True
    holder.put(name, dests[0])
    for d in dests[1:]:
        holder.add_alternate(name, d)
    return True


def _add_new(view: BookView, target: Book, name: str, dest: str, stats: MergeStats) -> None:
    holder = view.find(name)
    if holder is None:
        target.put(name, dest)
        stats.added += 1
    elif dest in (holder.get_all(name) or ()):
        stats.unchanged += 1
    else:
        stats.conflicts += 1
        stats.note(f"{name}: conflict, kept the destination from book {holder.name!r}")


def apply_entry(view: BookView, target: Book, entry: HostsEntry, stats: MergeStats) -> None:
    """Apply one entry that passed :func:`check_entry` to the books."""
    props = entry.props or {}
    action = props.get("action")
    if entry.name is None:
        _apply_remove(view, target, props, action, stats)
        return
    name, dest = entry.name, entry.dest
    assert dest is not None
    if action is None or action == "update":
        _add_new(view, target, name, dest, stats)
        return
    holder = view.find(name)
    current = holder.get_all(name) if holder is not None else None
    if action in ("addname", "addsubdomain", "changename"):
        if holder is not None:
            if current and dest in current:
                stats.unchanged += 1
            else:
                stats.conflicts += 1
                stats.note(f"{name}: {action} for a name already taken")
            return
        oldname = props["oldname"]
        old_holder = view.find(oldname)
        old_dests = old_holder.get_all(oldname) if old_holder is not None else None
        expected = props["olddest"] if action == "addsubdomain" else dest
        if old_dests is not None and expected not in old_dests:
            stats.invalid["old-value-mismatch"] += 1
            stats.note(f"{name}: {action} does not match {oldname} in book {old_holder.name!r}")
            return
        target.put(name, dest)
        stats.added += 1
        if action == "changename" and old_holder is not None and old_dests is not None:
            remaining = [d for d in old_dests if d != dest] or None
            if _place(view, target, old_holder, oldname, remaining):
                stats.removed += 1
        return
    # adddest / changedest: the name keeps its place, its destinations change.
    if holder is None or not current:
        target.put(name, dest)
        stats.added += 1
        return
    if dest in current:
        stats.unchanged += 1
        return
    if props["olddest"] not in current:
        stats.invalid["old-value-mismatch"] += 1
        stats.note(f"{name}: {action} olddest is not the destination in book {holder.name!r}")
        return
    new = [*current, dest] if action == "adddest" else [dest]
    if _place(view, target, holder, name, new):
        stats.changed += 1
    else:
        stats.conflicts += 1
        stats.note(f"{name}: {action} refused, the name is in the user's {holder.name} book")


def _apply_remove(
    view: BookView,
    target: Book,
    props: Mapping[str, str],
    action: str | None,
    stats: MergeStats,
) -> None:
    dest = props["dest"]
    if action == "remove":
        targets = []
        holder = view.find(props["name"])
        if holder is not None:
            current = holder.get_all(props["name"]) or []
            if dest not in current:
                stats.invalid["old-value-mismatch"] += 1
                stats.note(f"{props['name']}: remove for another destination")
                return
            targets.append((holder, props["name"]))
    else:
        targets = view.holders_of(dest)
    if not targets:
        stats.unchanged += 1
        return
    for holder, name in targets:
        remaining = [d for d in (holder.get_all(name) or []) if d != dest] or None
        if _place(view, target, holder, name, remaining):
            stats.removed += 1
        else:
            stats.conflicts += 1
            stats.note(f"{name}: {action} refused, the name is in the user's {holder.name} book")
