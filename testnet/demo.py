"""``i2proxy demo``: the offline demo behind ``./scripts/demo``.

Starts the private network (with its eepsite), starts the proxy the user should try, prints the
exact commands and browser settings, and runs until Ctrl-C; then takes everything down.

To switch the demo to another proxy, change only :func:`start_proxy`: it gets the network's
status and returns what to try plus a coroutine function that stops what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from testnet.netns import check_prerequisites
from testnet.network import Network, NetworkConfig
from testnet.status import TestnetStatus

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
    """Start ``i2proxy run`` (native I2CP backend) on the proxy router; stop it with SIGTERM."""
    import socket
    import tempfile

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    router = status.routers[status.proxy_router]
    http, socks = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    data_dir = tempfile.mkdtemp(prefix="i2proxy-demo-")
    env = dict(os.environ, I2PROXY_SUBSCRIPTIONS="off")  # offline network: no feeds to fetch
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "i2proxy", "--log-level", "warning", "run",
        "--router", f"i2cp://{router.i2cp}", "--http", http, "--socks", socks,
        "--data-dir", data_dir, env=env,
    )  # fmt: skip

    async def stop() -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)

    try:
        await _wait_proxy_serves(http, status.eepsite.b32, proc)
    except BaseException:
        await stop()
        raise
    return DemoProxy(
        title=f"i2proxy (native I2CP to router {status.proxy_router}); for comparison, i2pd's "
        f"own proxy is at http://{status.http_proxy}",
        http_proxy=http,
        socks_proxy=socks,
        stop=stop,
    )


async def _wait_proxy_serves(http: str, b32: str, proc: asyncio.subprocess.Process) -> None:
    """Until a GET of the eepsite through the proxy succeeds (the first lookup takes a moment)."""
    host, port = http.rsplit(":", 1)
    deadline = asyncio.get_running_loop().time() + 180
    while asyncio.get_running_loop().time() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"i2proxy run exited with status {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET http://{b32}/ HTTP/1.1\r\nHost: {b32}\r\n".encode())
            writer.write(b"Connection: close\r\n\r\n")
            reply = await asyncio.wait_for(reader.read(-1), 30)
            writer.close()
            if reply.startswith(b"HTTP/1.1 200 "):
                return
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(1)
    raise TimeoutError("i2proxy did not reach the eepsite within 180 s")


def java_lines(status: TestnetStatus, proxy_http: str) -> list[str]:
    """The Java I2P router's own HTTP proxy and the eepsite it publishes (same files)."""
    if status.java_eepsite is None or status.java_http_proxy is None:
        return []
    java = f"http://{status.java_eepsite.b32}"
    return [
        "",
        f"Java I2P {status.routers[status.java_eepsite.router].version} router: its eepsite "
        f"{java}/ (I2PTunnel HTTP server, same files), its HTTP proxy {status.java_http_proxy}:",
        f"  curl -x http://{status.java_http_proxy} http://{status.eepsite.b32}/",
        f"  curl -x http://{proxy_http} {java}/",
    ]


def instructions(status: TestnetStatus, proxy: DemoProxy) -> list[str]:
    site = f"http://{status.eepsite.b32}"
    http_host, http_port = proxy.http_proxy.rsplit(":", 1)
    socks_host, socks_port = proxy.socks_proxy.rsplit(":", 1)
    return [
        f"Private I2P network {status.name!r} is ready after {status.ready_seconds} s "
        f"({len(status.i2pd_routers)} i2pd and {len(status.java_routers)} Java I2P routers, "
        "nothing leaves this machine).",
        f"Demo eepsite: {site}/",
        f"Proxy: {proxy.title}",
        "",
        "Try it:",
        f"  curl -x http://{proxy.http_proxy} {site}/",
        f"  curl --socks5-hostname {proxy.socks_proxy} {site}/headers",
        f"  curl -x http://{proxy.http_proxy} -o /dev/null -w '%{{speed_download}} B/s\\n' "
        f"{site}/bytes/4194304",
        *java_lines(status, proxy.http_proxy),
        "",
        "Browser: automatic proxy configuration URL (only *.i2p goes through the proxy):",
        f"  http://{proxy.http_proxy}/proxy.pac",
        "or manual proxy configuration (e.g. Firefox, Settings → Network Settings):",
        f"  HTTP Proxy {http_host} port {http_port} (also use it for HTTPS), or",
        f"  SOCKS Host {socks_host} port {socks_port}, SOCKS v5, 'Proxy DNS when using SOCKS v5'",
        f"  then open {site}/",
        "",
        "Press Ctrl-C to stop; everything is taken down.",
    ]


def say(text: str) -> None:
    """Print for the user, if anyone still reads: with ``./scripts/demo | tee demo.log`` a
    Ctrl-C kills ``tee`` too, and a print then raises BrokenPipeError. Cleanup must not depend
    on stdout, so a failed write only silences the rest of the output."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's exit flush goes nowhere
            os.close(devnull)


async def run_demo(config: NetworkConfig | None = None, name: str = DEMO_NETWORK) -> None:
    """Run the demo until SIGINT/SIGTERM/SIGHUP, then take everything down.

    The signal handlers are installed before anything starts: a signal during start-up cancels
    it (``Network.up`` cleans up after itself); later signals while cleaning up are ignored, so
    a second Ctrl-C cannot leave routers or the namespace behind.
    """
    check_prerequisites(**(config or NetworkConfig()).prerequisites())
    network = Network(name)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    stop = asyncio.Event()
    starting = True

    def on_signal() -> None:
        if stop.is_set():
            return  # already stopping: let the cleanup finish
        stop.set()
        if starting and main is not None:
            main.cancel()

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    proxy: DemoProxy | None = None
    try:
        if network.exists():  # left over from an interrupted demo: it is ours to remove
            await network.down()
        say(f"Starting a private I2P network of i2pd and Java I2P routers ({name!r})…")
        status = await network.up(config)
        proxy = await start_proxy(status)
        starting = False
        say("\n".join(instructions(status, proxy)))
        await stop.wait()
    except asyncio.CancelledError:
        if not stop.is_set() or main is None:
            raise  # cancelled by someone else, not by our signal handler
        main.uncancel()
    finally:
        starting = False
        stop.set()
        say("\nStopping…")
        try:
            if proxy is not None:
                await proxy.stop()
        finally:
            await network.down()
            for sig in signals:
                loop.remove_signal_handler(sig)
        say("Done: the network, its processes and files are gone.")
