"""Which router software runs where: the i2pd binaries, the Java I2P dist, their versions, mixes.

Three kinds of router join one network: Debian's i2pd 2.45.1 (``i2pd`` in PATH), i2pd 2.58.0
(a binary built from the official tag, kept beside the repository in ``../shared/i2pd/``) and
Java I2P 2.7.0 (``../shared/javai2p/``: jars with a test-network-only patch). Neither of the
last two is ever copied into the repository; environment variables point elsewhere if needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path

#: Debian bookworm's i2pd (router version 0.9.57).
I2PD_OLD = "2.45.1"
#: i2pd 2.58.0 (router version 0.9.67): uses only floodfills of version >= 0.9.59.
I2PD_NEW = "2.58.0"
I2PD_258_ENV = "I2PROXY_TESTNET_I2PD_258"
JAVA_DIST_ENV = "I2PROXY_TESTNET_JAVAI2P"
I2PD_258_RELATIVE = Path("shared/i2pd/i2pd-2.58.0")
JAVA_DIST_RELATIVE = Path("shared/javai2p")

#: ``--mix``: which i2pd version each i2pd router runs.
MIXES = ("mixed", "all-2.45", "all-2.58")

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _beside_repository(relative: Path) -> Path | None:
    """``relative`` under the repository's parent (or a grandparent: git worktrees)."""
    for base in list(_REPO_ROOT.parents)[:3]:
        candidate = base / relative
        if candidate.exists():
            return candidate
    return None


def find_i2pd_old() -> str | None:
    """Debian's i2pd (2.45.1 on bookworm)."""
    return shutil.which("i2pd") or (
        "/usr/sbin/i2pd" if os.access("/usr/sbin/i2pd", os.X_OK) else None
    )


def find_i2pd_new() -> str | None:
    """i2pd 2.58.0: ``$I2PROXY_TESTNET_I2PD_258`` or ``../shared/i2pd/i2pd-2.58.0``."""
    configured = os.environ.get(I2PD_258_ENV)
    path = Path(configured) if configured else _beside_repository(I2PD_258_RELATIVE)
    if path is not None and path.is_file() and os.access(path, os.X_OK):
        return str(path)
    return None


def find_java_dist() -> Path | None:
    """The Java I2P dist (``lib/*.jar`` + ``hosts.txt``): ``$I2PROXY_TESTNET_JAVAI2P`` or
    ``../shared/javai2p``."""
    configured = os.environ.get(JAVA_DIST_ENV)
    path = Path(configured) if configured else _beside_repository(JAVA_DIST_RELATIVE)
    if path is not None and (path / "lib" / "router.jar").is_file():
        return path
    return None


def find_java() -> str | None:
    return shutil.which("java")


def i2pd_binary(version: str) -> str | None:
    return find_i2pd_new() if version == I2PD_NEW else find_i2pd_old()


_I2PD_VERSION_RE = re.compile(r"i2pd version (\d+\.\d+\.\d+)")


@cache
def i2pd_version(binary: str) -> str | None:
    """``i2pd --version`` → e.g. ``"2.45.1"``; None when it does not say."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _I2PD_VERSION_RE.search(out)
    return match.group(1) if match else None


@cache
def java_i2p_version(dist: Path) -> str | None:
    """From router.jar's manifest: ``Implementation-Version: 2.7.0-4`` → ``"2.7.0"``."""
    try:
        with zipfile.ZipFile(dist / "lib" / "router.jar") as jar:
            manifest = jar.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    match = re.search(r"^Implementation-Version:\s*(\d+\.\d+\.\d+)", manifest, re.MULTILINE)
    return match.group(1) if match else None


def i2pd_versions(
    mix: str, *, routers: int, floodfills: int, proxy_router: int, eepsite_router: int
) -> list[str]:
    """The i2pd version of each i2pd router for ``mix``.

    ``mixed``: the floodfills run 2.58 (2.58 uses no floodfill older than 0.9.59, and 2.45.1
    uses 2.58 floodfills fine); the proxy and eepsite routers keep 2.45.1 as before; of the
    other routers the last runs 2.58 (a client router of that version), the rest 2.45.1.
    """
    if mix == "all-2.45":
        return [I2PD_OLD] * routers
    if mix == "all-2.58":
        return [I2PD_NEW] * routers
    if mix != "mixed":
        raise ValueError(f"unknown mix {mix!r}; choose one of {', '.join(MIXES)}")
    others = [i for i in range(floodfills, routers) if i not in (proxy_router, eepsite_router)]
    newest_other = others[-1] if others else None
    return [I2PD_NEW if i < floodfills or i == newest_other else I2PD_OLD for i in range(routers)]


def missing_software(*, i2pd_old: bool, i2pd_new: bool, java: bool) -> list[str]:
    """What a network needing these router kinds lacks, one line each with how to get it."""
    problems = []
    if i2pd_old and find_i2pd_old() is None:
        problems.append("i2pd (Debian's 2.45.1): apt-get install i2pd")
    if i2pd_new and find_i2pd_new() is None:
        problems.append(
            f"i2pd 2.58.0: expected at ../{I2PD_258_RELATIVE} beside the repository "
            f"or named by ${I2PD_258_ENV}"
        )
    if java and find_java() is None:
        problems.append("Java 17 (Java I2P routers): apt-get install openjdk-17-jre-headless")
    if java and find_java_dist() is None:
        problems.append(
            f"Java I2P 2.7.0: expected at ../{JAVA_DIST_RELATIVE} beside the repository "
            f"or named by ${JAVA_DIST_ENV}"
        )
    return problems
