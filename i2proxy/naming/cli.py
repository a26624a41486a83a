"""``i2proxy addressbook ...``: look up, edit, import, export and update the address book."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from i2proxy.naming.errors import InvalidDestination, InvalidName, NameConflict, NamingError
from i2proxy.naming.names import normalize


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $I2PROXY_DATA_DIR or ~/.local/share/i2proxy)",
    )
    parser = subparsers.add_parser(
        "addressbook",
        help="look up, edit, import/export and update the address book",
        description="The .i2p address book: local book, shipped defaults and subscriptions.",
    )
    sub = parser.add_subparsers(dest="addressbook_command", metavar="ACTION", required=True)

    p = sub.add_parser("lookup", parents=[common], help="resolve NAME, or find the name of a B32")
    p.add_argument("name", metavar="NAME|B32")
    p.add_argument("--b64", action="store_true", help="print only the base64 destination")
    p.set_defaults(handler=_lookup)

    p = sub.add_parser(
        "add",
        parents=[common],
        help="add NAME DEST (or one NAME=DEST hosts.txt line) to your local book",
        description="A destination may start with '-' (I2P base64): put '--' before it, or "
        "pass the hosts.txt form NAME=DEST as one argument.",
    )
    p.add_argument("name", help="host name, or a whole NAME=DEST line")
    p.add_argument("dest", nargs="?", help="base64 destination")
    p.add_argument("--replace", action="store_true", help="replace a different local entry")
    p.set_defaults(handler=_add)

    p = sub.add_parser("remove", parents=[common], help="remove NAME from your local book")
    p.add_argument("name")
    p.set_defaults(handler=_remove)

    p = sub.add_parser(
        "import",
        parents=[common],
        help="merge a hosts.txt file (or an i2pd addressbook directory) into your local book",
    )
    p.add_argument(
        "file", help="hosts.txt file ('-' for stdin), or i2pd's <datadir>/addressbook directory"
    )
    p.set_defaults(handler=_import)

    p = sub.add_parser("export", parents=[common], help="print the address book as hosts.txt")
    p.add_argument("--book", help="only this book (local, default or a subscription URL)")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    p.set_defaults(handler=_export)

    p = sub.add_parser("list", parents=[common], help="list names (and which book has them)")
    p.add_argument("--book", help="only this book (local, default or a subscription URL)")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(handler=_list)

    p = sub.add_parser("update", parents=[common], help="fetch all subscriptions now, over I2P")
    p.add_argument(
        "--router",
        default=None,
        help="i2cp://HOST:PORT or sam://HOST:PORT (default: detect a local router)",
    )
    p.add_argument(
        "--url", action="append", default=None, help="fetch only this subscription (repeatable)"
    )
    p.set_defaults(handler=_update)

    p = sub.add_parser("subscriptions", parents=[common], help="show subscriptions and state")
    p.set_defaults(handler=_subscriptions)

    p = sub.add_parser("subscribe", parents=[common], help="add a subscription feed URL")
    p.add_argument("url", help="http://<name>.i2p/... or http://<b32>.b32.i2p/...")
    p.set_defaults(handler=_subscribe)

    p = sub.add_parser("unsubscribe", parents=[common], help="drop a feed and its names")
    p.add_argument("url")
    p.set_defaults(handler=_unsubscribe)


def _open(args: argparse.Namespace) -> Any:
    from i2proxy.naming.addressbook import AddressBook

    return AddressBook.open(args.data_dir)


def _fail(message: str, code: int = 1) -> int:
    print(f"i2proxy addressbook: {message}", file=sys.stderr)
    return code


def _lookup(args: argparse.Namespace) -> int:
    book = _open(args)
    host = normalize(args.name)
    if host.endswith(".b32.i2p"):
        name = book.reverse(host)
        if name is None:
            return _fail(f"no name for {host} in the address book")
        print(name)
        return 0
    found = book.lookup_entry(host)
    if found is None:
        return _fail(f"{host} is not in the address book")
    book_name, b64 = found
    if args.b64:
        print(b64)
        return 0
    dest = book.lookup(host)
    print(f"{host}\n  book: {book_name}\n  b32:  {dest.b32}\n  destination: {b64}")
    return 0


def _add(args: argparse.Namespace) -> int:
    if args.dest is None:
        args.name, eq, args.dest = args.name.partition("=")
        if not eq:
            return _fail("give NAME DEST, or NAME=DEST")
    book = _open(args)
    try:
        changed = book.add(args.name, args.dest, replace=args.replace)
    except NameConflict as exc:
        return _fail(
            f"{exc.name} is already in your local book with another destination (use --replace)"
        )
    except (InvalidName, InvalidDestination) as exc:
        return _fail(str(exc))
    print(f"{normalize(args.name)}: {'added' if changed else 'already present'}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    book = _open(args)
    if not book.remove(args.name):
        return _fail(f"{normalize(args.name)} is not in your local book")
    print(f"{normalize(args.name)}: removed")
    return 0


def _import(args: argparse.Namespace) -> int:
    from i2proxy.naming.i2pdimport import is_i2pd_addressbook, read_i2pd_addressbook
    from i2proxy.naming.storage import MAX_BOOK_BYTES, read_bounded

    book = _open(args)
    path = Path(args.file)
    if args.file != "-" and (is_i2pd_addressbook(path) or path.name == "addresses.csv"):
        directory = path if path.is_dir() else path.parent
        recovered = read_i2pd_addressbook(directory)
        stats = book.merge_text("\n".join(recovered.lines), into="local", source=str(directory))
        book.save()
        _print_summary(f"{directory} (i2pd address book)", stats)
        if recovered.skipped:
            print(f"  not imported from i2pd's files: {dict(recovered.skipped)}")
        return 0
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(MAX_BOOK_BYTES + 1)
            if len(data) > MAX_BOOK_BYTES:
                return _fail(f"input larger than {MAX_BOOK_BYTES} bytes")
        else:
            data = read_bounded(Path(args.file), MAX_BOOK_BYTES)
    except OSError as exc:
        return _fail(str(exc))
    stats = book.merge_text(data, into="local", source=args.file)
    book.save()
    _print_summary(args.file, stats)
    return 0


def _export(args: argparse.Namespace) -> int:
    book = _open(args)
    try:
        lines = list(book.export_lines(args.book))
    except NamingError as exc:
        return _fail(f"unknown book {exc}")
    text = "".join(f"{line}\n" for line in lines)
    if args.output:
        from i2proxy.naming.storage import atomic_write

        atomic_write(args.output, [text.encode()], mode=0o644)
    else:
        sys.stdout.write(text)
    return 0


def _list(args: argparse.Namespace) -> int:
    book = _open(args)
    try:
        if args.book:
            rows = [(n, args.book, d[0]) for n, d in book.book(args.book).items()]
        else:
            rows = list(book.names())
    except NamingError as exc:
        return _fail(f"unknown book {exc}")
    from i2proxy.i2p.base64 import b32encode
    from i2proxy.naming.book import dest_hash

    for name, book_name, b64 in rows:
        b32 = b32encode(dest_hash(b64)) + ".b32.i2p"
        if args.json:
            print(json.dumps({"name": name, "book": book_name, "b32": b32}))
        else:
            print(f"{name}\t{b32}\t{book_name}")
    return 0


def _subscriptions(args: argparse.Namespace) -> int:
    book = _open(args)
    for url in book.subscription_urls:
        state = book.subscription_state(url)
        print(json.dumps({"url": url, "names": len(book.subscription_book(url)), **state}))
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    book = _open(args)
    try:
        added = book.subscribe(args.url)
    except ValueError as exc:
        return _fail(str(exc))
    print(f"{args.url}: {'subscribed' if added else 'already subscribed'}")
    return 0


def _unsubscribe(args: argparse.Namespace) -> int:
    book = _open(args)
    if not book.unsubscribe(args.url.strip()):
        return _fail(f"{args.url} is not a subscription")
    print(f"{args.url}: unsubscribed")
    return 0


def _print_summary(source: str, stats: Any) -> None:
    s = stats.summary()
    reasons = dict(stats.invalid + stats.parse.invalid)
    print(
        f"{source}: added {s['added']}, changed {s['changed']}, removed {s['removed']}, "
        f"ignored as conflicts {s['conflicts']}, invalid {s['invalid']}"
        + (f" {reasons}" if reasons else "")
        + f", unchanged {s['unchanged']}"
    )


def _update(args: argparse.Namespace) -> int:
    return asyncio.run(_update_async(args))


async def _update_async(args: argparse.Namespace) -> int:
    book = _open(args)
    urls = args.url or book.subscription_urls
    unknown = [u for u in urls if u not in book.subscription_urls]
    if unknown:
        return _fail(f"not subscribed: {', '.join(unknown)} (add with `addressbook subscribe`)")
    from i2proxy.dialer.select import make_dialer
    from i2proxy.naming.subscriptions import SubscriptionManager

    try:
        dialer = make_dialer(args.router)
    except ValueError as exc:
        return _fail(str(exc), 2)

    def progress(url: str, event: str, info: dict[str, Any]) -> None:
        if event == "fetching":
            print(f"{url}: fetching ...", flush=True)
        elif event == "merging":
            print(f"{url}: {info['bytes']} bytes, verifying and merging ...", flush=True)
        elif event == "failed":
            print(f"{url}: FAILED: {info['error']}", flush=True)
        elif event == "not-modified":
            print(f"{url}: not modified (304)", flush=True)
        elif event == "updated":
            _print_summary(url, info["stats"])

    try:
        await dialer.start()
    except Exception as exc:
        return _fail(f"cannot reach the router: {exc}", 3)
    manager = SubscriptionManager(book, dialer)
    try:
        outcomes = [await manager.update_one(url, progress) for url in urls]
    finally:
        await manager.close()
        await dialer.close()
    totals = {"added": 0, "changed": 0, "removed": 0, "conflicts": 0, "invalid": 0, "unchanged": 0}
    for o in outcomes:
        for k, v in o.stats.summary().items():
            totals[k] += v
    failed = sum(o.result == "failed" for o in outcomes)
    print(
        f"total: {len(outcomes)} subscriptions ({failed} failed): added {totals['added']}, "
        f"changed {totals['changed']}, removed {totals['removed']}, ignored as conflicts "
        f"{totals['conflicts']}, invalid {totals['invalid']}, unchanged {totals['unchanged']}"
    )
    return 1 if failed == len(outcomes) and outcomes else 0
