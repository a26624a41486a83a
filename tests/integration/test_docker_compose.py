"""docker/compose.yml: validated by Compose itself and checked for the LAN-safety invariants.

The compose file points its router at the real I2P network, so it is never started here: the
image is proven against the private network in test_docker_image.py. This checks what a user
relies on: nothing of the router is reachable from the LAN, i2proxy is published only with
credentials from an env file, and state lives in named volumes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yml"
EXAMPLE_ENV = COMPOSE_FILE.parent / "i2proxy.env.example"


def compose_command() -> list[str] | None:
    """Compose v1 (Debian's docker-compose) or the v2 plugin, whichever is installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return [docker, "compose"]
    return None


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor the compose plugin is installed")
    return subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "I2PROXY_ENV_FILE": str(env_file)},
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "i2proxy.env"
    path.write_text("I2PROXY_USERS=alice:s3cret-from-env-file\n")
    return path


@pytest.fixture
def resolved(env_file: Path) -> dict[str, Any]:
    """The configuration as Compose resolves it (schema-checked, env file read)."""
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def router_options(service: dict[str, Any]) -> dict[str, str]:
    options = {}
    for arg in service["command"]:
        key, _, value = arg.removeprefix("--").partition("=")
        options[key] = value
    return options


def test_router_exposes_nothing_to_the_lan() -> None:
    router = raw()["services"]["i2pd"]
    assert "ports" not in router and "expose" not in router
    # It lives in i2proxy's network namespace: whatever it binds on loopback only i2proxy reaches.
    assert router["network_mode"] == "service:i2proxy"
    options = router_options(router)
    assert options["i2cp.enabled"] == "true"
    assert options["i2cp.address"] == "127.0.0.1"
    assert options["http.address"] == "127.0.0.1"  # web console
    for service in ("httpproxy", "socksproxy", "sam"):
        assert options[f"{service}.enabled"] == "false"  # would also clash with i2proxy's ports
    assert options["upnp.enabled"] == "false"


def test_proxy_publishes_only_its_two_ports_and_reaches_the_router_on_loopback() -> None:
    proxy = raw()["services"]["i2proxy"]
    targets = sorted(port.rsplit(":", 1)[1] for port in proxy["ports"])
    assert targets == ["4444", "4447"]
    environment = proxy["environment"]
    port = router_options(raw()["services"]["i2pd"])["i2cp.port"]
    assert environment["I2PROXY_ROUTER"] == f"i2cp://127.0.0.1:{port}"
    assert environment["I2PROXY_HTTP_LISTEN"] == "0.0.0.0:4444"
    assert environment["I2PROXY_SOCKS_LISTEN"] == "0.0.0.0:4447"
    # Credentials never sit in the compose file; they come from the env file.
    assert "I2PROXY_USERS" not in environment
    assert proxy["env_file"]


def test_state_is_kept_in_named_volumes() -> None:
    config = raw()
    assert set(config["volumes"]) == {"i2proxy-data", "i2pd-data"}
    assert config["services"]["i2proxy"]["volumes"] == ["i2proxy-data:/data"]
    assert config["services"]["i2pd"]["volumes"] == ["i2pd-data:/home/i2pd/data"]


def test_compose_validates_and_reads_credentials_from_the_env_file(
    resolved: dict[str, Any],
) -> None:
    proxy = resolved["services"]["i2proxy"]
    assert proxy["environment"]["I2PROXY_USERS"] == "alice:s3cret-from-env-file"
    published = sorted(int(port["target"]) for port in proxy["ports"])
    assert published == [4444, 4447]
    router = resolved["services"]["i2pd"]
    assert "ports" not in router
    assert router["network_mode"] == "service:i2proxy"
    assert Path(proxy["build"]["context"]) == COMPOSE_FILE.parents[1]


def test_compose_refuses_to_start_without_the_env_file(tmp_path: Path) -> None:
    result = compose_config(tmp_path / "missing.env")
    assert result.returncode != 0
    assert "missing.env" in result.stderr


def test_example_env_file_sets_users() -> None:
    lines = [line for line in EXAMPLE_ENV.read_text().splitlines() if line and line[0] != "#"]
    assert any(line.startswith("I2PROXY_USERS=") for line in lines)
