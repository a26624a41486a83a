#!/usr/bin/env python3
"""Bring up a Docker engine and a locally built Debian base image on a machine with no registry.

Why this exists: CI and developer machines here have Debian's package mirror and PyPI but no image
registry and no running engine. This script makes the image tests self-sufficient on a fresh
machine (as root):

1. installs ``docker.io`` and ``debootstrap`` from Debian when they are missing;
2. starts ``dockerd`` (vfs storage, no bridge, no iptables: containers use the host network) with
   its own data root and pidfile, unless an engine already answers;
3. builds ``local/debian:bookworm`` with ``debootstrap`` from the mirror apt already uses and
   imports it, unless that image already exists (the data root persists, so it is built once).

Usage (prints one JSON object on stdout, progress on stderr)::

    python docker/testing/engine.py up      # packages + engine + base image
    python docker/testing/engine.py status
    python docker/testing/engine.py down    # stops dockerd only if this script started it and
                                            # no other holder (--holder PID, default: the
                                            # caller) still uses it

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_IMAGE = "local/debian:bookworm"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("docker.io", "debootstrap")

#: Where the engine this script starts keeps its state. The data root survives reboots so the
#: imported base image (and the build cache) are reused; the pidfile marks "we started it".
DATA_ROOT = Path(os.environ.get("I2PROXY_DOCKER_DATA_ROOT", "/var/lib/i2proxy-docker"))
EXEC_ROOT = Path(os.environ.get("I2PROXY_DOCKER_EXEC_ROOT", "/run/i2proxy-docker"))
PIDFILE = EXEC_ROOT / "dockerd.pid"
#: One file per process using the engine (a test session): ``down`` stops the engine only when
#: no other live holder remains, so concurrent sessions on one machine do not pull it away.
LEASES = EXEC_ROOT / "leases"
LOCKFILE = EXEC_ROOT / "engine.lock"
LOGFILE = DATA_ROOT.parent / "i2proxy-dockerd.log"
SOCKET = "unix:///var/run/docker.sock"


def log(message: str) -> None:
    print(f"[engine] {message}", file=sys.stderr, flush=True)


def docker_client() -> str:
    """The client to use: Debian's (same release as its engine) before whatever PATH offers.

    A newer client on PATH may default to BuildKit/buildx, which the Debian engine lacks.
    """
    explicit = os.environ.get("DOCKER")
    if explicit:
        return explicit
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if found is None:
        raise SystemExit("no docker client found (install docker.io)")
    return found


def engine_answers(client: str) -> bool:
    try:
        result = subprocess.run(
            [client, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def ensure_packages() -> list[str]:
    """Install what is missing; returns the packages installed."""
    missing = [
        package
        for package, binary in zip(PACKAGES, ("dockerd", "debootstrap"), strict=True)
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()
    ]
    if not missing:
        return []
    log(f"installing {' '.join(missing)}")
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", *missing]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(command, env=env).returncode != 0:
        # A fresh machine may have stale or no package lists.
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], env=env, check=True)
        subprocess.run(command, env=env, check=True)
    return missing


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def our_dockerd_pid() -> int | None:
    """The pid of the dockerd this script started, if it still runs."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"dockerd" in cmdline and _pid_alive(pid) else None


def start_engine(client: str, timeout: float = 60.0) -> int:
    """Start dockerd as the notes describe; returns its pid once ``docker info`` answers."""
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    EXEC_ROOT.mkdir(parents=True, exist_ok=True)
    command = [
        dockerd,
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        f"--data-root={DATA_ROOT}",
        f"--exec-root={EXEC_ROOT}",
        f"--pidfile={PIDFILE}",
        f"--host={SOCKET}",
    ]
    log(f"starting {' '.join(command)} (log: {LOGFILE})")
    with open(LOGFILE, "ab") as logfile:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the caller's process group (pytest, a shell)
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"dockerd exited with {process.returncode}; see {LOGFILE}")
        if engine_answers(client):
            return process.pid
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"dockerd did not answer within {timeout:.0f}s; see {LOGFILE}")


