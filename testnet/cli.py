"""``python -m testnet up | status | down | delay | stop-router | start-router | demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from i2proxy import log
from testnet import process
from testnet.netns import MissingPrerequisite
from testnet.network import Network, NetworkConfig, TestnetError
from testnet.status import TestnetStatus

DEFAULT_NAME = "default"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m testnet",
        description="Run a private, offline I2P network of real routers on this machine "
        "(tests, demo, benchmarks). Not part of the i2proxy product.",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    commands = parser.add_subparsers(dest="testnet_command", metavar="ACTION", required=True)

    def named(name: str, help: str, default: str = DEFAULT_NAME) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--name", default=default, help="network name (default: %(default)s)")
        return sub

    up = named("up", "start a network and wait until it is ready")
    up.add_argument("--routers", type=int, default=5, help="number of i2pd routers (default 5)")
    up.add_argument("--floodfills", type=int, default=2, help="how many are floodfills (default 2)")
    up.add_argument("--tunnel-length", type=int, default=1, help="hops per tunnel (default 1)")
    up.add_argument(
        "--link-delay", type=float, default=0.0, metavar="MS",
        help="one-way delay added to every router-to-router link, in ms (default 0)",
    )  # fmt: skip
    up.add_argument("--json", action="store_true", help="print the status as JSON when ready")
    up.set_defaults(handler=_up)

    status = named("status", "show a running network (ports, eepsite, router pids)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    named("down", "stop a network and remove everything it left").set_defaults(handler=_down)

    delay = named("delay", "change the link delay of a running network")
    delay.add_argument("ms", type=float, metavar="MS", help="one-way delay in milliseconds")
    delay.set_defaults(handler=_delay)

    stop = named("stop-router", "stop one router (to test a router crash)")
    stop.add_argument("index", type=int)
    stop.set_defaults(handler=_stop_router)

    start = named("start-router", "start a stopped router again and wait until it is usable")
    start.add_argument("index", type=int)
    start.set_defaults(handler=_start_router)

    demo = named(
        "demo",
        "offline demo: private I2P network + eepsite + proxy, until Ctrl-C (then clean up); "
        "./scripts/demo also installs what is missing",
        default="demo",
    )
    demo.add_argument("--link-delay", type=float, default=0.0, metavar="MS")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.configure(json=False, level=args.log_level)
    return int(args.handler(args) or 0)


def _fail(message: str) -> int:
    print(f"testnet: error: {message}", file=sys.stderr)
    return 1


def _run(coro) -> int:  # type: ignore[no-untyped-def]
    try:
        asyncio.run(coro)
    except (TestnetError, MissingPrerequisite, FileNotFoundError, TimeoutError) as exc:
        return _fail(str(exc))
    return 0


def _up(args: argparse.Namespace) -> int:
    try:
        network = Network(args.name)
        config = NetworkConfig(
            routers=args.routers,
            floodfills=args.floodfills,
            tunnel_length=args.tunnel_length,
            link_delay_ms=args.link_delay,
        )
        config.validate()
    except TestnetError as exc:
        return _fail(str(exc))
    rc = _run(network.up(config))
    if rc == 0:
        status = network.status()
        print(status.to_json() if args.json else describe(status))
    return rc


def _status(args: argparse.Namespace) -> int:
    try:
        status = TestnetStatus.load(Network(args.name).name)
    except (TestnetError, FileNotFoundError) as exc:
        return _fail(str(exc))
    print(status.to_json() if args.json else describe(status))
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        network = Network(args.name)
    except TestnetError as exc:
        return _fail(str(exc))
    if not network.exists():
        return _fail(f"no test network named {args.name!r}")
    rc = _run(network.down())
    if rc == 0:
        print(f"test network {args.name!r} is down")
    return rc


def _control(args: argparse.Namespace, action, done: str) -> int:  # type: ignore[no-untyped-def]
    """Run ``action(network)`` on an existing network; print ``done`` when it worked."""
    try:
        network = Network(args.name)
        if not network.state_dir.exists():
            raise TestnetError(f"no test network named {args.name!r}")
    except TestnetError as exc:
        return _fail(str(exc))
    rc = _run(action(network))
    if rc == 0:
        print(done)
    return rc


def _delay(args: argparse.Namespace) -> int:
    return _control(
        args,
        lambda network: network.set_link_delay(args.ms),
        f"link delay of {args.name!r} is now {args.ms:g} ms",
    )


def _stop_router(args: argparse.Namespace) -> int:
    return _control(
        args,
        lambda network: network.stop_router(args.index),
        f"router {args.index} of {args.name!r} stopped",
    )


def _start_router(args: argparse.Namespace) -> int:
    return _control(
        args,
        lambda network: network.start_router(args.index),
        f"router {args.index} of {args.name!r} is running again",
    )


def describe(status: TestnetStatus) -> str:
    """A human-readable summary of a network."""
    lines = [
        f"test network {status.name!r}: namespace {status.netns}, state in {status.state_dir}",
        f"  ready after {status.ready_seconds} s; tunnel length {status.tunnel_length}, "
        f"link delay {status.link_delay_ms:g} ms",
    ]
    for r in status.routers:
        state = "running" if r.pid and process.is_running(r.pid) else "STOPPED"
        role = "floodfill" if r.floodfill else "router"
        lines.append(f"  {r.name} ({role}, {state}, pid {r.pid}): I2CP {r.i2cp}  SAM {r.sam}")
    lines += [
        f"  i2pd HTTP proxy {status.http_proxy}, SOCKS proxy {status.socks_proxy} "
        f"(router {status.proxy_router})",
        f"  eepsite http://{status.eepsite.b32}/ (router {status.eepsite.router}, "
        f"files from {status.eepsite.www_dir})",
        f"  try: curl -x http://{status.http_proxy} http://{status.eepsite.b32}/",
    ]
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from testnet.demo import run_demo

    try:
        config = NetworkConfig(link_delay_ms=args.link_delay)
        config.validate()
    except TestnetError as exc:
        return _fail(str(exc))
    return _run(run_demo(config, name=args.name))
