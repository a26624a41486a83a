"""The native dialer: our own streaming stack over our own I2CP session.

Unlike SAM, the first request rides in the SYN. Targets are a ``Destination``, a ``.b32.i2p``
name (resolved by an I2CP HostLookup of its hash, cached for ``lookup_ttl``) or a full base64
destination. When the router goes away every stream fails at once with ``RouterUnavailable``;
the I2CP client reconnects with backoff and re-creates the session with the same destination,
after which new streams work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from i2proxy.dialer.base import (
    DestinationOffline,
    DialError,
    DialTimeout,
    InvalidTarget,
    LocalLimitReached,
    PeerRefused,
    PeerUnreachable,
    ReplyLost,
    RouterUnavailable,
)
from i2proxy.dialer.datagrams import DatagramEndpoint, EndpointTable
from i2proxy.dialer.young import YOUNG_RETRY, YoungDestinationRetry
from i2proxy.i2cp.client import DEFAULT_HOST, DEFAULT_PORT, I2CPClient
from i2proxy.i2cp.datagram import DATAGRAM_PROTOCOLS, DatagramReceiver, encode_repliable
from i2proxy.i2cp.errors import RouterDisconnected
from i2proxy.i2cp.identity import KeysIdentity
from i2proxy.i2cp.payload import Payload, Protocol
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.errors import B33NotSupported, I2PFormatError
from i2proxy.i2p.keyfile import DEFAULT_KEY_FILE_NAME, load_or_create_key_file
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.names import b32_hash_from_name, b32_name_from_hash
from i2proxy.log import get_logger
from i2proxy.streaming.delivery import SYN_LOOKUP_BUDGET
from i2proxy.streaming.errors import (
    StreamConnectTimeout,
    StreamDestinationOffline,
    StreamLimitReached,
    StreamOpenError,
    StreamRefused,
    StreamReplyLost,
    StreamUnreachable,
)
from i2proxy.streaming.manager import StreamManager
from i2proxy.streaming.options import StreamingOptions

log = get_logger("i2proxy.dialer.native")

#: Router session options sent unless the caller sets them (what Java I2P's own client library
#: and I2PTunnel send; i2pd's I2CP ignores both, it reads the keys from our LeaseSet2):
#: - ``i2cp.leaseSetEncType=4,0``: without it Java gives the session an ElGamal-only key
#:   manager, while our LeaseSet2 offers X25519 first, so Java encrypts every outgoing message
#:   with ECIES and fails ("No SKM", MessageStatus 16): no SYN ever leaves.
#: - ``i2cp.fastReceive=true``: without it Java announces every incoming message with
#:   MessageStatus(AVAILABLE) and waits for ReceiveMessageBegin — handled (``i2cp/session.py``),
#:   but that costs two extra I2CP messages per packet.
#: Not ``i2cp.messageReliability=none`` (Java's library default): with it Java sends no
#: MessageStatus even for a nonzero nonce, and the tracked SYN needs its status; untracked
#: packets use nonce 0 and get none anyway.
SESSION_DEFAULTS: dict[str, str] = {
    "i2cp.leaseSetEncType": "4,0",
    "i2cp.fastReceive": "true",
}
#: Option prefixes that configure the streaming layer, not the router session.
STREAMING_PREFIXES = ("i2p.streaming.", "i2proxy.streaming.")
#: How long a b32 → Destination answer stays valid (LeaseSets change, destinations do not).
DEFAULT_LOOKUP_TTL = 600.0
DEFAULT_LOOKUP_TIMEOUT = 15.0
#: How long ``open_stream`` waits for a session that is being re-created before giving up.
DEFAULT_ROUTER_WAIT = 0.0
#: How long a stream waits for a new session's first successful self-lookup (outbound tunnels).
DEFAULT_SEND_READY_WAIT = 10.0

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def dial_error(exc: BaseException) -> DialError:
    """The DialError an I2CP- or streaming-level failure means for the frontends."""
    if isinstance(exc, DialError):
        return exc
    if isinstance(exc, RouterDisconnected):
        return RouterUnavailable(str(exc))
    if isinstance(exc, StreamRefused):
        return PeerRefused(str(exc))
    if isinstance(exc, StreamLimitReached):
        return LocalLimitReached(str(exc))
    if isinstance(exc, StreamConnectTimeout | TimeoutError):
        return DialTimeout(str(exc) or "timed out")
    if isinstance(exc, StreamDestinationOffline):
        return DestinationOffline(str(exc))
    if isinstance(exc, StreamReplyLost):
        return ReplyLost(str(exc))
    if isinstance(exc, StreamUnreachable):
        return PeerUnreachable(str(exc))
    return DialError(f"{type(exc).__name__}: {exc}")


def split_options(options: Mapping[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """(router session options, streaming options): ``i2p.streaming.*`` go to our stack; the
    session options start from :data:`SESSION_DEFAULTS`, which the caller's options override."""
    session: dict[str, str] = dict(SESSION_DEFAULTS)
    streaming: dict[str, str] = {}
    for key, value in (options or {}).items():
        (streaming if key.startswith(STREAMING_PREFIXES) else session)[key] = str(value)
    return session, streaming


