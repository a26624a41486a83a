"""``python -m testnet up | status | down | delay | impair | stop-router | start-router | demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from i2proxy import log
from testnet import process
from testnet.impair import PROFILES, Impairment, ImpairmentError, profile
from testnet.netns import MissingPrerequisite
from testnet.network import Network, NetworkConfig, TestnetError
from testnet.software import MIXES
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
    add_shape_options(up)
    up.add_argument(
        "--tunnel-length", type=int, default=None,
        help="hops per tunnel (default 1, or the profile's)",
    )  # fmt: skip
    up.add_argument(
        "--link-delay", type=float, default=None, metavar="MS",
        help="one-way delay added to every router-to-router link, in ms (default 0)",
    )  # fmt: skip
    add_impairment_options(up)
    up.add_argument("--json", action="store_true", help="print the status as JSON when ready")
    up.set_defaults(handler=_up)

    status = named("status", "show a running network (ports, eepsite, router pids)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    named("down", "stop a network and remove everything it left").set_defaults(handler=_down)

    delay = named("delay", "change the link delay of a running network")
    delay.add_argument("ms", type=float, metavar="MS", help="one-way delay in milliseconds")
    delay.set_defaults(handler=_delay)

    impair = named(
        "impair",
        "set every link's loss, reordering, duplication, jitter and rate cap (one way, per "
        "link) on a running network; with no option, clear them",
    )
    add_impairment_options(impair)
    impair.set_defaults(handler=_impair)

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
    add_shape_options(demo)
    demo.add_argument("--link-delay", type=float, default=0.0, metavar="MS")
    demo.set_defaults(handler=_demo)
    return parser


def add_shape_options(parser: argparse.ArgumentParser) -> None:
    """Which routers a network has (``up`` and ``demo``; the lifecycle tests run their second
    network as a demo of another shape)."""
    parser.add_argument("--routers", type=int, default=6, help="number of i2pd routers (default 6)")
    parser.add_argument(
        "--floodfills", type=int, default=2, help="how many are floodfills (default 2)"
    )
    parser.add_argument(
        "--mix", choices=MIXES, default="mixed",
        help="i2pd versions: mixed (default: floodfills and one client router on 2.58.0, the "
        "others on 2.45.1), all-2.45 or all-2.58",
    )  # fmt: skip
    parser.add_argument(
        "--java", type=int, default=1, metavar="N",
        help="Java I2P 2.7.0 routers on top of the i2pd routers (default 1)",
    )  # fmt: skip


def add_impairment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "link impairment (per link, one way; see docs/TESTNET.md for what each means on TCP)"
    )
    group.add_argument(
        "--profile", choices=sorted(PROFILES),
        help="a named condition: "
        + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()).replace("%", "%%")
        + ". Options given as well override its values",
    )  # fmt: skip
    group.add_argument("--loss", type=float, metavar="PCT", help="segments lost, in %%")
    group.add_argument("--reorder", type=float, metavar="PCT", help="segments arriving late, %%")
    group.add_argument("--duplicate", type=float, metavar="PCT", help="segments sent twice, %%")
    group.add_argument("--jitter", type=float, metavar="MS", help="delay varies by ± MS")
    group.add_argument("--rate", metavar="RATE", help="rate cap, e.g. 4mbit, 500KB (bytes/s)")


def impairment_from_args(args: argparse.Namespace) -> tuple[Impairment, float | None, int | None]:
    """The impairment, link delay and tunnel length the options ask for (profile first, then
    the explicit options); None where neither says anything."""
    chosen = profile(args.profile) if args.profile else None
    base = chosen.impairment if chosen else Impairment()
    impairment = Impairment(
        loss_pct=base.loss_pct if args.loss is None else args.loss,
        reorder_pct=base.reorder_pct if args.reorder is None else args.reorder,
        duplicate_pct=base.duplicate_pct if args.duplicate is None else args.duplicate,
        jitter_ms=base.jitter_ms if args.jitter is None else args.jitter,
        rate=base.rate if args.rate is None else args.rate,
    )
    impairment.validate()
    delay = getattr(args, "link_delay", None)
    if delay is None and chosen:
        delay = chosen.link_delay_ms
    length = getattr(args, "tunnel_length", None)
    if length is None and chosen:
        length = chosen.tunnel_length
    return impairment, delay, length


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
        impairment, delay, length = impairment_from_args(args)
        config = NetworkConfig(
            routers=args.routers,
            floodfills=args.floodfills,
            tunnel_length=1 if length is None else length,
            link_delay_ms=delay or 0.0,
            impairment=impairment,
            profile=args.profile,
            mix=args.mix,
            java=args.java,
        )
        config.validate()
    except (TestnetError, ImpairmentError) as exc:
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


def _impair(args: argparse.Namespace) -> int:
    try:
        impairment, delay, _ = impairment_from_args(args)
    except ImpairmentError as exc:
        return _fail(str(exc))
    what = describe_impairment(impairment.to_dict())
    return _control(
        args,
        lambda network: network.set_impairment(
            impairment, link_delay_ms=delay, profile=args.profile
        ),
        f"links of {args.name!r}: {what}" + (f", delay {delay:g} ms" if delay is not None else ""),
    )


def describe_impairment(impairment: dict) -> str:  # type: ignore[type-arg]
    """``loss 1 %, reorder 2 %, jitter ± 30 ms, rate 4mbit`` or ``unimpaired``."""
    parts = [
        f"{label} {impairment.get(key) or 0:g} %"
        for label, key in (
            ("loss", "loss_pct"), ("reorder", "reorder_pct"), ("duplicate", "duplicate_pct")
        )
        if impairment.get(key)
    ]  # fmt: skip
    if impairment.get("jitter_ms"):
        parts.append(f"jitter ± {impairment['jitter_ms']:g} ms")
    if impairment.get("rate"):
        parts.append(f"rate {impairment['rate']}")
    return ", ".join(parts) or "unimpaired"


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
        f"link delay {status.link_delay_ms:g} ms, mix {status.mix}",
        f"  links: {describe_impairment(status.impairment)}"
        + (f" (profile {status.profile})" if status.profile else ""),
    ]
    for r in status.routers:
        state = "running" if r.pid and process.is_running(r.pid) else "STOPPED"
        role = "floodfill" if r.floodfill else "router"
        extra = f"  HTTP proxy {r.http_proxy}" if r.is_java else ""
        lines.append(
            f"  {r.index} {r.name} {r.kind} {r.version} ({role}, {state}, pid {r.pid}): "
            f"I2CP {r.i2cp}  SAM {r.sam}{extra}"
        )
    lines += [
        f"  i2pd HTTP proxy {status.http_proxy}, SOCKS proxy {status.socks_proxy} "
        f"(router {status.proxy_router})",
        f"  eepsite http://{status.eepsite.b32}/ (router {status.eepsite.router}, "
        f"files from {status.eepsite.www_dir})",
        f"  try: curl -x http://{status.http_proxy} http://{status.eepsite.b32}/",
        f"  whoami: {status.eepsite.whoami}",
    ]
    if status.eepsite2 is not None:
        lines.append(f"  eepsite2 http://{status.eepsite2.b32}/ (whoami {status.eepsite2.whoami})")
    if status.outproxy is not None:
        lines.append(
            f"  outproxy {status.outproxy.http} and {status.outproxy.socks5} "
            f"(serves {status.outproxy.url})"
        )
    if status.java_eepsite is not None:
        lines += [
            f"  Java eepsite http://{status.java_eepsite.b32}/ (router "
            f"{status.java_eepsite.router}, I2PTunnel HTTP server, same files)",
            f"  Java HTTP proxy {status.java_http_proxy}: "
            f"curl -x http://{status.java_http_proxy} http://{status.eepsite.b32}/",
        ]
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from testnet.demo import run_demo

    try:
        config = NetworkConfig(
            routers=args.routers,
            floodfills=args.floodfills,
            mix=args.mix,
            java=args.java,
            link_delay_ms=args.link_delay,
        )
        config.validate()
    except TestnetError as exc:
        return _fail(str(exc))
    return _run(run_demo(config, name=args.name))
