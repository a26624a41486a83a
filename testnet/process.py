"""Start and stop the network's own processes, by pid, never by name.

Every process we start has the network's state directory on its command line; before signalling
a pid we check that marker, so a recycled pid of somebody else's process is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

#: Popen objects of the children this process started, so they are reaped, not left as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached (own session, survives the CLI), output appended to ``log_path``."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    _children[proc.pid] = proc
    return proc.pid


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def owns(pid: int, marker: str) -> bool:
    """True when ``pid`` runs with ``marker`` (our state directory) on its command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline


def signal_own(pid: int, marker: str, sig: int) -> bool:
    if not owns(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True


async def terminate(pid: int | None, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM ``pid`` if it is ours, wait for it to exit, SIGKILL after ``timeout``."""
    if pid is None or not signal_own(pid, marker, signal.SIGTERM):
        if pid is not None:
            _reap(pid)
        return
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            signal_own(pid, marker, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        await asyncio.sleep(0.05)
    proc = _children.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
