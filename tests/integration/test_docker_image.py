"""The container image, built for real from a locally imported Debian base and run by a real engine.

The engine and the base image come from ``docker/testing/engine.py`` (Debian's docker.io with vfs
storage, no bridge; ``debootstrap`` + ``docker import``): no image registry is needed. Containers
use the host network and listen on loopback only; nothing here reaches beyond 127.0.0.0/8.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = REPO / "docker" / "testing" / "engine.py"
BASE_IMAGE = "local/debian:bookworm"
#: Each test session builds its own tag (sessions from different work trees may run at once);
#: at the end it becomes CACHE_IMAGE, which keeps the layers for the next build.
IMAGE = f"i2proxy:test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
CACHE_IMAGE = "i2proxy:test-cache"


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
    # This pytest process holds a lease: other sessions on the machine may share the engine, and
    # it is stopped (if the script started it) only when the last holder is done.
    holder = ["--holder", str(os.getpid())]
    result = subprocess.run(
        [sys.executable, str(ENGINE_SCRIPT), "up", *holder],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"engine set-up failed:\n{result.stderr[-5000:]}"
    info = json.loads(result.stdout)
    print(f"\nengine: {info}")
    yield info
    subprocess.run([sys.executable, str(ENGINE_SCRIPT), "down", *holder], timeout=120, check=False)


@pytest.fixture(scope="session")
def docker(engine: dict[str, object]) -> Iterator[Docker]:
    wrapper = Docker(str(engine["docker"]))
    yield wrapper
    for name in wrapper.containers:
        wrapper("rm", "--force", "--volumes", name, check=False)
    ours = wrapper("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False)
    if ours.returncode == 0:
        # Keep this build as the layer cache and drop the one it replaces (with vfs storage
        # every layer is a full copy); an image still used elsewhere stays (rmi refuses).
        previous = wrapper("image", "inspect", "--format", "{{.Id}}", CACHE_IMAGE, check=False)
        wrapper("tag", IMAGE, CACHE_IMAGE)
        wrapper("rmi", IMAGE, check=False)
        if previous.returncode == 0 and previous.stdout.strip() != ours.stdout.strip():
            wrapper("rmi", previous.stdout.strip(), check=False, timeout=600)
    # Build-stage layers of earlier builds are left untagged; drop those no build made recently
    # (a concurrent session's build in progress is younger).
    wrapper("image", "prune", "--force", "--filter", "until=30m", check=False, timeout=600)


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
        "--force-rm",
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
    assert config["Entrypoint"][-2:] == ['exec i2proxy --log-json "$@" 2>&1', "i2proxy"]
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
    """The container's log lines: all on stdout, each one a JSON object."""
    result = docker("logs", name)
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


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
    assert "reachable from other machines" in result.stdout


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


# -- end to end: the containerised proxy on the private I2P network ------------------------------

#: Router backends of ``i2proxy run`` present in this tree (SAM joins when its dialer lands).
BACKENDS = ["i2cp"] + (["sam"] if importlib.util.find_spec("i2proxy.dialer.sam") else [])
MARKER = "Hello from the private I2P network"


