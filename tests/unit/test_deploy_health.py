"""``i2proxy health``: the request/response handling, and the probe against a real ``i2proxy run``.

The live part starts the real proxy on loopback with a router address where nothing listens
(the proxy serves its own pages without a router), so it needs no I2P network.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from i2proxy.deploy.health import (
    HealthError,
    build_request,
    parse_status_line,
    probe,
    probe_address,
)

REPO = Path(__file__).resolve().parents[2]


def test_request_is_absolute_form_with_basic_proxy_credentials() -> None:
    request = build_request("http://proxy.i2p/", ("alice", "pa:ss"))
    head = request.decode("ascii")
    assert head.startswith("GET http://proxy.i2p/ HTTP/1.1\r\n")
    assert "\r\nHost: proxy.i2p\r\n" in head
    token = base64.b64encode(b"alice:pa:ss").decode()
    assert f"\r\nProxy-Authorization: Basic {token}\r\n" in head
    assert head.endswith("\r\n\r\n")


def test_request_without_users_sends_no_credentials() -> None:
    assert b"Proxy-Authorization" not in build_request()


def test_request_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError):
        build_request("https://proxy.i2p/")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n", (200, "OK")),
        (b"HTTP/1.0 407 Proxy Authentication Required\r\n", (407, "Proxy Authentication Required")),
        (b"HTTP/1.1 204\r\n", (204, "")),
    ],
)
def test_status_line_parsed(head: bytes, expected: tuple[int, str]) -> None:
    assert parse_status_line(head) == expected


@pytest.mark.parametrize(
    "head", [b"", b"HTTP/1.1 200 OK", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc\r\n"]
)
def test_bad_responses_are_unhealthy(head: bytes) -> None:
    with pytest.raises(HealthError):
        parse_status_line(head)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:4444", ("127.0.0.1", 4444)),
        ("[::]:4444", ("::1", 4444)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("192.168.1.5:4444", ("192.168.1.5", 4444)),
    ],
)
def test_wildcard_binds_are_probed_on_loopback(listen: str, expected: tuple[str, int]) -> None:
    assert probe_address(listen) == expected


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def running_proxy(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real ``i2proxy run`` on loopback with one user; its router port has no listener."""
    http, socks, router = _free_port(), _free_port(), _free_port()
    env = {
        **os.environ,
        "I2PROXY_HTTP_LISTEN": f"127.0.0.1:{http}",
        "I2PROXY_SOCKS_LISTEN": f"127.0.0.1:{socks}",
        "I2PROXY_ROUTER": f"i2cp://127.0.0.1:{router}",
        "I2PROXY_USERS": "alice:wonderland",
        "I2PROXY_DATA_DIR": str(tmp_path / "data"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "i2proxy", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "i2proxy run did not listen in 20 s"
                time.sleep(0.1)
        yield env
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # SIGTERM is a clean stop, even though the router was never reached.
    assert process.returncode == 0


def test_probe_reports_a_live_proxy_healthy(running_proxy: dict[str, str]) -> None:
    address = probe_address(running_proxy["I2PROXY_HTTP_LISTEN"])
    assert probe(address, credentials=("alice", "wonderland")).status == 200
    # The probe goes through authentication: wrong or missing credentials are not healthy.
    assert probe(address, credentials=("alice", "wrong")).status == 407
    assert probe(address).status == 407


def test_health_command_uses_the_run_configuration(running_proxy: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "i2proxy", "health"],
        cwd=REPO,
        env=running_proxy,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("healthy: 127.0.0.1:")


def test_health_command_fails_when_nothing_listens(tmp_path: Path) -> None:
    env = {**os.environ, "I2PROXY_HTTP_LISTEN": f"127.0.0.1:{_free_port()}"}
    result = subprocess.run(
        [sys.executable, "-m", "i2proxy", "health", "--timeout", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "unhealthy: cannot reach the proxy" in result.stderr
