"""``i2proxy demo``: the offline demo behind ``./scripts/demo``.

Starts the private network (with its eepsite), starts the proxy the user should try, prints the
exact commands and browser settings, and runs until Ctrl-C; then takes everything down.

To switch the demo to another proxy, change only :func:`start_proxy`: it gets the network's
status and returns what to try plus a coroutine function that stops what it started.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from i2proxy.testnet.netns import check_prerequisites
from i2proxy.testnet.network import Network, NetworkConfig
from i2proxy.testnet.status import TestnetStatus

DEMO_NETWORK = "demo"


async def _nothing() -> None:
    return None


@dataclass
class DemoProxy:
    """What the demo prints for one proxy, and how to stop it."""

    title: str
    http_proxy: str
    socks_proxy: str
    stop: Callable[[], Awaitable[None]] = field(default=_nothing)


async def start_proxy(status: TestnetStatus) -> DemoProxy:
    """The proxy the demo shows. Until i2proxy's own proxy lands: i2pd's built-in proxies."""
    return DemoProxy(
        title="i2pd's own HTTP and SOCKS proxy (router "
        f"{status.proxy_router} of the private network)",
        http_proxy=status.http_proxy,
        socks_proxy=status.socks_proxy,
    )


def instructions(status: TestnetStatus, proxy: DemoProxy) -> list[str]:
    site = f"http://{status.eepsite.b32}"
    http_host, http_port = proxy.http_proxy.rsplit(":", 1)
    socks_host, socks_port = proxy.socks_proxy.rsplit(":", 1)
    return [
        f"Private I2P network {status.name!r} is ready after {status.ready_seconds} s "
        f"({len(status.routers)} i2pd routers, nothing leaves this machine).",
        f"Demo eepsite: {site}/",
        f"Proxy: {proxy.title}",
        "",
        "Try it:",
        f"  curl -x http://{proxy.http_proxy} {site}/",
        f"  curl --socks5-hostname {proxy.socks_proxy} {site}/headers",
        f"  curl -x http://{proxy.http_proxy} -o /dev/null -w '%{{speed_download}} B/s\\n' "
        f"{site}/bytes/4194304",
        "",
        "Browser (e.g. Firefox, Settings → Network Settings → Manual proxy configuration):",
        f"  HTTP Proxy {http_host} port {http_port} (also use it for HTTPS), or",
        f"  SOCKS Host {socks_host} port {socks_port}, SOCKS v5, 'Proxy DNS when using SOCKS v5'",
        f"  then open {site}/",
        "",
        "Press Ctrl-C to stop; everything is taken down.",
    ]


async def run_demo(config: NetworkConfig | None = None, name: str = DEMO_NETWORK) -> None:
    check_prerequisites()
    network = Network(name)
    if network.exists():  # left over from an interrupted demo: it is ours to remove
        await network.down()
    print(f"Starting a private I2P network of real i2pd routers ({name!r})…", flush=True)
    status = await network.up(config)
    proxy: DemoProxy | None = None
    try:
        proxy = await start_proxy(status)
        print("\n".join(instructions(status, proxy)), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        print("\nStopping…", flush=True)
        if proxy is not None:
            await proxy.stop()
        await network.down()
        print("Done: the network, its processes and files are gone.", flush=True)
