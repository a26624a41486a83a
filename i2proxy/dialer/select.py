"""Choosing the router backend: ``--router i2cp://…`` / ``sam://…``, or auto-detection.

Auto-detection prefers I2CP (the native stack puts the first request into the SYN: one round
trip per connection less) and only counts a port that actually speaks the protocol: an I2CP
candidate must answer GetDate with SetDate, a SAM candidate must answer HELLO with RESULT=OK.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from i2proxy.dialer.base import Dialer, DialError, RouterUnavailable
from i2proxy.i2cp import messages
from i2proxy.i2p.keyfile import keys_from
from i2proxy.log import get_logger
from i2proxy.sam import protocol as sam_protocol

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

log = get_logger("i2proxy.dialer.select")

I2CP_DEFAULT_PORT = 7654
SAM_DEFAULT_PORT = 7656
SCHEMES = {"i2cp": I2CP_DEFAULT_PORT, "sam": SAM_DEFAULT_PORT}

#: I2CP: the byte a client sends first, then GetDate (type 32) → SetDate (type 33).
#: Kept for callers: the message type of the probe (the codec is ``i2cp.messages``).
I2CP_GET_DATE = messages.MessageType.GET_DATE
#: The client API version we announce in GetDate.
I2CP_PROBE_VERSION = "0.9.62"
#: Bound on a probe reply: SetDate is 8 bytes of date plus a short version string.
_MAX_PROBE_PAYLOAD = 1024

ENABLE_HELP = """\
No I2P router answered on {tried}.
i2proxy needs a router with I2CP (fastest) or SAM enabled:
  i2pd:     in i2pd.conf set
              [i2cp]
              enabled = true        # I2CP on 127.0.0.1:7654, preferred
            or
              [sam]
              enabled = true        # SAM on 127.0.0.1:7656
            then restart i2pd.
  Java I2P: I2CP is on by default (127.0.0.1:7654; see http://127.0.0.1:7657/configi2cp).
            For SAM, start "SAM application bridge" on http://127.0.0.1:7657/configclients
            and tick "Run at Startup".
Or point i2proxy at your router with --router i2cp://HOST:PORT or --router sam://HOST:PORT."""

SAM_FALLBACK_HINT = (
    "using SAM; enabling I2CP saves one round trip per connection (the first request rides in "
    "the SYN): i2pd: set [i2cp] enabled = true in i2pd.conf and restart; Java I2P: I2CP is on "
    "by default (http://127.0.0.1:7657/configi2cp)"
)
_hint_logged = False


class NoRouterFound(RouterUnavailable):
    """Auto-detection found neither I2CP nor SAM; the message says how to enable them."""


@dataclass(frozen=True)
class RouterURL:
    """A parsed ``--router`` value."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


DEFAULT_CANDIDATES: tuple[RouterURL, ...] = (
    RouterURL("i2cp", "127.0.0.1", I2CP_DEFAULT_PORT),
    RouterURL("sam", "127.0.0.1", SAM_DEFAULT_PORT),
)


def parse_router_url(url: str) -> RouterURL:
    """``i2cp://host:port`` or ``sam://host[:port]`` (default ports 7654 / 7656).

    Raises ValueError with what is wrong, for the CLI to print.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"router URL {url!r}: scheme must be i2cp:// or sam://")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"router URL {url!r}: only scheme://host:port is allowed")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"router URL {url!r}: bad port") from exc
    host = parts.hostname
    if not host:
        raise ValueError(f"router URL {url!r}: missing host")
    if port == 0:
        raise ValueError(f"router URL {url!r}: port 0")
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return RouterURL(scheme, host, port or SCHEMES[scheme])


# --------------------------------------------------------------------------- probes (sans-IO)


def i2cp_probe_request(version: str = I2CP_PROBE_VERSION) -> bytes:
    """Protocol byte + GetDate(version) — the first thing any I2CP client sends."""
    return messages.PROTOCOL_BYTE + messages.encode_message(messages.GetDate(version))


def parse_i2cp_set_date(msg_type: int, payload: bytes) -> tuple[int, str]:
    """SetDate payload → ``(router time in ms, router API version)``; ValueError otherwise."""
    if msg_type != messages.MessageType.SET_DATE:
        raise ValueError(f"I2CP answered message type {msg_type}, not SetDate")
    answer = messages.SetDate.decode_body(payload)  # I2CPProtocolError is a ValueError
    return answer.date_ms, answer.version or ""


async def probe_i2cp(host: str, port: int, timeout: float = 3.0) -> str | None:
    """The router's I2CP API version if ``host:port`` speaks I2CP, else None."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(i2cp_probe_request())
            header = await reader.readexactly(messages.HEADER.size)
            length, msg_type = messages.HEADER.unpack(header)
            if length > _MAX_PROBE_PAYLOAD:
                return None
            payload = await reader.readexactly(length)
            _, version = parse_i2cp_set_date(msg_type, payload)
            return version or "unknown"
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return None
    finally:
        if writer is not None:
            writer.close()


async def probe_sam(host: str, port: int, timeout: float = 3.0) -> str | None:
    """The negotiated SAM version if ``host:port`` answers HELLO with OK, else None."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(sam_protocol.hello())
            line = await reader.readuntil(b"\n")
            reply = sam_protocol.parse_reply(line)
            if reply.topic != "HELLO" or not reply.ok:
                return None
            return reply.params.get("VERSION", "unknown")
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
    ):
        return None
    finally:
        if writer is not None:
            writer.close()


