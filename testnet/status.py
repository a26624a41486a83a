"""The machine-readable description of a running test network (``status --json``).

Other packages' tests, scripts and benchmarks code against exactly these keys; add keys, never
rename them. :meth:`TestnetStatus.load` reads ``<state_dir>/status.json`` by network name.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Where every network keeps its state: ``<base>/<name>/``.
STATE_BASE_ENV = "I2PROXY_TESTNET_DIR"
DEFAULT_STATE_BASE = Path("/tmp/i2proxy-testnet")


def state_base() -> Path:
    return Path(os.environ.get(STATE_BASE_ENV) or DEFAULT_STATE_BASE)


def state_dir_for(name: str) -> Path:
    return state_base() / name


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@dataclass
class RouterStatus:
    index: int
    name: str
    floodfill: bool
    i2cp: str
    sam: str
    pid: int | None
    #: i2pd's web console of this router (http://…/?page=tunnels etc.), for debugging.
    webconsole: str | None = None

    @property
    def i2cp_host_port(self) -> tuple[str, int]:
        return split_host_port(self.i2cp)

    @property
    def sam_host_port(self) -> tuple[str, int]:
        return split_host_port(self.sam)


@dataclass
class EepsiteStatus:
    b32: str
    destination: str
    www_dir: str
    router: int
    port: int = 80


@dataclass
class UdpEchoStatus:
    """The UDP echo service: datagrams to ``b32`` on I2P ``port`` come back at once (i2pd
    answers raw); to ``repliable_b32`` on ``repliable_port`` after 150 ms (i2pd answers with
    repliable datagrams)."""

    b32: str
    destination: str
    router: int
    port: int
    repliable_b32: str = ""
    repliable_destination: str = ""
    repliable_port: int = 0


@dataclass
class TestnetStatus:
    name: str
    state_dir: str
    netns: str
    ready_seconds: float | None
    tunnel_length: int
    link_delay_ms: float
    routers: list[RouterStatus]
    http_proxy: str
    socks_proxy: str
    proxy_router: int
    eepsite: EepsiteStatus
    udp_echo: UdpEchoStatus | None = None
    #: Per-link impairment (``testnet.impair.Impairment.to_dict``: loss_pct, reorder_pct,
    #: duplicate_pct, jitter_ms, rate, rate_bytes_per_s); all zero/None when unimpaired.
    impairment: dict[str, Any] = field(default_factory=dict)
    #: The named profile last applied (``up --profile``/``impair --profile``), else None.
    profile: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest test class, despite the name

    @property
    def http_proxy_host_port(self) -> tuple[str, int]:
        return split_host_port(self.http_proxy)

    @property
    def socks_proxy_host_port(self) -> tuple[str, int]:
        return split_host_port(self.socks_proxy)

    @property
    def status_path(self) -> Path:
        return Path(self.state_dir) / "status.json"

    def router(self, index: int) -> RouterStatus:
        return self.routers[index]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data.update(extra)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestnetStatus:
        data = dict(data)
        known = set(cls.__dataclass_fields__) - {"extra"}
        extra = {k: data.pop(k) for k in list(data) if k not in known}
        routers = [RouterStatus(**r) for r in data.pop("routers")]
        eepsite = EepsiteStatus(**data.pop("eepsite"))
        udp_echo = data.pop("udp_echo", None)
        return cls(
            routers=routers,
            eepsite=eepsite,
            udp_echo=UdpEchoStatus(**udp_echo) if udp_echo else None,
            extra=extra,
            **data,
        )

    def save(self) -> None:
        path = self.status_path
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, name: str) -> TestnetStatus:
        """The status of the network ``name``; FileNotFoundError when it is not running."""
        path = state_dir_for(name) / "status.json"
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no test network named {name!r} (no {path}); start it with "
                f"`python -m testnet up --name {name}`"
            ) from None
        return cls.from_dict(json.loads(text))
