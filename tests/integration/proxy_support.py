"""Helpers for the proxy integration tests: a real ``i2proxy run`` process and a site of our own.

- :class:`ProxyProcess` starts ``python -m i2proxy run`` against a router of the test network
  (``sam://`` or ``i2cp://``), with its own data dir and address book, and stops it with SIGTERM
  (checking the graceful exit).
- :class:`SamSite` serves an aiohttp app over I2P: a SAM STREAM session on a router other than
  the proxy's (published and confirmed resolvable), whose accepted streams are bridged to the
  app on 127.0.0.1. The server side is i2pd's streaming, independent of the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProxyProcess:
    """``i2proxy run`` as a child process; ``http``/``socks`` are ``host:port`` strings."""

    def __init__(
        self,
        router_url: str,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        log_level: str = "info",
    ) -> None:
        self.router_url = router_url
        self.log_level = log_level
        self.data_dir = data_dir
        self.http = f"127.0.0.1:{free_port()}"
        self.socks = f"127.0.0.1:{free_port()}"
        self.mixed = f"127.0.0.1:{free_port()}"
        self.extra = list(extra)
        #: Environment on top of the defaults (subscriptions off), e.g. to turn them on.
        self.env = dict(env or {})
        self.log_path = data_dir / "i2proxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "i2proxy",
            "--log-json",
            "--log-level",
            self.log_level,
            "run",
            "--router",
            self.router_url,
            "--http",
            self.http,
            "--socks",
            self.socks,
            "--mixed",
            self.mixed,
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "I2PROXY_SUBSCRIPTIONS": "off", **self.env}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self._log, stderr=self._log, env=env)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"i2proxy run exited early:\n{self.log_path.read_text()}")
            if b'"i2proxy ready"' in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"i2proxy run not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> int:
        """SIGTERM, and the exit status (0 means the graceful shutdown completed)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9
        finally:
            self._log.close()

    @staticmethod
    def log_time_now() -> str:
        """Now in the log's timestamp format (without the zone): a ``since`` for ``timeline``."""
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")

    def timeline(self, since_utc: str, limit: int = 60) -> str:
        """The log events from ``since_utc`` (an ISO timestamp) on, one short line each: what
        a timing assertion prints when it fails, so that a slow CI run can be read afterwards."""
        lines = []
        for event in self.log_events():
            if event.get("timestamp", "") < since_utc:
                continue
            fields = {k: v for k, v in event.items() if k not in ("timestamp", "event", "level")}
            lines.append(f"{event.get('timestamp', '')[11:23]} {event.get('event')} {fields}")
        return "\n".join(lines[-limit:])

    def health(self, timeout: float = 30) -> dict[str, str]:
        """The counters of the proxy's health page (http://proxy.i2p/), by name."""
        via = ["-x", f"http://{self.http}"]
        page = subprocess.run(
            ["curl", "-sS", "--max-time", str(int(timeout)), *via, "http://proxy.i2p/"],
            capture_output=True,
            timeout=timeout + 10,
            check=False,
        )
        assert page.returncode == 0, page.stderr
        rows = re.findall(rb"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", page.stdout)
        return {html.unescape(k.decode()): html.unescape(v.decode()) for k, v in rows}

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events


def site_app() -> web.Application:
    """Our own site: request headers as JSON, an echo, n bytes, and an HTML page."""

    async def headers(request: web.Request) -> web.Response:
        pairs = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers]
        return web.json_response({"method": request.method, "headers": pairs})

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def nbytes(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * int(request.match_info["n"]))

    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", "super=1; Domain=.i2p")
        response.headers.add("Set-Cookie", "own=2; Path=/")
        response.headers.add("Proxy-Authenticate", "Basic realm=x")
        return response

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", websocket)
    app.router.add_get("/headers", headers)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/bytes/{n}", nbytes)
    app.router.add_get("/cookie", cookie)
    return app


async def _sam_hello(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"HELLO VERSION MIN=3.1 MAX=3.3\n")
    line = await reader.readline()
    if b"RESULT=OK" not in line:
        raise RuntimeError(f"SAM HELLO failed: {line!r}")
    return reader, writer


class SamSite:
    """An aiohttp app reachable over I2P through a SAM session (runs its own loop thread)."""

    def __init__(self, sam: tuple[str, int], check_via: tuple[str, int]) -> None:
        self.sam = sam
        self.check_via = check_via
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.destination = ""
        self.b32 = ""
        self.accepted = 0
        self.bridges: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=240)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _start(self) -> None:
        from i2proxy.i2p.destination import Destination
        from testnet.samprobe import create_published_session

        self.runner = web.AppRunner(site_app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.app_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        nickname = f"proxytest{os.getpid()}{int(time.time())}"
        self.session = await create_published_session(self.sam, nickname, check_via=self.check_via)
        self.nickname = nickname
        self.destination = self.session.destination
        self.b32 = Destination.from_base64(self.destination).b32
        self.tasks = [asyncio.create_task(self._acceptor()) for _ in range(4)]

    async def _stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.session.close()
        await self.runner.cleanup()

    async def _acceptor(self) -> None:
        while True:
            try:
                reader, writer = await _sam_hello(*self.sam)
                writer.write(f"STREAM ACCEPT ID={self.nickname} SILENT=false\n".encode())
                status = await reader.readline()
                if b"RESULT=OK" not in status:
                    writer.close()
                    await asyncio.sleep(0.5)
                    continue
                await reader.readline()  # the peer's destination (+ ports) line
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.5)
                continue
            self.accepted += 1
            bridge = asyncio.create_task(self._bridge(reader, writer))
            self.bridges.add(bridge)
            bridge.add_done_callback(self.bridges.discard)

    async def _bridge(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from i2proxy.proxy.streams import relay

        try:
            app_reader, app_writer = await asyncio.open_connection("127.0.0.1", self.app_port)
            await relay(reader, writer, app_reader, app_writer)
        except OSError:
            pass
        finally:
            writer.close()


async def save_with_address_helper(
    session: aiohttp.ClientSession, via: str, name: str, destination: str
) -> str:
    """The address helper's confirmation page for ``name``, then "save" (the name goes into
    the local book); returns the page the save redirected to (the site itself)."""
    url = f"http://{name}/?i2paddresshelper={destination}"
    async with session.get(url, proxy=via) as resp:
        assert resp.status == 200
        page = await resp.text()
    form = {
        "host": name,
        "dest": re.search(r'name=dest value="([^"]+)"', page).group(1),
        "url": f"http://{name}/",
        "token": re.search(r'name=token value="([^"]+)"', page).group(1),
        "choice": "save",
    }
    async with session.post("http://proxy.i2p/add", data=form, proxy=via) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text