async def probe(url: RouterURL, timeout: float = 3.0) -> str | None:
    """The version ``url`` answers with in its own protocol, else None."""
    if url.scheme == "i2cp":
        return await probe_i2cp(url.host, url.port, timeout)
    return await probe_sam(url.host, url.port, timeout)


async def detect_router(
    candidates: Sequence[RouterURL] = DEFAULT_CANDIDATES, *, timeout: float = 3.0
) -> RouterURL:
    """The first candidate (in order) that speaks its protocol; NoRouterFound otherwise."""
    results = await asyncio.gather(*(probe(c, timeout) for c in candidates))
    for candidate, version in zip(candidates, results, strict=True):
        if version is None:
            continue
        if candidate.scheme == "i2cp" and not _native_available():
            log.warning("i2cp_found_but_native_dialer_missing", router=str(candidate))
            continue
        log.info("router_detected", router=str(candidate), version=version)
        return candidate
    tried = ", ".join(f"{c.scheme.upper()} {c.host}:{c.port}" for c in candidates)
    raise NoRouterFound(ENABLE_HELP.format(tried=tried))


def _native_available() -> bool:
    try:
        import i2proxy.dialer.native  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- dialer factory


def dialer_for(
    url: RouterURL, *, keys: Any = None, options: Mapping[str, str] | None = None
) -> Dialer:
    """The concrete dialer for a parsed URL (imports the native stack only when needed).

    ``keys``: PrivateKeys, a key file path (any format :mod:`i2proxy.i2p.keyfile` reads; created
    if absent), or None for a destination of this run only.
    """
    keys = keys_from(keys)
    if url.scheme == "i2cp":
        from i2proxy.dialer.native import NativeDialer

        if keys is None:
            from i2proxy.i2p.keys import PrivateKeys

            keys = PrivateKeys.generate()
        return NativeDialer(url.host, url.port, keys=keys, options=options)
    from i2proxy.dialer.sam import SAMDialer

    return SAMDialer(url.host, url.port, keys=keys, options=options)


def log_sam_fallback_hint() -> None:
    """Say once per process that I2CP would be faster."""
    global _hint_logged
    if not _hint_logged:
        _hint_logged = True
        log.warning("sam_fallback", hint=SAM_FALLBACK_HINT)


class AutoDialer:
    """Detects the router at :meth:`start` and then delegates to the chosen dialer."""

    def __init__(
        self,
        *,
        keys: Any = None,
        options: Mapping[str, str] | None = None,
        candidates: Sequence[RouterURL] = DEFAULT_CANDIDATES,
        probe_timeout: float = 3.0,
    ) -> None:
        self.keys = keys
        self.options = options
        self.candidates = tuple(candidates)
        self.probe_timeout = probe_timeout
        self.selected: RouterURL | None = None
        self.inner: Dialer | None = None

    @property
    def backend(self) -> str | None:
        return self.selected.scheme if self.selected else None

    def __getattr__(self, name: str) -> Any:
        # lookup(), destination, session … of the chosen backend.
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    async def start(self) -> None:
        self.selected = await detect_router(self.candidates, timeout=self.probe_timeout)
        if self.selected.scheme == "sam":
            log_sam_fallback_hint()
        self.inner = dialer_for(self.selected, keys=self.keys, options=self.options)
        await self.inner.start()

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()

    async def open_stream(
        self,
        target: Destination | str,
        port: int = 0,
        initial_data: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.inner is None:
            raise RouterUnavailable("dialer not started")
        return await self.inner.open_stream(target, port, initial_data, timeout=timeout)


def make_dialer(
    router_url: str | None,
    *,
    keys: Any = None,
    options: Mapping[str, str] | None = None,
    candidates: Sequence[RouterURL] = DEFAULT_CANDIDATES,
) -> Dialer:
    """The dialer for ``--router`` (ValueError for a bad URL), or an auto-detecting one.

    A key file is read here, before any router is probed, so a bad one fails at once
    (:class:`~i2proxy.i2p.keyfile.KeyFileError`) rather than in the background start.
    """
    keys = keys_from(keys)
    if router_url is None:
        return AutoDialer(keys=keys, options=options, candidates=candidates)
    return dialer_for(parse_router_url(router_url), keys=keys, options=options)


def router_url_of(dialer: Any) -> RouterURL:
    """The router a started dialer talks to (AutoDialer: the one it detected)."""
    selected = getattr(dialer, "selected", None)
    if isinstance(selected, RouterURL):
        return selected
    client = getattr(dialer, "client", None)
    scheme = getattr(dialer, "backend", None) or "i2cp"
    if client is None or scheme not in SCHEMES:
        raise RouterUnavailable("the router is not known yet (no router detected)")
    return RouterURL(scheme, client.host, client.port)


def sibling_factory(dialer: Any, options: Mapping[str, str] | None = None) -> Callable[[], Dialer]:
    """New dialers on ``dialer``'s router, each with a fresh destination of this run only:
    the destination pool's factory (``dialer/pool.py``)."""

    def make() -> Dialer:
        return dialer_for(router_url_of(dialer), keys=None, options=options)

    return make


__all__ = [
    "DEFAULT_CANDIDATES",
    "AutoDialer",
    "DialError",
    "NoRouterFound",
    "RouterURL",
    "detect_router",
    "make_dialer",
    "parse_router_url",
    "router_url_of",
    "sibling_factory",
]
