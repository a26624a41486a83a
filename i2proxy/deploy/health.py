"""Health probe for a running ``i2proxy run``: ask it for its own page ``http://proxy.i2p/``.

Used by the container HEALTHCHECK. Going through the proxy's HTTP port (with the configured
credentials) proves what a client needs: the listener accepts, authentication works and the
request loop answers. The request and response handling is pure; :func:`probe` is the socket edge.
"""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass

HEALTH_URL = "http://proxy.i2p/"
#: The status line and headers we read at most; the page body is not needed.
MAX_RESPONSE_HEAD = 16 * 1024


class HealthError(Exception):
    """The proxy did not answer as a healthy proxy would; the message says what happened."""


@dataclass(frozen=True)
class HealthResult:
    status: int
    reason: str
    address: tuple[str, int]

    @property
    def healthy(self) -> bool:
        return self.status == 200


def probe_address(listen: str) -> tuple[str, int]:
    """Where to reach a listener configured as ``host:port`` from the same machine.

    A wildcard bind (``0.0.0.0``, ``::``) is reached through loopback of the same family.
    """
    from i2proxy.config import parse_listen

    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


def build_request(url: str = HEALTH_URL, credentials: tuple[str, str] | None = None) -> bytes:
    """An absolute-form proxy request for ``url``, with Basic proxy credentials if given."""
    if not url.startswith("http://"):
        raise ValueError("the health URL must be http://")
    authority = url[len("http://") :].split("/", 1)[0]
    lines = [
        f"GET {url} HTTP/1.1",
        f"Host: {authority}",
        "Connection: close",
        "User-Agent: i2proxy-health",
    ]
    if credentials is not None:
        user, password = credentials
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def parse_status_line(head: bytes) -> tuple[int, str]:
    """``HTTP/1.x NNN reason`` from the start of a response; raises HealthError otherwise."""
    line, sep, _ = head.partition(b"\r\n")
    if not sep:
        raise HealthError(f"no complete status line in {len(head)} bytes")
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HealthError(f"not an HTTP response: {line[:80]!r}")
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


def probe(
    address: tuple[str, int],
    *,
    credentials: tuple[str, str] | None = None,
    url: str = HEALTH_URL,
    timeout: float = 5.0,
) -> HealthResult:
    """Send the health request to the proxy at ``address``; bounded in time and bytes."""
    request = build_request(url, credentials)
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < MAX_RESPONSE_HEAD:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
    except OSError as exc:
        raise HealthError(f"cannot reach the proxy at {address[0]}:{address[1]}: {exc}") from None
    status, reason = parse_status_line(head)
    return HealthResult(status, reason, address)
