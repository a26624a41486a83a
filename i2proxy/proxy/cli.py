"""``i2proxy run``: start the HTTP and SOCKS proxies in front of an I2P router."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from i2proxy.config import Config, ConfigError, load_config
from i2proxy.i2p.keyfile import DEFAULT_KEY_FILE_NAME, KeyFileError
from i2proxy.log import get_logger

log = get_logger("i2proxy.run")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the HTTP and SOCKS proxies",
        description=(
            "Run the HTTP proxy (default 127.0.0.1:4444) and the SOCKS4/4a/5 proxy (default "
            "127.0.0.1:4447) for .i2p sites. Settings come from --config FILE < I2PROXY_* "
            "environment variables < these flags."
        ),
    )
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML config file (keys as in docs/PROXY.md)")
    add("--router", metavar="URL", help="router: sam://HOST:PORT or i2cp://HOST:PORT")
    add("--http", dest="http_listen", metavar="HOST:PORT", help="HTTP proxy address ('' = off)")
    add("--socks", dest="socks_listen", metavar="HOST:PORT", help="SOCKS address ('' = off)")
    add("--mixed", dest="mixed_listen", metavar="HOST:PORT", help="one port for SOCKS and HTTP")
    add("--data-dir", metavar="DIR", help="address book and keys")
    add(
        "--user",
        dest="users",
        action="append",
        metavar="NAME:PASSWORD",
        help="require this proxy user (repeatable)",
    )
    add(
        "--allow",
        action="append",
        metavar="CIDR",
        help="allow clients from this network (repeatable)",
    )
    add("--user-agent", metavar="UA", help="User-Agent sent to eepsites")
    add(
        "--send-user-agent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pass the browser's own User-Agent (less private)",
    )
    add(
        "--address-helper",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer ?i2paddresshelper= links (confirmation page, never auto-saved)",
    )
    add("--syn-window-ms", type=int, metavar="MS", help="wait for first bytes to ride the SYN")
    add(
        "--keys-file",
        metavar="FILE",
        help="keys of a persistent client destination (implies --persistent)",
    )
    add(
        "--persistent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the client destination across runs (DATA_DIR/client-destination.keys)",
    )
    add("--max-clients", type=int, metavar="N", help="concurrent client connections (2048)")
    add(
        "--max-streams",
        type=int,
        metavar="N",
        help="open I2P streams, native backend (4096); each SOCKS connection holds one",
    )
    add(
        "--public-pac",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve /proxy.pac without credentials when users are set (no other page)",
    )
    add(
        "--hops",
        type=int,
        metavar="N",
        help="tunnel length, inbound and outbound (default: the router's, 3 hops)",
    )
    add("--quantity", type=int, metavar="N", help="tunnels per direction (default: the router's)")
    add("--backup-quantity", type=int, metavar="N", help="standby tunnels per direction")
    add(
        "--option",
        dest="options",
        action="append",
        metavar="KEY=VALUE",
        help="router session option: inbound.*, outbound.*, i2cp.*, i2p.streaming.* (repeatable;"
        " wins over --hops/--quantity)",
    )
    add(
        "--isolation",
        action="append",
        metavar="MODE|LISTENER=MODE",
        help="client destination per: none, user (proxy user / SOCKS credentials), site (HTTP:"
        " per user and first-party site; the default); e.g. --isolation socks=user (repeatable)",
    )
    add(
        "--max-destinations",
        type=int,
        metavar="N",
        help="isolated destinations at most, spares included (16)",
    )
    add(
        "--spare-destinations",
        type=int,
        metavar="N",
        help="destinations kept ready for the next new site or user (1)",
    )
    add(
        "--destination-idle",
        type=float,
        metavar="SECONDS",
        help="close an isolated destination unused this long (600)",
    )
    add(
        "--outproxy",
        action="append",
        metavar="URL",
        help="reach clearnet hosts through this outproxy, an I2P destination: http://NAME.i2p or"
        " socks5://B32.b32.i2p:1080 (repeatable: failover in this order; default: none, clearnet"
        " is refused)",
    )
    parser.set_defaults(handler=run_command)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "router",
        "http_listen",
        "socks_listen",
        "mixed_listen",
        "data_dir",
        "allow",
        "user_agent",
        "send_user_agent",
        "address_helper",
        "syn_window_ms",
        "keys_file",
        "persistent",
        "max_clients",
        "hops",
        "quantity",
        "backup_quantity",
        "options",
        "max_streams",
        "isolation",
        "max_destinations",
        "spare_destinations",
        "destination_idle",
        "outproxy",
    )
    values: dict[str, Any] = {name: getattr(args, name, None) for name in names}
    if args.users:
        values["users"] = ",".join(args.users)
    return values


def run_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(config_file=args.config, overrides=_overrides(args))
        config.check_exposure()
        check_outproxies(config)
    except ConfigError as exc:
        print(f"i2proxy run: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(config))


def open_address_book(config: Config) -> Any:
    """The persistent address book in the data dir (None if it cannot be opened)."""
    try:
        from i2proxy.naming import AddressBook
    except ImportError:  # pragma: no cover - naming is part of the package
        return None
    try:
        return AddressBook.open(config.data_dir)
    except Exception as exc:
        log.warning("address book unavailable; only .b32.i2p names work", error=repr(exc))
        return None


def client_keys(config: Config) -> str | None:
    """The client destination's key file, or None for a destination of this run only."""
    if config.keys_file:
        return config.keys_file
    if config.persistent:
        return os.path.join(config.data_dir, DEFAULT_KEY_FILE_NAME)
    return None


