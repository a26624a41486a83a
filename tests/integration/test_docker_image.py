"""The container image, built for real from a locally imported Debian base and run by a real engine.

The engine and the base image come from ``docker/testing/engine.py`` (Debian's docker.io with vfs
storage, no bridge; ``debootstrap`` + ``docker import``): no image registry is needed. Containers
use the host network and listen on loopback only; nothing here reaches beyond 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = REPO / "docker" / "testing" / "engine.py"
BASE_IMAGE = "local/debian:bookworm"
IMAGE = "i2proxy:test"


@dataclass
class Docker:
    """A thin wrapper around the docker client; remembers the containers it created."""

    client: str
    containers: list[str] = field(default_factory=list)

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.client, *args], capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def name(self, purpose: str) -> str:
        """A unique container name, removed at the end of the test session."""
        name = f"i2proxy-test-{purpose}-{uuid.uuid4().hex[:8]}"
        self.containers.append(name)
        return name

    def inspect(self, name: str) -> dict[str, object]:
        return json.loads(self("inspect", name).stdout)[0]


@pytest.fixture(scope="session")
def engine() -> Iterator[dict[str, object]]:
    """A running engine with the imported base image; stops the engine only if it started it."""
    if os.geteuid() != 0:
        pytest.skip("the Docker engine set-up needs root")
    result = subprocess.run(
        [sys.executable, str(ENGINE_SCRIPT), "up"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"engine set-up failed:\n{result.stderr[-5000:]}"
    info = json.loads(result.stdout)
    print(f"\nengine: {info}")
    yield info
    if info["started_engine"]:
        subprocess.run([sys.executable, str(ENGINE_SCRIPT), "down"], timeout=120, check=False)


@pytest.fixture(scope="session")
def docker(engine: dict[str, object]) -> Iterator[Docker]:
    wrapper = Docker(str(engine["docker"]))
    yield wrapper
    for name in wrapper.containers:
        wrapper("rm", "--force", "--volumes", name, check=False)


@pytest.fixture(scope="session")
def image(docker: Docker) -> dict[str, object]:
    """Build the image from the working tree on the imported base; returns timings and size."""
    started = time.monotonic()
    # Dependencies as wheels from the host's pip (the build cannot verify PyPI's TLS here).
    subprocess.run(
        [str(REPO / "docker" / "build-wheelhouse")], check=True, capture_output=True, timeout=600
    )
    wheels_s = time.monotonic() - started
    started = time.monotonic()
    build = docker(
        "build",
        "--network",
        "host",
        "--file",
        str(REPO / "docker" / "Dockerfile"),
        "--build-arg",
        f"BASE={BASE_IMAGE}",
        "--tag",
        IMAGE,
        str(REPO),
        timeout=1200,
    )
    build_s = time.monotonic() - started
    size = int(docker("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout)
    info = {
        "wheelhouse_s": round(wheels_s, 1),
        "build_s": round(build_s, 1),
        "size_mb": round(size / 1e6),
        "cached_steps": build.stdout.count("Using cache"),
    }
    print(f"\nimage {IMAGE}: {info}")
    return info


def test_image_runs_as_non_root_and_reports_its_version(docker: Docker, image: dict) -> None:
    version = docker("run", "--rm", "--network", "none", IMAGE, "--version")
    assert version.stdout.strip().startswith("i2proxy ")
    ident = docker("run", "--rm", "--network", "none", "--entrypoint", "id", IMAGE)
    assert ident.stdout.startswith("uid=10001(i2proxy) gid=10001(i2proxy)"), ident.stdout
    # The data directory belongs to that user and nobody else reads it (keys live there).
    listing = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "stat", IMAGE, "-c", "%U %a", "/data"
    )
    assert listing.stdout.split() == ["i2proxy", "700"]


def test_image_metadata_wires_lan_mode_health_and_shutdown(docker: Docker, image: dict) -> None:
    config = docker.inspect(IMAGE)["Config"]
    assert config["User"] == "i2proxy:i2proxy"
    assert config["StopSignal"] == "SIGTERM"
    assert list(config["Volumes"]) == ["/data"]
    assert set(config["ExposedPorts"]) == {"4444/tcp", "4447/tcp"}
    assert config["Healthcheck"]["Test"] == ["CMD", "i2proxy", "health"]
    assert config["Entrypoint"] == ["i2proxy", "--log-json"]
    assert config["Cmd"] == ["run"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["I2PROXY_HTTP_LISTEN"] == "0.0.0.0:4444"
    assert env["I2PROXY_SOCKS_LISTEN"] == "0.0.0.0:4447"
    assert env["I2PROXY_DATA_DIR"] == "/data"
    # No credentials are baked into the image.
    assert "I2PROXY_USERS" not in env


def test_image_ships_no_build_tools(docker: Docker, image: dict) -> None:
    """The runtime stage has the interpreter and the venv, not pip or the build inputs."""
    probe = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        IMAGE,
        "-c",
        "ls /opt/i2proxy/bin/pip /wheelhouse /src /dist 2>/dev/null | wc -l; "
        "python3 -c 'import i2proxy, aiohttp, cryptography, structlog, python_socks'",
    )
    assert probe.stdout.strip() == "0", probe.stdout
