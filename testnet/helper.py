"""The per-network helper process: host-namespace forwarders plus the link-delay relay.

Run as ``python -m testnet.helper PLAN.json`` by ``network.up``. It binds its host
listeners first, enters the network namespace, starts relays and forwarders, and then writes
the chosen host ports to the plan's ``ports_file`` (that file appearing means "ready").
SIGHUP re-reads the link delay from ``delay_file``; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from i2proxy.log import configure, get_logger
from testnet import netns
from testnet.forward import Forwarder, listen_on_free_port
from testnet.relay import Relay, RelayTarget

log = get_logger(__name__)


def read_delay(path: Path) -> float:
    try:
        return float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


async def serve(plan: dict, listeners: dict) -> None:  # type: ignore[type-arg]
    delay_file = Path(plan["delay_file"])
    relay = Relay([RelayTarget(**t) for t in plan["relays"]], read_delay(delay_file))
    await relay.start()
    forwarders = {key: Forwarder(sock, plan["forwards"][key]) for key, sock in listeners.items()}
    tasks = [asyncio.ensure_future(f.serve()) for f in forwarders.values()]

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload_delay() -> None:
        relay.delay_ms = read_delay(delay_file)
        log.info("link delay changed", delay_ms=relay.delay_ms)

    loop.add_signal_handler(signal.SIGHUP, reload_delay)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    write_json_atomic(Path(plan["ports_file"]), {k: f.port for k, f in forwarders.items()})
    log.info("helper ready", netns=plan["netns"], forwards=len(forwarders))
    await stop.wait()
    for task in tasks:
        task.cancel()
    for forwarder in forwarders.values():
        await forwarder.close()
    await relay.close()


def main(argv: list[str]) -> int:
    configure(json=True)
    plan = json.loads(Path(argv[0]).read_text())
    # Bind in the host namespace first: these sockets stay there after we enter the network's.
    listeners = {key: listen_on_free_port() for key in plan["forwards"]}
    netns.enter(plan["netns"])
    asyncio.run(serve(plan, listeners))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
