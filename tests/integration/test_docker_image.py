"""The container image, built for real from a locally imported Debian base and run by a real engine.

The engine and the base image come from ``docker/testing/engine.py`` (Debian's docker.io with vfs
storage, no bridge; ``debootstrap`` + ``docker import``): no image registry is needed. Containers
use the host network and listen on loopback only; nothing here reaches beyond 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``predicate()``; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not within {timeout} s")
        time.sleep(0.5)
    return time.monotonic() - started


def log_events(docker: Docker, name: str) -> list[dict[str, object]]:
    """The container's log lines, each parsed as JSON (every line must be JSON)."""
    result = docker("logs", name)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def stop_timed(docker: Docker, name: str, grace: int) -> tuple[float, int]:
    started = time.monotonic()
    docker("stop", "--time", str(grace), name, timeout=grace + 60)
    elapsed = time.monotonic() - started
    state = docker.inspect(name)["State"]
    return elapsed, int(state["ExitCode"])


def test_image_refuses_to_listen_on_the_lan_without_users(docker: Docker, image: dict) -> None:
    """The LAN defaults (0.0.0.0) with no users or allow-list: the container exits, clearly."""
    result = docker("run", "--rm", "--network", "none", IMAGE, check=False, timeout=60)
    assert result.returncode == 2
    assert "reachable from other machines" in result.stderr


def test_lan_defaults_with_users_run_healthy_and_stop_cleanly(docker: Docker, image: dict) -> None:
    """Defaults (0.0.0.0 listeners) plus users, in a namespace of its own: Docker's HEALTHCHECK
    turns healthy, ``docker stop`` is a clean, prompt exit 0, every log line is JSON."""
    name = docker.name("lan")
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "none",  # only loopback inside: the LAN defaults cannot reach anything here
        "--env",
        "I2PROXY_USERS=alice:lan-secret",
        "--health-interval",
        "1s",
        "--health-start-period",
        "30s",
        IMAGE,
    )
    took = wait_for(
        lambda: docker.inspect(name)["State"].get("Health", {}).get("Status") == "healthy",
        90,
        "healthy",
    )
    print(f"\nhealthy after {took:.1f} s")
    health = docker.inspect(name)["State"]["Health"]
    assert health["Log"][-1]["ExitCode"] == 0
    assert health["Log"][-1]["Output"].startswith("healthy: 127.0.0.1:4444 answered 200")
    elapsed, code = stop_timed(docker, name, grace=20)
    print(f"docker stop took {elapsed:.2f} s")
    assert code == 0
    assert elapsed < 10
    events = [event["event"] for event in log_events(docker, name)]
    assert "i2proxy ready" in events
    assert events[-2:] == ["shutting down", "stopped"]


def test_published_proxy_requires_credentials(docker: Docker, image: dict) -> None:
    """On the host network (loopback ports only): no credentials, wrong ones → 407 / SOCKS
    refusal; right ones → the proxy's own page."""
    name = docker.name("auth")
    http, socks = free_port(), free_port()
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--env",
        f"I2PROXY_HTTP_LISTEN=127.0.0.1:{http}",
        "--env",
        f"I2PROXY_SOCKS_LISTEN=127.0.0.1:{socks}",
        "--env",
        f"I2PROXY_ROUTER=i2cp://127.0.0.1:{free_port()}",  # no router needed for this
        "--env",
        "I2PROXY_USERS=alice:s3cret",
        IMAGE,
    )
    wait_for(lambda: port_open(http), 60, "HTTP port open")

    def curl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "--silent", "--max-time", "20", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    status = ["--output", "/dev/null", "--write-out", "%{http_code}"]
    proxy = f"http://127.0.0.1:{http}"
    assert curl(*status, "--proxy", proxy, "http://proxy.i2p/").stdout == "407"
    wrong = curl(*status, "--proxy", proxy, "--proxy-user", "alice:nope", "http://proxy.i2p/")
    assert wrong.stdout == "407"
    page = curl("--proxy", proxy, "--proxy-user", "alice:s3cret", "http://proxy.i2p/")
    assert "i2proxy is running" in page.stdout
    socks_url = f"socks5h://127.0.0.1:{socks}"
    refused = curl(*status, "--proxy", socks_url, "http://proxy.i2p/")
    assert refused.returncode != 0  # curl: the SOCKS5 server wants authentication
    bad = curl(*status, "--proxy", socks_url, "--proxy-user", "alice:nope", "http://proxy.i2p/")
    assert bad.returncode != 0
    elapsed, code = stop_timed(docker, name, grace=20)
    assert code == 0 and elapsed < 10


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