@dataclass
class ProxyContainer:
    """One ``i2proxy run`` container on the host network (loopback ports) with a /data volume."""

    docker: Docker
    name: str
    http: int
    socks: int
    user: str
    password: str

    @classmethod
    def run(cls, docker: Docker, volume: str, router_url: str, password: str) -> ProxyContainer:
        proxy = cls(docker, docker.name("e2e"), free_port(), free_port(), "alice", password)
        docker(
            "run",
            "--detach",
            "--name",
            proxy.name,
            "--network",
            "host",
            "--volume",
            f"{volume}:/data",
            "--env",
            f"I2PROXY_HTTP_LISTEN=127.0.0.1:{proxy.http}",
            "--env",
            f"I2PROXY_SOCKS_LISTEN=127.0.0.1:{proxy.socks}",
            "--env",
            f"I2PROXY_ROUTER={router_url}",
            "--env",
            f"I2PROXY_USERS={proxy.user}:{password}",
            IMAGE,
        )
        return proxy

    def curl(
        self, *args: str, credentials: bool = True, socks: bool = False, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        """One curl through the container; 90 s, as a step may wait for a new SAM session (20-40
        s: session 13 saw 30 s run out at the first SOCKS fetch and at the address-helper save)."""
        proxy = f"socks5h://127.0.0.1:{self.socks}" if socks else f"http://127.0.0.1:{self.http}"
        auth = ["--proxy-user", f"{self.user}:{self.password}"] if credentials else []
        return subprocess.run(
            ["curl", "--silent", "--max-time", str(timeout), "--proxy", proxy, *auth, *args],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
        )

    def fetch_until(self, url: str, timeout: float = 180, *, socks: bool = False) -> float:
        """First contact with a destination waits for its LeaseSet, and a new client
        destination (SOCKS has its own under the default isolation) for its router session:
        retry until the page shows."""
        started = time.monotonic()
        last = None
        while time.monotonic() - started < timeout:
            last = self.curl(url, socks=socks)
            if last.returncode == 0 and MARKER in last.stdout:
                return time.monotonic() - started
            time.sleep(1)
        raise AssertionError(f"{url} never showed the demo page: {last}\n{self.events()[-10:]}")

    def events(self) -> list[dict[str, object]]:
        return log_events(self.docker, self.name)


def assert_clean_shutdown(events: list[dict[str, object]]) -> None:
    """The run ended with 'shutting down' ... 'stopped' and logged no error on the way."""
    names = [event["event"] for event in events]
    assert names[-1] == "stopped", names[-5:]
    last = len(names) - 1 - names[::-1].index("shutting down")
    errors = [e for e in events[last:] if e.get("level") in ("error", "critical")]
    assert not errors, errors


@pytest.fixture
def data_volume(docker: Docker) -> Iterator[str]:
    name = f"i2proxy-test-data-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    yield name
    users = docker("ps", "--all", "--quiet", "--filter", f"volume={name}").stdout.split()
    if users:
        docker("rm", "--force", *users, check=False)
    docker("volume", "rm", "--force", name, check=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_containerised_proxy_on_the_private_network(
    docker: Docker, image: dict, testnet, data_volume: str, backend: str
) -> None:
    """curl fetches the demo eepsite through the container with credentials; without them it is
    refused; a name saved through the address helper survives ``docker stop`` (clean, prompt)
    and (on I2CP) a new container on the same volume (an upgrade)."""
    router = testnet.client_router("i2pd", "2.45.1")  # not a floodfill (2.58 on mixed)
    router_url = f"i2cp://{router.i2cp}" if backend == "i2cp" else f"sam://{router.sam}"
    password = "e2e-" + uuid.uuid4().hex[:12]
    started = time.monotonic()
    proxy = ProxyContainer.run(docker, data_volume, router_url, password)
    eepsite = f"http://{testnet.eepsite.b32}/"
    retries = proxy.fetch_until(eepsite)
    print(f"\n[{backend}] eepsite fetched {time.monotonic() - started:.1f} s after docker run")
    print(f"[{backend}] ({retries:.1f} s of them retrying while the router session came up)")

    # Without credentials: refused by the HTTP proxy (407) and by the SOCKS5 handshake.
    status = ["--output", "/dev/null", "--write-out", "%{http_code}"]
    assert proxy.curl(*status, eepsite, credentials=False).stdout == "407"
    refused = proxy.curl(eepsite, credentials=False, socks=True)
    assert refused.returncode != 0 and MARKER not in refused.stdout
    # SOCKS clients get their own destination (the default isolation): on SAM a new session
    # takes 20-40 s, so the first SOCKS fetch retries like the first HTTP one
    proxy.fetch_until(eepsite, socks=True)

    # Save a name through the address helper (the proxy's confirmation form, choice "save").
    helper = proxy.curl(f"http://demo-site.i2p/?i2paddresshelper={testnet.eepsite.destination}")
    assert helper.returncode == 0, helper
    form = {
        key: re.search(rf'name={key} value="([^"]*)"', helper.stdout).group(1)
        for key in ("host", "dest", "url", "token")
    }
    body = urlencode({**form, "choice": "save"})
    saved = proxy.curl("--location", "--data", body, "http://proxy.i2p/add")
    assert MARKER in saved.stdout, saved
    assert MARKER in proxy.curl("http://demo-site.i2p/").stdout

    elapsed, code = stop_timed(docker, proxy.name, grace=30)
    print(f"[{backend}] docker stop: {elapsed:.2f} s, exit code {code}")
    assert code == 0
    assert elapsed < 15
    assert_clean_shutdown(proxy.events())

    # The saved name on the volume and an upgrade do not depend on the backend: checked once,
    # on I2CP (on SAM the second container's router session costs 20-40 s of CI time).
    if backend == "i2cp":
        check_an_upgrade_keeps_the_saved_name(docker, proxy, data_volume, router_url, testnet)


def check_an_upgrade_keeps_the_saved_name(
    docker: Docker, proxy: ProxyContainer, data_volume: str, router_url: str, testnet
) -> None:
    """The book on the volume has the name saved through ``proxy`` (now stopped); a new
    container on the same volume resolves it and stops cleanly."""
    # The book on the volume has the name (read by a fresh container without network).
    lookup = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{data_volume}:/data",
        IMAGE,
        "addressbook",
        "lookup",
        "demo-site.i2p",
    )
    assert testnet.eepsite.b32 in lookup.stdout or testnet.eepsite.destination in lookup.stdout

    # A new container on the same volume (what an upgrade does) resolves the saved name.
    docker("rm", proxy.name)
    started = time.monotonic()
    upgraded = ProxyContainer.run(docker, data_volume, router_url, proxy.password)
    upgraded.fetch_until("http://demo-site.i2p/")
    print(f"new container fetched demo-site.i2p {time.monotonic() - started:.1f} s")
    elapsed, code = stop_timed(docker, upgraded.name, grace=30)
    assert code == 0 and elapsed < 15
    assert_clean_shutdown(upgraded.events())