def dialer_options(config: Config) -> dict[str, str]:
    """Router session and streaming options of every client destination."""
    return {**config.session_options(), "i2proxy.streaming.maxStreams": str(config.max_streams)}


def make_dialer(config: Config) -> Any:
    """The router backend named by ``config.router`` (``sam://``, ``i2cp://``, or detected)."""
    from i2proxy.dialer.select import make_dialer as select_dialer

    try:
        return select_dialer(
            config.router or None, keys=client_keys(config), options=dialer_options(config)
        )
    except KeyFileError as exc:  # before ValueError, which it is
        raise ConfigError(f"keys file: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"router: {exc}") from None


def check_outproxies(config: Config) -> None:
    """Every ``outproxy`` URL names an I2P destination (ConfigError says which does not)."""
    from i2proxy.proxy.outproxy import parse_outproxy

    for url in config.outproxy:
        try:
            parse_outproxy(url)
        except ValueError as exc:
            raise ConfigError(f"outproxy: {exc}") from None


def make_pool(config: Config, dialer: Any) -> Any:
    """The destination pool for isolated traffic and for outproxy traffic (its own key); None
    when every listener is ``none`` and no outproxy is set. New destinations are made on the
    router ``dialer`` uses, with the same options; spares only for isolation."""
    isolating = any(mode != "none" for mode in config.isolation.values())
    if not isolating and not config.outproxy:
        return None
    from i2proxy.dialer.pool import DestinationPool
    from i2proxy.dialer.select import sibling_factory

    return DestinationPool(
        sibling_factory(dialer, dialer_options(config)),
        max_destinations=config.max_destinations,
        spares=config.spare_destinations if isolating else 0,
        idle_timeout=config.destination_idle,
    )


async def warm_outproxy_destination(pool: Any) -> None:
    """Build the outproxy destination's tunnels now, not at the first clearnet request."""
    from i2proxy.dialer.base import DialError
    from i2proxy.dialer.pool import OUTPROXY_KEY

    try:
        await pool.dialer_for(OUTPROXY_KEY)
    except DialError as exc:  # the first request will try again
        log.warning("outproxy destination not ready yet", error=type(exc).__name__)


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT: start the dialer, listen, then shut down cleanly."""
    from i2proxy.dialer.select import NoRouterFound
    from i2proxy.proxy.server import ProxyServer

    book = open_address_book(config)
    try:
        dialer = make_dialer(config)
    except (ConfigError, ImportError) as exc:
        log.error("cannot start", router=config.router, error=str(exc))
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    pool = make_pool(config, dialer)
    server = ProxyServer(config, dialer, book, pool=pool)
    # The router is connected in the background: the proxy listens (and its health page answers)
    # meanwhile, and SIGTERM is honoured even while the router is unreachable (a container
    # stopped during start-up, a router started after the proxy).
    starting = asyncio.ensure_future(dialer.start())
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot listen", error=str(exc))
        await server.close(grace=0)
        await dialer.close()
        return 1
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
    elif isinstance(starting.exception(), NoRouterFound):
        # Auto-detection found no router at all: say how to enable one instead of waiting.
        print(f"i2proxy: {starting.exception()}", file=sys.stderr)
        await server.close(grace=0)
        await dialer.close()
        return 2
    elif starting.exception() is not None:
        # Keep serving: the dialer reconnects, and clients get "router unavailable" meanwhile.
        log.warning(
            "router not reachable yet", router=config.router, error=repr(starting.exception())
        )
    warming = None
    if pool is not None:
        await pool.start()  # the spare's tunnels are built while the user starts browsing
        if config.outproxy:
            warming = asyncio.ensure_future(warm_outproxy_destination(pool))
    subscriptions = None
    if book is not None:
        from i2proxy.naming.subscriptions import start_subscriptions

        subscriptions = start_subscriptions(book, dialer)
    log.info(
        "i2proxy ready",
        router=config.router or "auto",
        **{k: f"{h}:{p}" for k, (h, p) in server.addresses.items()},
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await server.close()
    if warming is not None:
        warming.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await warming
    if pool is not None:
        with contextlib.suppress(Exception):
            await pool.close()
    if subscriptions is not None:
        with contextlib.suppress(Exception):
            await subscriptions.close()
    with contextlib.suppress(Exception):
        await dialer.close()
    flush = (
        getattr(book, "close", None) or getattr(book, "flush", None) or getattr(book, "save", None)
    )
    if callable(flush):
        with contextlib.suppress(Exception):
            result = flush()
            if asyncio.iscoroutine(result):
                await result
    log.info("stopped")
    return 0
