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
    #: "i2pd" or "java"
    kind: str = "i2pd"
    #: "2.45.1" or "2.58.0" (i2pd), "2.7.0" (Java I2P)
    version: str = "2.45.1"
    #: The router's own HTTP proxy, if it runs one (i2pd's on the proxy router, Java's I2PTunnel
    #: HTTP client proxy on every Java router).
    http_proxy: str | None = None
    #: b32 name of the eepsite this router publishes, if any.
    eepsite: str | None = None

    @property
    def is_java(self) -> bool:
        return self.kind == "java"

    def is_version(self, version: str) -> bool:
        """``"2.58"`` matches ``"2.58.0"``; a full version matches only itself."""
        return self.version == version or self.version.startswith(version + ".")

    @property
    def http_proxy_host_port(self) -> tuple[str, int] | None:
        return split_host_port(self.http_proxy) if self.http_proxy else None

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
    #: Where ``/whoami`` answers the client's b32 (an i2pd ``type = http`` tunnel's port).
    whoami: str = ""


@dataclass
class OutproxyStatus:
    """The test outproxy: an I2P destination that is an HTTP proxy (``http``, I2P port 80) and
    a SOCKS5 server (``socks5``, I2P port ``socks5_port``) to ``url``, a name only it resolves."""

    b32: str
    destination: str
    router: int
    #: ``http://<b32>`` — the form ``i2proxy run --outproxy`` takes
    http: str
    #: ``socks5://<b32>:<socks5_port>``
    socks5: str
    http_port: int = 80
    socks5_port: int = 1080
    #: A page only reachable through the outproxy, and a line its body contains.
    url: str = "http://www.example.test/"
    marker: str = ""
    #: The outproxy's counters (http_requests, http_connects, socks5_connects, refused), JSON.
    stats_file: str = ""


@dataclass
class JavaEepsiteStatus:
    """The demo site published by a Java router's I2PTunnel HTTP server (same www content)."""

    b32: str
    destination: str
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
    #: The router tests may stop and restart: it carries no transit tunnels, so stopping it
    #: breaks no other destination's tunnels (None on networks without one, or older ones).
    restartable_router: int | None = None
    udp_echo: UdpEchoStatus | None = None
    #: Per-link impairment (``testnet.impair.Impairment.to_dict``: loss_pct, reorder_pct,
    #: duplicate_pct, jitter_ms, rate, rate_bytes_per_s); all zero/None when unimpaired.
    impairment: dict[str, Any] = field(default_factory=dict)
    #: The named profile last applied (``up --profile``/``impair --profile``), else None.
    profile: str | None = None
    #: "mixed", "all-2.45" or "all-2.58" (see testnet.software.MIXES)
    mix: str = "all-2.45"
    #: The first Java router's I2PTunnel HTTP client proxy (host:port), None without Java.
    java_http_proxy: str | None = None
    #: The first Java router's eepsite, None without Java (or before it is known).
    java_eepsite: JavaEepsiteStatus | None = None
    #: A second eepsite on its own destination (same router as ``eepsite``), for per-site tests.
    eepsite2: EepsiteStatus | None = None
    #: The test outproxy (None on a network started before it existed).
    outproxy: OutproxyStatus | None = None
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

    @property
    def java_http_proxy_host_port(self) -> tuple[str, int] | None:
        return split_host_port(self.java_http_proxy) if self.java_http_proxy else None

    def routers_of_kind(
        self, kind: str, version: str | None = None, *, floodfill: bool | None = None
    ) -> list[RouterStatus]:
        """Routers of ``kind`` ("i2pd" or "java"), optionally of ``version`` ("2.58" matches
        "2.58.0") and floodfill or not, in index order."""
        return [
            r
            for r in self.routers
            if r.kind == kind
            and (version is None or r.is_version(version))
            and (floodfill is None or r.floodfill == floodfill)
        ]

    def client_router(self, kind: str, version: str | None = None) -> RouterStatus:
        """A non-floodfill router of ``kind``/``version`` to run a client on.

        Never a floodfill (i2pd 2.45.1 floodfills answer lookups of LeaseSets they store
        wrongly); prefers a router without the network's own services (i2pd's proxies, the
        eepsite). Raises LookupError naming what the network has instead.
        """
        candidates = self.routers_of_kind(kind, version, floodfill=False)
        if not candidates:
            have = ", ".join(f"{r.name}={r.kind} {r.version}" for r in self.routers)
            raise LookupError(
                f"no non-floodfill {kind} {version or ''} router in {self.name!r} ({have})"
            )
        busy = {self.proxy_router, self.eepsite.router}
        return next((r for r in candidates if r.index not in busy), candidates[0])

    @property
    def java_routers(self) -> list[RouterStatus]:
        return self.routers_of_kind("java")

    @property
    def i2pd_routers(self) -> list[RouterStatus]:
        return self.routers_of_kind("i2pd")

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
        java_eepsite = data.pop("java_eepsite", None)
        eepsite2 = data.pop("eepsite2", None)
        outproxy = data.pop("outproxy", None)
        return cls(
            routers=routers,
            eepsite=eepsite,
            udp_echo=UdpEchoStatus(**udp_echo) if udp_echo else None,
            java_eepsite=JavaEepsiteStatus(**java_eepsite) if java_eepsite else None,
            eepsite2=EepsiteStatus(**eepsite2) if eepsite2 else None,
            outproxy=OutproxyStatus(**outproxy) if outproxy else None,
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
