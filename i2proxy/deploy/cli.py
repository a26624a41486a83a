"""``i2proxy health``: exit 0 when the configured proxy answers its health page (HEALTHCHECK)."""

from __future__ import annotations

import argparse
import sys

from i2proxy.deploy.health import HEALTH_URL, HealthError, probe, probe_address


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "health",
        help="check that a running proxy answers (for container health checks)",
        description=(
            "Ask the running proxy for http://proxy.i2p/ through its own HTTP port, with the "
            "first configured user. Reads the same settings as `i2proxy run` (--config FILE < "
            "I2PROXY_* environment). Exit 0 when it answers 200, 1 otherwise."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file, as for `run`")
    parser.add_argument(
        "--proxy", metavar="HOST:PORT", help="probe this address instead of the configured one"
    )
    parser.add_argument("--url", default=HEALTH_URL, help=f"page to ask for (default {HEALTH_URL})")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    parser.set_defaults(handler=health_command)


def health_command(args: argparse.Namespace) -> int:
    from i2proxy.config import ConfigError, load_config

    try:
        config = load_config(config_file=args.config)
        listen = args.proxy or config.http_listen or config.mixed_listen
        if not listen:
            raise ConfigError("no HTTP listener (http_listen or mixed_listen) to probe")
        address = probe_address(listen)
    except ConfigError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    credentials = next(iter(config.users.items()), None)
    try:
        result = probe(address, credentials=credentials, url=args.url, timeout=args.timeout)
    except HealthError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    where = f"{address[0]}:{address[1]}"
    if not result.healthy:
        print(f"unhealthy: {where} answered {result.status} {result.reason}", file=sys.stderr)
        return 1
    print(f"healthy: {where} answered {result.status} {result.reason}")
    return 0