class NativeDialer:
    """``Dialer`` over I2CP + our streaming ``StreamManager``."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        keys: PrivateKeys,
        options: Mapping[str, str] | None = None,
        lookup_ttl: float = DEFAULT_LOOKUP_TTL,
        lookup_timeout: float = DEFAULT_LOOKUP_TIMEOUT,
        router_wait: float = DEFAULT_ROUTER_WAIT,
        start_timeout: float = 120.0,
        send_ready_wait: float = DEFAULT_SEND_READY_WAIT,
        young_retry: YoungDestinationRetry = YOUNG_RETRY,
    ) -> None:
        self.keys = keys
        self.lookup_ttl = lookup_ttl
        self.lookup_timeout = lookup_timeout
        self.router_wait = router_wait
        self.start_timeout = start_timeout
        self.send_ready_wait = send_ready_wait
        #: When a "not found" is looked up again while our destination is young.
        self.young_retry = young_retry
        #: Lookups asked again because our destination was young, and how many of those found
        #: the destination after all (each a false "offline" avoided).
        self.young_lookup_retries = 0
        self.young_lookups_rescued = 0
        session_options, streaming_options = split_options(options)
        self.client = I2CPClient(
            KeysIdentity(keys),
            host=host,
            port=port,
            options=session_options,
            on_payload=self._on_payload,
            on_down=self._on_router_down,
            on_up=self._on_router_up,
        )
        self.manager = StreamManager(
            keys,
            self._send,
            StreamingOptions.from_properties(streaming_options),
            send_tracked=self._send_tracked,
            lookup_again=self._lookup_again,
        )
        self._cache: dict[bytes, tuple[Destination, float]] = {}
        #: Incoming payloads we dropped: neither streaming (6) nor a datagram protocol.
        self.ignored_payloads = 0
        self.datagrams = EndpointTable()
        #: Verifies incoming datagrams; ``datagram_receiver.stats`` counts the dropped ones.
        self.datagram_receiver = DatagramReceiver(keys.destination.hash)

    @classmethod
    def from_data_dir(
        cls,
        data_dir: str | os.PathLike[str],
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        **kwargs: Any,
    ) -> NativeDialer:
        """A dialer whose destination persists in ``<data_dir>/client-destination.keys``."""
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        keys = load_or_create_key_file(os.path.join(data_dir, DEFAULT_KEY_FILE_NAME))
        return cls(host, port, keys=keys, **kwargs)

    @property
    def destination(self) -> Destination:
        return self.keys.destination

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Connect, create the session and hand over the LeaseSet; streams work afterwards."""
        try:
            await self.client.start(timeout=self.start_timeout)
        except RouterDisconnected as exc:
            raise RouterUnavailable(str(exc)) from exc
        with contextlib.suppress(RouterDisconnected):
            await self.client.wait_published(self.send_ready_left())
        # Our b32 at debug only: an eepsite sees it, so a log holding it links visits to us.
        log.info("native.started", router=f"{self.client.host}:{self.client.port}")
        log.debug("native.started", b32=self.destination.b32)

    async def wait_published(self, timeout: float = 60.0, interval: float = 1.0) -> float:
        """Wait until the network (a floodfill) returns our own LeaseSet; seconds it took.

        Outgoing streams do not need this (our LeaseSet rides with our first message), but
        peers that dial *us* do.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerUnreachable(f"our LeaseSet was not published within {timeout} s")
            try:
                found = await self.client.lookup(
                    hash=self.destination.hash, timeout=min(remaining, 10.0)
                )
            except RouterDisconnected:
                found = None
                try:
                    await self.client.wait_ready(remaining)
                except RouterDisconnected as exc:
                    raise RouterUnavailable(str(exc)) from exc
            if found is not None:
                return time.monotonic() - started
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    async def close(self) -> None:
        self.datagrams.close_all()
        self.manager.abort_all(RouterUnavailable("dialer closed"))
        await self.client.close()

    # ---------------------------------------------------------------- Dialer

    async def open_stream(
        self,
        target: Destination | str,
        port: int = 0,
        initial_data: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            await self._require_router()
            started = time.monotonic()
            destination = await self.resolve(target, timeout=timeout)
            if timeout is not None:
                timeout = timeout - (time.monotonic() - started)
                if timeout <= 0:
                    raise DialTimeout(f"resolving {target} used the whole timeout")
            return await self.manager.open_stream(destination, port, initial_data, timeout=timeout)
        except (RouterDisconnected, StreamOpenError) as exc:
            raise dial_error(exc) from exc

    def listen(self, handler: StreamHandler, port: int | None = None) -> None:
        """Accept incoming streams on I2P ``port`` (None: every port without its own handler).

        ``handler(reader, writer)`` runs per stream; what it writes within the connect delay
        rides in the SYN reply. Peers find us once our LeaseSet is published (``wait_published``).
        """
        self.manager.listen(handler, port)

    # ---------------------------------------------------------------- datagrams

    async def open_datagram_endpoint(self, local_port: int | None = None) -> DatagramEndpoint:
        """A datagram endpoint on our destination (a free local I2P port unless given).

        Sends are repliable datagrams (Datagram1), the only signed type i2pd 2.45.1 and every
        Java router before 0.9.66 understand; incoming datagrams of protocols 17-20 addressed
        to the endpoint's port are verified and queued.
        """
        await self._require_router()
        return self.datagrams.open(self._send_datagram, local_port)

    async def _send_datagram(
        self, target: Destination | str, data: bytes, port: int, local_port: int
    ) -> str:
        await self._require_router()
        destination = await self.resolve(target)
        try:
            self.client.send(
                destination.to_bytes(),
                encode_repliable(self.keys, data),
                protocol=Protocol.REPLIABLE_DATAGRAM,
                src_port=local_port,
                dst_port=port,
            )
        except RouterDisconnected as exc:
            raise RouterUnavailable(str(exc)) from exc
        return destination.b32

    # ---------------------------------------------------------------- resolution

    async def resolve(
        self, target: Destination | str, *, timeout: float | None = None
    ) -> Destination:
        """The Destination behind ``target``; raises ``InvalidTarget`` or ``PeerUnreachable``."""
        if isinstance(target, Destination):
            return target
        if not isinstance(target, str):
            raise InvalidTarget(f"not a destination: {target!r}")
        text = target.strip()
        if text.lower().endswith(".i2p"):
            return await self._lookup_b32(text.lower(), timeout)
        try:
            return Destination.from_base64(text)
        except (I2PFormatError, ValueError) as exc:
            raise InvalidTarget(
                f"not a .b32.i2p name or base64 destination: {text[:60]!r}"
            ) from exc

    async def _lookup_b32(self, name: str, timeout: float | None) -> Destination:
        try:
            digest = b32_hash_from_name(name)
        except B33NotSupported:
            return await self._lookup_b33(name, timeout)
        except (I2PFormatError, ValueError) as exc:
            raise InvalidTarget(f"{name}: {exc}") from exc
        now = time.monotonic()
        if (cached := self._cached(digest, now)) is not None:
            return cached
        found = await self._ask_router(timeout, hash=digest)
        if found is None:
            raise DestinationOffline(f"{name}: no LeaseSet found on the network")
        try:
            destination = Destination.from_bytes(found)
        except (I2PFormatError, ValueError) as exc:
            raise PeerUnreachable(f"{name}: router returned a malformed destination") from exc
        if destination.hash != digest:
            raise PeerUnreachable(f"{name}: router returned a different destination")
        self._remember(digest, destination, now)
        return destination

    async def _lookup_b33(self, name: str, timeout: float | None) -> Destination:
        """A b33 (encrypted LeaseSet) address, resolved by the router: HostLookup by name.

        Java I2P decodes the blinded key, fetches and decrypts the LeaseSet and keeps the
        blinding for the messages we then send to that destination. i2pd's I2CP cannot (its
        HostLookup answers "not found" for every b33), so the error says what to do.
        """
        # b32_hash_from_name (i2p.names) raised B33NotSupported only after the label decoded.
        key = name.encode()  # never 32 bytes long, so it cannot meet a b32 hash in the cache
        now = time.monotonic()
        if (cached := self._cached(key, now)) is not None:
            return cached
        found = await self._ask_router(timeout, name=name)
        if found is None:
            raise PeerUnreachable(
                f"{name}: the router could not resolve this b33 (encrypted LeaseSet) address. "
                "i2pd cannot resolve b33 addresses at all (use Java I2P, or the site's b32 "
                "address); on Java I2P the site is offline or needs a lookup password"
            )
        try:
            destination = Destination.from_bytes(found)
        except (I2PFormatError, ValueError) as exc:
            raise PeerUnreachable(f"{name}: router returned a malformed destination") from exc
        self._remember(key, destination, now)
        return destination

    def _cached(self, key: bytes, now: float) -> Destination | None:
        entry = self._cache.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    async def _ask_router(
        self,
        timeout: float | None,
        *,
        hash: bytes | None = None,
        name: str | None = None,
        per_lookup: float | None = None,
    ) -> bytes | None:
        """HostLookup (by hash or by name), each within the lookup timeout (and ``per_lookup``).

        While our destination is young a "not found" is asked again (``dialer/young.py``:
        its tunnels, not the site, may have failed), within ``timeout`` if one is given.
        """
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        attempt = 0
        age: float | None = None  # when the first lookup began: the "not found" came from then
        while True:
            began = time.monotonic()
            lookup_timeout = self.lookup_timeout
            if deadline is not None:
                lookup_timeout = max(0.001, min(lookup_timeout, deadline - began))
            if per_lookup is not None:
                lookup_timeout = min(lookup_timeout, per_lookup)
            if attempt:  # a retry ends by the rule's verdict time
                left = self.young_retry.time_left(began - started)
                if left is not None:
                    lookup_timeout = max(0.001, min(lookup_timeout, left))
            if not attempt:
                age = self.session_age(began)
            try:
                found = await self.client.lookup(hash=hash, name=name, timeout=lookup_timeout)
            except RouterDisconnected as exc:
                raise RouterUnavailable(str(exc)) from exc
            now = time.monotonic()
            if found is not None:
                if attempt:
                    self.young_lookups_rescued += 1
                    log.info(
                        "native.young_lookup_found",
                        attempts=attempt + 1,
                        after=round(now - started, 2),
                    )
                return found
            delay = self.young_retry.retry_delay(
                age=age,
                attempt=attempt,
                elapsed=now - started,
                remaining=None if deadline is None else deadline - now,
            )
            log.debug(
                "native.lookup_not_found",
                attempt=attempt + 1,
                took=round(now - began, 3),
                after=round(now - started, 3),
                retry_in=delay,
            )
            if delay is None:
                return None
            # No target in the log at info: it would link this destination's visits.
            log.info(
                "native.young_lookup_retry",
                session_age=round(age, 1) if age is not None else None,
                attempt=attempt + 1,
                delay=delay,
            )
            attempt += 1
            self.young_lookup_retries += 1
            await asyncio.sleep(delay)

    def session_age(self, now: float | None = None) -> float | None:
        """Seconds since our current I2CP session became ready (None while there is none)."""
        ready_at = self.client.ready_at
        if ready_at is None:
            return None
        return (time.monotonic() if now is None else now) - ready_at

    def _remember(self, key: bytes, destination: Destination, now: float) -> None:
        self._cache[key] = (destination, now + self.lookup_ttl)
        if len(self._cache) > 4096:
            self._expire_cache(now)

    def _expire_cache(self, now: float) -> None:
        for digest, (_, expiry) in list(self._cache.items()):
            if expiry <= now:
                del self._cache[digest]
        while len(self._cache) > 4096:
            self._cache.pop(next(iter(self._cache)))

    # ---------------------------------------------------------------- glue

    async def _require_router(self) -> None:
        """Fail at once while the router is gone; briefly wait while a new session warms up."""
        if not self.client.ready:
            if self.router_wait <= 0:
                raise RouterUnavailable(
                    f"I2CP router {self.client.host}:{self.client.port} not connected; reconnecting"
                )
            try:
                await self.client.wait_ready(self.router_wait)
            except RouterDisconnected as exc:
                raise RouterUnavailable(str(exc)) from exc
        if not self.client.published.is_set():
            # A fresh session may have no outbound tunnel yet: i2pd would drop our SYN and the
            # retransmission comes only after the initial RTO. Waiting for the first lookup of
            # ourselves to succeed (it leaves through an outbound tunnel) avoids that.
            wait = self.send_ready_left()
            if wait > 0:
                with contextlib.suppress(RouterDisconnected):
                    await self.client.wait_published(wait)

    def send_ready_left(self, now: float | None = None) -> float:
        """How long a dial may still wait for our first published LeaseSet: what is left of
        ``send_ready_wait`` since the session became ready.

        The wait is for a *fresh* session's first outbound tunnel. Our self-lookups can keep
        failing after sending works (our LeaseSet not on a floodfill yet), and a full wait per
        dial then delayed every dial by 10 s (likely what made an offline reply take 17 s in
        CI of stop 21: this wait plus 7 s of young lookups)."""
        age = self.session_age(now)
        if age is None:
            return self.send_ready_wait
        return max(0.0, self.send_ready_wait - age)

    def _send(
        self, destination: Destination | bytes, payload: bytes, src_port: int = 0, dst_port: int = 0
    ) -> None:
        raw = destination if isinstance(destination, bytes) else destination.to_bytes()
        self.client.send(
            raw, payload, protocol=Protocol.STREAMING, src_port=src_port, dst_port=dst_port
        )

    def _send_tracked(
        self,
        destination: Destination,
        payload: bytes,
        src_port: int,
        dst_port: int,
        on_status: Callable[[int], None],
    ) -> None:
        """Send with a nonce: the router reports the final MessageStatus (used for SYNs)."""
        self.client.send(
            destination.to_bytes(),
            payload,
            protocol=Protocol.STREAMING,
            src_port=src_port,
            dst_port=dst_port,
            on_status=on_status,
        )

    async def _lookup_again(self, destination: Destination) -> bool:
        """After "no LeaseSet" for a SYN: is the destination on the network after all?

        Our own b32 cache is dropped first; the router answers from its netDb only if it holds
        a valid LeaseSet, and otherwise asks the floodfills again. While our destination is
        young a "not found" is asked again (``dialer/young.py``).
        """
        self._cache.pop(destination.hash, None)
        found = await self._ask_router(None, hash=destination.hash, per_lookup=SYN_LOOKUP_BUDGET)
        return found is not None

    def _on_payload(self, payload: Payload) -> None:
        if payload.protocol == Protocol.STREAMING:
            self.manager.handle_payload(
                payload.data, src_port=payload.src_port, dst_port=payload.dst_port
            )
        elif payload.protocol in DATAGRAM_PROTOCOLS:
            datagram = self.datagram_receiver.receive(payload, time.time())
            if datagram is None:
                return
            sender = datagram.sender_hash
            self.datagrams.dispatch(
                datagram.dst_port,
                datagram.payload,
                b32_name_from_hash(sender) if sender is not None else None,
                datagram.src_port,
                datagram.authenticated,
            )
        else:
            self.ignored_payloads += 1

    def _on_router_down(self, exc: Exception) -> None:
        error = exc if isinstance(exc, DialError) else RouterUnavailable(str(exc))
        self.manager.abort_all(error)

    def _on_router_up(self) -> None:
        log.info("native.router_back", sessions=self.client.sessions_created)
