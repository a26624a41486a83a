"""The one process that runs every service behind the services router's server tunnels.

Both eepsites (aiohttp, ``testnet.eepsite``), the UDP echo, the "clearnet" web server
(``testnet.clearnet``) and the test outproxy (``testnet.outproxy``) share one event loop: one
Python start-up (aiohttp's import alone costs a good part of a second) per network, which is
brought up many times in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from aiohttp import web

from i2proxy.log import configure, get_logger
from testnet.clearnet import make_clearnet_app
from testnet.eepsite import INDEX2_TEMPLATE, make_app
from testnet.outproxy import start_outproxy
from testnet.router import (
    CLEARNET_LOCAL_PORT,
    EEPSITE2_LOCAL_PORT,
    EEPSITE_LOCAL_PORT,
    OUTPROXY_HTTP_LOCAL_PORT,
    OUTPROXY_SOCKS_LOCAL_PORT,
    UDP_ECHO_LOCAL_PORT,
    WHOAMI_PORT,
)

log = get_logger(__name__)
HOST = "127.0.0.1"


async def serve(www_dir: Path, eepsite_b32: str, stats_file: Path | None) -> None:
    """Start every service, then run until SIGTERM/SIGINT."""
    index2 = INDEX2_TEMPLATE.format(eepsite=eepsite_b32, whoami_port=WHOAMI_PORT)
    apps = (
        (make_app(www_dir, (HOST, UDP_ECHO_LOCAL_PORT)), EEPSITE_LOCAL_PORT),
        (make_app(www_dir, index_html=index2), EEPSITE2_LOCAL_PORT),
        (make_clearnet_app(), CLEARNET_LOCAL_PORT),
    )
    runners = []
    for app, port in apps:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        runners.append(runner)
    servers = await start_outproxy(
        HOST, OUTPROXY_HTTP_LOCAL_PORT, OUTPROXY_SOCKS_LOCAL_PORT, CLEARNET_LOCAL_PORT, stats_file
    )
    log.info("services ready", www_dir=str(www_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the test network's services")
    parser.add_argument("--www-dir", type=Path, required=True)
    parser.add_argument("--eepsite-b32", required=True, help="linked from the second eepsite")
    parser.add_argument("--outproxy-stats", type=Path, help="the outproxy's counters (JSON)")
    args = parser.parse_args(argv)
    configure(json=True)
    asyncio.run(serve(args.www_dir, args.eepsite_b32, args.outproxy_stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