def stop_engine(timeout: float = 30.0) -> bool:
    """Stop the dockerd this script started (never another one). True if one was stopped."""
    pid = our_dockerd_pid()
    if pid is None:
        return False
    log(f"stopping dockerd {pid}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.2)
    if _pid_alive(pid):
        log(f"dockerd {pid} ignored SIGTERM for {timeout:.0f}s; killing it")
        os.kill(pid, signal.SIGKILL)
    return True


def apt_mirror() -> str:
    """The Debian mirror apt already uses (one-line and deb822 sources), else the default."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if path.suffix not in (".list", ".sources") and path.name != "sources.list":
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (key.strip().lower(), value.strip())
                    for key, _, value in (
                        line.partition(":")
                        for line in stanza.splitlines()
                        if line and not line.startswith("#")
                    )
                )
                suites = fields.get("suites", "").split()
                if "deb" in fields.get("types", "").split() and SUITE in suites:
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match and match.group(2) == SUITE:
                    return match.group(1)
    return DEFAULT_MIRROR


def image_exists(client: str, image: str) -> bool:
    result = subprocess.run([client, "image", "inspect", image], capture_output=True)
    return result.returncode == 0


def build_base_image(client: str) -> float:
    """debootstrap a minimal bookworm and ``docker import`` it; returns the seconds it took."""
    mirror = apt_mirror()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="i2proxy-rootfs-", dir="/var/tmp"))
    rootfs = workdir / "rootfs"
    try:
        log(f"debootstrap --variant=minbase {SUITE} from {mirror}")
        subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
            check=True,
            stdout=sys.stderr,
        )
        # Leave apt clean and small: no package lists or downloaded .debs in the image.
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        log(f"importing {BASE_IMAGE}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [client, "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
            stdin=tar.stdout,
            check=True,
            stdout=sys.stderr,
        )
        if tar.wait() != 0:
            raise SystemExit("tar of the debootstrap root failed")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return time.monotonic() - started


@contextlib.contextmanager
def engine_lock() -> object:
    """Serialise up/down between processes (start, lease, stop must not interleave)."""
    EXEC_ROOT.mkdir(parents=True, exist_ok=True)
    with open(LOCKFILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def live_holders() -> list[int]:
    """Pids holding a lease that still run; leases of dead processes are removed."""
    holders = []
    for lease in LEASES.glob("*") if LEASES.exists() else []:
        try:
            pid = int(lease.name)
        except ValueError:
            continue
        if _pid_alive(pid):
            holders.append(pid)
        else:
            lease.unlink(missing_ok=True)
    return sorted(holders)


def take_lease(holder: int) -> None:
    LEASES.mkdir(parents=True, exist_ok=True)
    (LEASES / str(holder)).touch()


def release(holder: int) -> dict[str, object]:
    """Drop ``holder``'s lease; stop the engine if this script started it and no one holds it."""
    with engine_lock():
        (LEASES / str(holder)).unlink(missing_ok=True)
        others = live_holders()
        if others:
            return {"stopped": False, "holders": others}
        return {"stopped": stop_engine(), "holders": []}


def up(holder: int) -> dict[str, object]:
    if os.geteuid() != 0:
        raise SystemExit("run as root: it installs packages and starts dockerd")
    timings: dict[str, float] = {}
    started = time.monotonic()
    installed = ensure_packages()
    timings["packages_s"] = round(time.monotonic() - started, 1)
    client = docker_client()
    started_engine = False
    with engine_lock():
        take_lease(holder)
        if not engine_answers(client):
            if our_dockerd_pid() is not None:
                stop_engine()  # ours but not answering: start it afresh
            started = time.monotonic()
            start_engine(client)
            started_engine = True
            timings["engine_start_s"] = round(time.monotonic() - started, 1)
    base_built = False
    if not image_exists(client, BASE_IMAGE):
        timings["base_image_s"] = round(build_base_image(client), 1)
        base_built = True
    return {
        **status(),
        "installed": installed,
        "started_engine": started_engine,
        "base_image_built": base_built,
        "timings": timings,
    }


def status() -> dict[str, object]:
    client = docker_client() if shutil.which("docker") or Path("/usr/bin/docker").exists() else ""
    answers = bool(client) and engine_answers(client)
    return {
        "docker": client,
        "engine": answers,
        "ours_pid": our_dockerd_pid(),
        "base_image": BASE_IMAGE if answers and image_exists(client, BASE_IMAGE) else None,
        "mirror": apt_mirror(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "status", "down"))
    parser.add_argument(
        "--holder",
        type=int,
        default=os.getppid(),
        help="pid that uses the engine until it calls down or exits (default: the caller)",
    )
    args = parser.parse_args(argv)
    if args.action == "up":
        result = up(args.holder)
    elif args.action == "down":
        result = release(args.holder)
    else:
        result = status()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
