"""Files of the address book in the data directory, every write atomic.

Layout (``<data_dir>/addressbook/``)::

    local.txt                  the user's book (hosts.txt format, writable by hand too)
    subscriptions.txt          subscription URLs, one per line ('#' comments)
    subscriptions/<slug>.txt   one book per subscription (hosts.txt format)
    state.json                 per-subscription ETag / Last-Modified / fetch times / counters,
                               and default-book names superseded by signed commands

Why hosts.txt files and not a database: they are what every I2P tool imports and exports, a user
can read and fix them with an editor, and a whole-file rewrite (temp file, fsync, rename, fsync
of the directory) gives crash atomicity without a journal. A kill -9 at any point leaves either
the old or the new file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from i2proxy.log import get_logger
from i2proxy.naming.book import Book
from i2proxy.naming.hoststxt import ParseStats, parse_document, split_lines

log = get_logger("i2proxy.naming")

#: Largest book file read from disk (100 000 entries are ~55 MB).
MAX_BOOK_BYTES = 512 * 1024 * 1024
#: Largest state.json / subscriptions.txt.
MAX_SMALL_FILE_BYTES = 4 * 1024 * 1024
#: ``.<name>.<pid>.<random>.tmp`` (and the older ``.<name>.<pid>.tmp``): the writer's pid.
_TMP_RE = re.compile(r"^\..+\.(\d+)(?:\.[A-Za-z0-9_]+)?\.tmp$")


LOCAL_HEADER = (
    "i2proxy local address book (hosts.txt format): name=base64-destination, one per line.\n"
    "Your own names; searched first. Edit with `i2proxy addressbook add/remove` or by hand."
)
SUBSCRIPTIONS_HEADER = (
    "i2proxy address book subscriptions: one http://<name>.i2p/... URL per line.\n"
    "Fetched over I2P every 12 hours; '#' starts a comment."
)


def default_data_dir() -> Path:
    """``$I2PROXY_DATA_DIR``, else ``$XDG_DATA_HOME/i2proxy``, else ``~/.local/share/i2proxy``."""
    env = os.environ.get("I2PROXY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "i2proxy"


def shipped_hosts_text() -> bytes:
    """The shipped default book (``i2proxy/naming/hosts.txt``, the repository's ``hosts.txt``)."""
    return resources.files("i2proxy.naming").joinpath("hosts.txt").read_bytes()


def subscription_slug(url: str) -> str:
    """A stable, readable file name for a subscription URL."""
    readable = re.sub(r"[^a-z0-9.\-]+", "_", url.lower().split("://", 1)[-1]).strip("_")[:60]
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


def book_header(book: Book) -> str:
    """The comment a saved book file starts with."""
    return LOCAL_HEADER if book.kind == "local" else f"subscription {book.name}"


def url_list_text(urls: Iterable[str]) -> bytes:
    """subscriptions.txt: the explanatory header as comments, then one URL a line."""
    header = "".join(f"# {line}\n" for line in SUBSCRIPTIONS_HEADER.splitlines())
    return (header + "".join(f"{u}\n" for u in urls)).encode()


def file_sig(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, None if absent: cheap change detection for ``refresh``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


class FileTooLarge(OSError):
    """A file in the data directory exceeds its size bound."""


class UnsafeDirectory(PermissionError):
    """A data directory belongs to someone else or others may write into it."""


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (0700) or check an existing one before trusting what it holds.

    Anyone who can write into it could swap a book, or plant a symlink for us to write through;
    so it must be ours and not group/world-writable (sticky or not). Readable by others only
    earns a warning: the saved names tell what the user visits.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(errno.ENOTDIR, f"{directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectory(
            errno.EPERM,
            f"{directory} belongs to uid {info.st_uid}, not to us (uid {os.geteuid()}); "
            "use a data directory of your own (--data-dir, I2PROXY_DATA_DIR)",
        )
    if info.st_mode & 0o022:
        raise UnsafeDirectory(
            errno.EPERM,
            f"{directory} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"fix it with: chmod go-w {directory}",
        )
    if info.st_mode & 0o044:
        log.warning(
            "data directory readable by others",
            directory=str(directory),
            mode=f"{stat.S_IMODE(info.st_mode):o}",
            fix=f"chmod go-rwx {directory}",
        )


def read_bounded(path: Path, limit: int) -> bytes:
    """Read a whole file, refusing more than ``limit`` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(errno.EFBIG, f"{path} is larger than {limit} bytes")
    return data


def fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory that holds the entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, chunks: Iterable[bytes], *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``chunks`` so that a crash leaves the old or the new content.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    The temp file gets an unpredictable name and is created with ``O_EXCL | O_NOFOLLOW``
    (``mkstemp``): a file or symlink planted under a guessable name cannot redirect the write.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def remove_stale_temp_files(directory: Path) -> int:
    """Delete temp files left by writers that died (their pid is gone); returns how many."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        match = _TMP_RE.match(entry.name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- books -------------------------------------------------------------------------------------


def book_lines(
    pairs: Iterable[tuple[str, list[str]]], header: str | None = None
) -> Iterator[bytes]:
    """A book in hosts.txt format; alternates of a name are further lines with the same name."""
    if header:
        for line in header.splitlines():
            yield f"# {line}\n".encode() if line else b"#\n"
    batch: list[str] = []
    for name, dests in pairs:
        for d in dests:
            batch.append(f"{name}={d}\n")
        if len(batch) >= 4096:
            yield "".join(batch).encode()
            batch.clear()
    if batch:
        yield "".join(batch).encode()


def write_book(
    path: Path, pairs: Iterable[tuple[str, list[str]]], header: str | None = None
) -> None:
    """Atomically write a book given as (name, destinations) pairs."""
    atomic_write(path, book_lines(pairs, header))


def load_book(path: Path, book: Book, *, limit: int = MAX_BOOK_BYTES) -> ParseStats:
    """Fill ``book`` from a hosts.txt file; invalid lines are skipped and counted, never fatal.

    A missing file is an empty book.
    """
    stats = ParseStats()
    try:
        data = read_bounded(path, limit)
    except FileNotFoundError:
        return stats
    book.load_pairs(
        (e.name, e.dest)
        for e in parse_document(split_lines(data), stats)
        if e.name is not None and e.dest is not None
    )
    book.dirty = False
    return stats


# --- small files -------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a missing or corrupt file gives {} (state is advisory)."""
    try:
        value = json.loads(read_bounded(path, MAX_SMALL_FILE_BYTES))
    except (FileNotFoundError, ValueError, FileTooLarge):
        return {}
    return value if isinstance(value, dict) else {}


def write_json(path: Path, value: dict[str, Any]) -> None:
    atomic_write(path, [json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"])


def read_url_list(path: Path) -> list[str] | None:
    """URLs of subscriptions.txt (comments and blanks skipped); None if the file is absent."""
    try:
        data = read_bounded(path, MAX_SMALL_FILE_BYTES)
    except FileNotFoundError:
        return None
    urls: list[str] = []
    for line in split_lines(data):
        line = line.strip()
        if line and not line.startswith(("#", ";")) and line not in urls:
            urls.append(line)
    return urls


@contextlib.contextmanager
def exclusive_lock(directory: Path) -> Iterator[None]:
    """Serialize read-modify-write cycles of several processes (CLI next to a running proxy)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_NOFOLLOW: a symlink planted as .lock must not make us create or lock another file.
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
