"""HTTP over I2P for subscription feeds: aiohttp whose connections are I2P streams.

aiohttp normally resolves the host with DNS and opens a TCP socket. :class:`I2PConnector`
replaces both: the host is resolved by the address book (or is a ``.b32.i2p`` name) and the
connection is a stream opened with ``Dialer.open_stream``. There is no code path that calls
``getaddrinfo`` or connects a socket to a non-I2P host, so a feed can never leak to the clearnet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from i2proxy.dialer.base import DialError

if TYPE_CHECKING:
    from i2proxy.dialer.base import Dialer
    from i2proxy.i2p.destination import Destination

#: Largest feed accepted (after gzip decoding). Java I2P uses 5 MB; the biggest real feeds
#: (full hosts.txt of a registry) are a few MB.
DEFAULT_MAX_FEED_BYTES = 16 * 1024 * 1024
#: Feeds are fetched without a browser; this is what i2pd's address book sends, so our
#: requests look like every i2pd router's and reveal nothing about i2proxy.
USER_AGENT = "Wget/1.11.4"
_READ_CHUNK = 64 * 1024

Resolver = Callable[[str], "Destination | str | None"]


class FeedError(Exception):
    """A feed could not be fetched; the message says why (for the log and the CLI summary)."""


class FeedTooLarge(FeedError):
    """The feed is larger than the configured cap."""


class NotAnI2PHost(aiohttp.ClientConnectionError):
    """The URL's host is not an ``.i2p`` name we can resolve: refused, never sent to DNS."""


class I2PDialFailed(aiohttp.ClientConnectionError):
    """The dialer could not open the stream (wraps the DialError)."""


class StreamTransport(asyncio.Transport):
    """An asyncio Transport over a Dialer's (StreamReader, StreamWriter) pair.

    A read pump feeds the protocol; pause/resume_reading give aiohttp its flow control.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: asyncio.Protocol,
    ) -> None:
        super().__init__()
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        self._closing = False
        self._lost = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._pump = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        exc: BaseException | None = None
        try:
            while True:
                await self._reading.wait()
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    self._protocol.eof_received()
                    break
                self._protocol.data_received(data)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # a broken stream ends this connection, never the process
            exc = e
        finally:
            self._shutdown_writer()
            self._connection_lost(exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if not self._lost:
            self._lost = True
            self._protocol.connection_lost(exc)

    def _shutdown_writer(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            self._writer.close()

    # --- WriteTransport -----------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._writer.write(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return self._writer.can_write_eof()

    def write_eof(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.write_eof()

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def abort(self) -> None:
        self.close()

    # --- ReadTransport ------------------------------------------------------------------------
    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    # --- BaseTransport ------------------------------------------------------------------------
    def close(self) -> None:
        if self._closing and self._pump.done():
            return
        self._shutdown_writer()
        self._pump.cancel()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None  # no socket options on someone else's stream
        return self._writer.get_extra_info(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]


class I2PConnector(aiohttp.BaseConnector):
    """aiohttp connector whose connections are I2P streams from a Dialer; no DNS, no TCP."""

    def __init__(
        self,
        dialer: Dialer,
        resolve: Resolver,
        *,
        connect_timeout: float = 120.0,
    ) -> None:
        super().__init__(force_close=True, limit=4)
        self._dialer = dialer
        self._resolve = resolve
        self._connect_timeout = connect_timeout

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> ResponseHandler:
        url = req.url
        host = (url.host or "").lower()
        if url.scheme != "http":
            raise NotAnI2PHost(f"only http:// feeds over I2P are fetched, not {url.scheme}://")
        if not (host.endswith(".i2p") or host.endswith(".i2p.alt")):
            raise NotAnI2PHost(f"{host!r} is not an .i2p host; refusing to leave I2P")
        target = self._resolve(host)
        if target is None:
            raise NotAnI2PHost(f"{host} is not in the address book")
        port = url.port or 80
        try:
            reader, writer = await self._dialer.open_stream(
                target, port, timeout=self._connect_timeout
            )
        except DialError as exc:
            raise I2PDialFailed(f"{host}: {type(exc).__name__}: {exc}") from exc
        loop = asyncio.get_running_loop()
        protocol = ResponseHandler(loop=loop)
        transport = StreamTransport(reader, writer, protocol)
        protocol.connection_made(transport)
        return protocol


@dataclass
class FetchResult:
    """One conditional GET."""

    url: str
    status: int
    #: The decoded body on 200; None on 304.
    body: bytes | None
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _conditional_etag(etag: str) -> str:
    """Apache's mod_deflate appends ``-gzip`` to ETags of compressed replies but then does not
    match them in If-None-Match; sending the tag without it gets the 304 (Java I2P does the same).
    """
    if etag.endswith('-gzip"'):
        return etag[: -len('-gzip"')] + '"'
    return etag


def make_session(
    dialer: Dialer, resolve: Resolver, *, total_timeout: float = 600.0
) -> aiohttp.ClientSession:
    """A ClientSession that can only reach I2P hosts through ``dialer``."""
    return aiohttp.ClientSession(
        connector=I2PConnector(dialer, resolve),
        timeout=aiohttp.ClientTimeout(total=total_timeout, sock_read=180.0),
        trust_env=False,  # no HTTP(S)_PROXY / netrc from the environment
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": USER_AGENT},
    )


async def fetch_feed(
    session: aiohttp.ClientSession,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = DEFAULT_MAX_FEED_BYTES,
) -> FetchResult:
    """Conditional GET of ``url``; gzip is decoded; raises FeedError on any failure."""
    headers = {"Accept-Encoding": "gzip", "Connection": "close"}
    if etag:
        headers["If-None-Match"] = _conditional_etag(etag)
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as resp:
            if resp.status == 304:
                return FetchResult(
                    url,
                    304,
                    None,
                    resp.headers.get("ETag", etag),
                    resp.headers.get("Last-Modified", last_modified),
                )
            if resp.status != 200:
                raise FeedError(f"HTTP {resp.status} {resp.reason or ''}".strip())
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise FeedTooLarge(f"Content-Length {resp.content_length} > {max_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(_READ_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedTooLarge(f"more than {max_bytes} bytes")
                chunks.append(chunk)
            return FetchResult(
                url,
                200,
                b"".join(chunks),
                resp.headers.get("ETag"),
                resp.headers.get("Last-Modified"),
            )
    except FeedError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise FeedError(f"{type(exc).__name__}: {exc}") from exc
