"""The per-network helper process: host-namespace forwarders plus the link relay.

Run as ``python -m testnet.helper PLAN.json`` by ``network.up``. It binds its host
listeners first, enters the network namespace, starts relays and forwarders, and then writes
the chosen host ports to the plan's ``ports_file`` (that file appearing means "ready").
SIGHUP re-reads the link delay from ``delay_file`` and the impairment from ``impair_file``; the
relay's counters go to ``stats_file`` every second while they change; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from i2proxy.log import configure, get_logger
from testnet import netns
from testnet.forward import Forwarder, listen_on_free_port
from testnet.impair import Impairment, LinkSettings
from testnet.relay import Relay, RelayTarget

log = get_logger(__name__)


def read_delay(path: Path) -> float:
    try:
        return float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def read_settings(plan: dict) -> LinkSettings:  # type: ignore[type-arg]
    """The link delay and impairment the plan's files hold now."""
    impairment = Impairment()
    if plan.get("impair_file"):
        impairment = LinkSettings.load(Path(plan["impair_file"])).impairment
    return LinkSettings(read_delay(Path(plan["delay_file"])), impairment)


async def write_stats(relay: Relay, path: Path) -> None:
    written = None
    while True:
        await asyncio.sleep(1.0)
        stats = asdict(relay.counters)
        if stats != written:
            write_json_atomic(path, stats)
            written = stats


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


async def serve(plan: dict, listeners: dict) -> None:  # type: ignore[type-arg]
    relay = Relay([RelayTarget(**t) for t in plan["relays"]], read_settings(plan))
    await relay.start()
    forwarders = {key: Forwarder(sock, plan["forwards"][key]) for key, sock in listeners.items()}
    tasks = [asyncio.ensure_future(f.serve()) for f in forwarders.values()]
    if plan.get("stats_file"):
        tasks.append(asyncio.ensure_future(write_stats(relay, Path(plan["stats_file"]))))

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload_settings() -> None:
        relay.settings = read_settings(plan)
        log.info("link settings changed", **relay.settings.to_dict())

    loop.add_signal_handler(signal.SIGHUP, reload_settings)
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
