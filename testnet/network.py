"""Bring a private network of real routers up and down; stop and restart single routers.

Three kinds of router (see ``testnet.software``): i2pd 2.45.1, i2pd 2.58.0 and Java I2P 2.7.0.
``up`` in order: namespace with one Yggdrasil-range address per router → nftables redirects of
router-to-router connections to the link-delay relay → helper process (relay + host-namespace
forwarders) → i2pd routers' first run (each writes its router.info, the eepsite router its
eepsite keys) → every router.info copied into every other router's netDb (and the Java
routers') → eepsite server and i2pd routers started for good → once they answer, the Java
routers start → readiness: the eepsite's LeaseSet resolves on every router (floodfills known,
client tunnels built) and i2pd's HTTP proxy fetches its page; every Java router met the network,
resolves the eepsite and fetches it through its own HTTP proxy, and its eepsite resolves on
i2pd. All async; the CLI wraps it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from i2proxy.log import get_logger
from testnet import javarouter, netns, process, software
from testnet.clearnet import MARKER
from testnet.eepsite import INDEX_HTML
from testnet.impair import Impairment, ImpairmentError, LinkSettings
from testnet.router import (
    FORWARDED,
    OUTPROXY_HTTP_PORT,
    OUTPROXY_SOCKS_PORT,
    UDP_ECHO_LOCAL_PORT,
    WHOAMI_PORT,
    RouterSpec,
    destination_from_keys_file,
    netdb_relative_path,
    render_i2pd_conf,
    render_service_tunnels,
    render_udp_echo_tunnel,
    router_info_caps,
)
from testnet.samprobe import naming_lookup, sam_alive, wait_resolvable
from testnet.status import (
    EepsiteStatus,
    JavaEepsiteStatus,
    OutproxyStatus,
    RouterStatus,
    TestnetStatus,
    UdpEchoStatus,
    state_dir_for,
)

log = get_logger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")
EEPSITE_KEYS = "eepsite.dat"
EEPSITE2_KEYS = "eepsite2.dat"
OUTPROXY_KEYS = "outproxy.dat"
#: Every keys file of the services router's tunnels (render_service_tunnels), in that order.
SERVICE_KEYS = (EEPSITE_KEYS, EEPSITE2_KEYS, OUTPROXY_KEYS)
UDP_ECHO_KEYS = "udpecho.dat"
UDP_ECHO_REPLIABLE_KEYS = "udpecho-repliable.dat"
READY_TIMEOUT = 240.0
#: How long the eepsite may take to become resolvable before its router is restarted.
EEPSITE_PUBLISH_TIMEOUT = 40.0
#: A Java router that met no peer in this time lost its start-up race: restart it once.
JAVA_CONNECT_TIMEOUT = 20.0
JAVA_STOP_TIMEOUT = 20.0
#: i2pd 2.45.1 with SAM sessions open logs "Stopping SAM bridge" at SIGTERM and hangs there
#: until SIGKILL (measured: the whole 20 s, at every router stop and at every ``down`` of a
#: network that served SAM clients); otherwise i2pd exits within a second or two.
I2PD_STOP_TIMEOUT = 5.0
#: ``down`` deletes the network: its processes get this long after SIGTERM, then SIGKILL.
DOWN_GRACE = 2.0
MAX_JAVA_ROUTERS = 4
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # the repository root


class TestnetError(RuntimeError):
    """A test network operation failed; the message says why."""

    __test__ = False


@dataclass(frozen=True)
class NetworkConfig:
    #: i2pd routers (the Java routers come on top, with the next indexes)
    routers: int = 6
    floodfills: int = 2
    tunnel_length: int = 1
    link_delay_ms: float = 0.0
    #: which i2pd version runs where (testnet.software.MIXES)
    mix: str = "mixed"
    #: Java I2P routers
    java: int = 1
    #: Per-link loss, reordering, duplication, jitter and rate cap (``testnet.impair``).
    impairment: Impairment = field(default_factory=Impairment)
    #: The named profile this configuration came from, if any (reported by ``status``).
    profile: str | None = None

    def to_dict(self) -> dict:  # type: ignore[type-arg]
        data = dict(self.__dict__)
        data["impairment"] = self.impairment.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:  # type: ignore[type-arg]
        data = dict(data)
        data["impairment"] = Impairment.from_dict(data.get("impairment") or {})
        return cls(**data)

    def validate(self) -> None:
        if not 2 <= self.routers <= 16:
            raise TestnetError("--routers must be between 2 and 16")
        if self.mix not in software.MIXES:
            raise TestnetError(f"--mix must be one of {', '.join(software.MIXES)}")
        if not 0 <= self.java <= MAX_JAVA_ROUTERS:
            raise TestnetError(f"--java must be between 0 and {MAX_JAVA_ROUTERS}")
        if not 1 <= self.floodfills < self.routers:
            raise TestnetError("--floodfills must be at least 1 and less than --routers")
        if not 0 <= self.tunnel_length <= 3:
            raise TestnetError("--tunnel-length must be between 0 and 3")
        if not 0 <= self.link_delay_ms <= 10_000:
            raise TestnetError("--link-delay must be between 0 and 10000 ms")
        try:
            self.impairment.validate()
        except ImpairmentError as exc:
            raise TestnetError(str(exc)) from None

    @property
    def proxy_router(self) -> int:
        """The first non-floodfill (a floodfill's own netDb confuses its client lookups)."""
        return self.floodfills

    @property
    def eepsite_router(self) -> int:
        """Two after the proxy router, or the last i2pd router if there are fewer."""
        index = min(self.routers - 1, self.floodfills + 2)
        return index if index != self.proxy_router else 0

    @property
    def restartable_router(self) -> int | None:
        """The router tests stop and restart: the one after the proxy router, unless it is the
        eepsite's. It carries no transit tunnels (``notransit``), so stopping it breaks no other
        destination's tunnels (docs/TESTNET.md, *Only the restartable router is stopped*)."""
        index = self.proxy_router + 1
        if index >= self.routers or index == self.eepsite_router:
            return None
        return index

    def i2pd_versions(self) -> list[str]:
        return software.i2pd_versions(
            self.mix,
            routers=self.routers,
            floodfills=self.floodfills,
            proxy_router=self.proxy_router,
            eepsite_router=self.eepsite_router,
        )

    def prerequisites(self) -> dict[str, bool]:
        """Which router software this network needs (for ``netns.check_prerequisites``)."""
        versions = set(self.i2pd_versions())
        return {
            "i2pd_old": software.I2PD_OLD in versions,
            "i2pd_new": software.I2PD_NEW in versions,
            "java": self.java > 0,
        }

    @property
    def udp_echo_router(self) -> int:
        """Never reloaded (see ``render_udp_echo_tunnel``), and not the tests' client router."""
        return self.proxy_router


def netns_name(name: str) -> str:
    return f"i2pt-{name}"


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise TestnetError(
            f"invalid network name {name!r}: use 1-24 lowercase letters, digits or '-'"
        )


class Network:
    """One named test network. Its state lives in ``state_dir_for(name)``."""

    def __init__(self, name: str) -> None:
        validate_name(name)
        self.name = name
        self.state_dir = state_dir_for(name)
        self.netns = netns_name(name)

    # --- files --------------------------------------------------------------------------------

    @property
    def _pids_path(self) -> Path:
        return self.state_dir / "pids.json"

    @property
    def _delay_path(self) -> Path:
        return self.state_dir / "link_delay_ms"

    @property
    def _impair_path(self) -> Path:
        return self.state_dir / "impairment.json"

    @property
    def relay_stats_path(self) -> Path:
        """The relay's counters (``testnet.impair.LinkCounters``), rewritten as they change."""
        return self.state_dir / "relay-stats.json"

    def _load_pids(self) -> dict:  # type: ignore[type-arg]
        try:
            return json.loads(self._pids_path.read_text())
        except (OSError, ValueError):
            return {"helper": None, "eepsite": None, "routers": {}}

    def _save_pids(self, pids: dict) -> None:  # type: ignore[type-arg]
        tmp = self._pids_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids))
        tmp.replace(self._pids_path)

    def _specs(self, config: NetworkConfig) -> list[RouterSpec]:
        """The i2pd routers (0 … routers-1), then the Java routers."""
        specs = [
            RouterSpec(i, i < config.floodfills, self.state_dir / f"r{i}", "i2pd", version)
            for i, version in enumerate(config.i2pd_versions())
        ]
        if config.java:
            dist = software.find_java_dist()
            version = (software.java_i2p_version(dist) if dist else None) or "unknown"
            specs += [
                RouterSpec(i, False, self.state_dir / f"j{i}", "java", version)
                for i in range(config.routers, config.routers + config.java)
            ]
        return specs

    def _config(self) -> NetworkConfig:
        data = json.loads((self.state_dir / "config.json").read_text())
        data.setdefault("mix", "all-2.45")  # a network started before there were mixes
        data.setdefault("java", 0)
        return NetworkConfig.from_dict(data)

    def status(self) -> TestnetStatus:
        return TestnetStatus.load(self.name)

    # --- up -----------------------------------------------------------------------------------

    async def up(self, config: NetworkConfig | None = None) -> TestnetStatus:
        """Start the network and return once it is ready. Cleans up after itself on failure."""
        config = config or NetworkConfig()
        config.validate()
        netns.check_prerequisites(**config.prerequisites())
        if self.state_dir.exists() or netns.exists(self.netns):
            raise TestnetError(
                f"a test network named {self.name!r} already exists ({self.state_dir}); "
                f"take it down first: python -m testnet down --name {self.name}"
            )
        started = time.monotonic()
        self.state_dir.mkdir(parents=True)
        try:
            status = await self._up(config, started)
        except BaseException:
            log.error("testnet up failed; cleaning up", name=self.name)
            await self.down()
            raise
        log.info("testnet ready", name=self.name, ready_seconds=status.ready_seconds)
        return status

    async def _up(self, config: NetworkConfig, started: float) -> TestnetStatus:
        (self.state_dir / "config.json").write_text(json.dumps(config.to_dict()))
        self._save_pids({"helper": None, "eepsite": None, "routers": {}})
        all_specs = self._specs(config)
        specs = [s for s in all_specs if s.kind == "i2pd"]
        java_specs = [s for s in all_specs if s.kind == "java"]

        netns.create(
            self.netns,
            [s.ygg_address for s in all_specs],
            extra_ipv4=[javarouter.CONNECTED_ADDRESS] if java_specs else [],
        )
        netns.install_redirects(
            self.netns,
            [netns.Redirect(s.ygg_address, s.port("ntcp2"), s.port("relay")) for s in all_specs],
        )
        ports = await self._start_helper(config, all_specs)

        www_dir = self.state_dir / "www"
        www_dir.mkdir()
        (www_dir / "index.html").write_text(INDEX_HTML)
        (www_dir / "hello.txt").write_text("Hello from the i2proxy demo eepsite.\n")
        for spec in specs:
            spec.data_dir.mkdir()
            spec.conf_path.write_text(
                render_i2pd_conf(
                    spec,
                    tunnel_length=config.tunnel_length,
                    proxies=spec.index == config.proxy_router,
                    transit=spec.index != config.restartable_router,
                )
            )
            tunnels = ""
            if spec.index == config.eepsite_router:
                tunnels = self._service_tunnels(config.tunnel_length)
            elif spec.index == config.udp_echo_router:
                tunnels = render_udp_echo_tunnel(
                    keys_file=UDP_ECHO_KEYS, repliable_keys_file=UDP_ECHO_REPLIABLE_KEYS
                )
            spec.tunnels_conf_path.write_text(tunnels)
            (spec.data_dir / "tunnels.d").mkdir()
        for spec in java_specs:
            javarouter.write_config(spec, tunnel_length=config.tunnel_length)

        await self._first_run(config, specs)
        self._seed_netdbs(specs, java_specs)
        eepsite_spec = specs[config.eepsite_router]
        (destination, b32), (destination2, b32_2), (outproxy_destination, outproxy_b32) = (
            destination_from_keys_file((eepsite_spec.data_dir / keys).read_bytes())
            for keys in SERVICE_KEYS
        )
        echo_destination, echo_b32 = destination_from_keys_file(
            (specs[config.udp_echo_router].data_dir / UDP_ECHO_KEYS).read_bytes()
        )
        repliable_destination, repliable_b32 = destination_from_keys_file(
            (specs[config.udp_echo_router].data_dir / UDP_ECHO_REPLIABLE_KEYS).read_bytes()
        )
        await self._start_eepsite(www_dir, b32)
        # The eepsite's server tunnel is added only once its router has exploratory tunnels
        # (see _publish_eepsite), so that its zero-hop outbound tunnel exists before the first
        # inbound one: then its first LeaseSet is always published.
        eepsite_spec.tunnels_conf_path.write_text("")
        for spec in specs:
            self._start_router(spec)

        status = TestnetStatus(
            name=self.name,
            state_dir=str(self.state_dir),
            netns=self.netns,
            ready_seconds=None,
            tunnel_length=config.tunnel_length,
            link_delay_ms=config.link_delay_ms,
            impairment=config.impairment.to_dict(),
            profile=config.profile,
            routers=[self._router_status(config, s, ports) for s in all_specs],
            http_proxy=f"127.0.0.1:{ports['http_proxy']}",
            socks_proxy=f"127.0.0.1:{ports['socks_proxy']}",
            proxy_router=config.proxy_router,
            restartable_router=config.restartable_router,
            eepsite=EepsiteStatus(
                b32=b32,
                destination=destination,
                www_dir=str(www_dir),
                router=config.eepsite_router,
                port=80,
                whoami=f"http://{b32}:{WHOAMI_PORT}/whoami",
            ),
            eepsite2=EepsiteStatus(
                b32=b32_2,
                destination=destination2,
                www_dir=str(www_dir),
                router=config.eepsite_router,
                port=80,
                whoami=f"http://{b32_2}/whoami",
            ),
            outproxy=OutproxyStatus(
                b32=outproxy_b32,
                destination=outproxy_destination,
                router=config.eepsite_router,
                http=f"http://{outproxy_b32}",
                socks5=f"socks5://{outproxy_b32}:{OUTPROXY_SOCKS_PORT}",
                http_port=OUTPROXY_HTTP_PORT,
                socks5_port=OUTPROXY_SOCKS_PORT,
                marker=MARKER,
                stats_file=str(self.state_dir / "outproxy-stats.json"),
            ),
            udp_echo=UdpEchoStatus(
                b32=echo_b32,
                destination=echo_destination,
                router=config.udp_echo_router,
                port=UDP_ECHO_LOCAL_PORT,
                repliable_b32=repliable_b32,
                repliable_destination=repliable_destination,
                repliable_port=UDP_ECHO_LOCAL_PORT + 1,
            ),
            mix=config.mix,
            java_http_proxy=(
                f"127.0.0.1:{ports[f'{java_specs[0].name}.http_proxy']}" if java_specs else None
            ),
        )
        status.routers[config.eepsite_router].eepsite = b32
        status.save()  # early, so a half-ready network can be inspected and taken down
        await self._wait_ready(status, deadline=started + READY_TIMEOUT)
        status.ready_seconds = round(time.monotonic() - started, 1)
        status.save()
        return status

    async def _start_helper(self, config: NetworkConfig, specs: list[RouterSpec]) -> dict:  # type: ignore[type-arg]
        self._delay_path.write_text(f"{config.link_delay_ms}\n")
        LinkSettings(config.link_delay_ms, config.impairment).save(self._impair_path)
        forwards: dict[str, int] = {}
        for s in specs:
            services = FORWARDED if s.kind == "i2pd" else javarouter.JAVA_FORWARDED
            for service in services:
                forwards[f"{s.name}.{service}"] = s.port(service)
        proxy = specs[config.proxy_router]
        forwards["http_proxy"] = proxy.port("http_proxy")
        forwards["socks_proxy"] = proxy.port("socks_proxy")
        ports_file = self.state_dir / "ports.json"
        plan = {
            "netns": self.netns,
            "forwards": forwards,
            "relays": [
                {"listen_port": s.port("relay"), "address": s.ygg_address, "port": s.port("ntcp2")}
                for s in specs
            ],
            "delay_file": str(self._delay_path),
            "impair_file": str(self._impair_path),
            "stats_file": str(self.relay_stats_path),
            "ports_file": str(ports_file),
        }
        plan_path = self.state_dir / "helper-plan.json"
        plan_path.write_text(json.dumps(plan, indent=2))
        pid = process.spawn(
            [sys.executable, "-m", "testnet.helper", str(plan_path)],
            self.state_dir / "helper.log",
            env=self._python_env(),
        )
        pids = self._load_pids()
        pids["helper"] = pid
        self._save_pids(pids)
        deadline = time.monotonic() + 15
        while not ports_file.exists():
            if not process.is_running(pid) or time.monotonic() > deadline:
                raise TestnetError(
                    f"the helper process did not start; see {self.state_dir / 'helper.log'}"
                )
            await asyncio.sleep(0.05)
        return json.loads(ports_file.read_text())

    def _python_env(self) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_ROOT + (
            ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        return env

    @staticmethod
    def _service_tunnels(tunnel_length: int) -> str:
        return render_service_tunnels(
            tunnel_length=tunnel_length,
            eepsite_keys=EEPSITE_KEYS,
            eepsite2_keys=EEPSITE2_KEYS,
            outproxy_keys=OUTPROXY_KEYS,
        )

    async def _start_eepsite(self, www_dir: Path, eepsite_b32: str) -> None:
        """The services process (testnet.services): eepsites, UDP echo, outproxy, clearnet."""
        pid = process.spawn(
            [
                "ip", "netns", "exec", self.netns,
                sys.executable, "-m", "testnet.services",
                "--www-dir", str(www_dir),
                "--eepsite-b32", eepsite_b32,
                "--outproxy-stats", str(self.state_dir / "outproxy-stats.json"),
            ],
            self.state_dir / "eepsite.log",
            env=self._python_env(),
        )  # fmt: skip
        pids = self._load_pids()
        pids["eepsite"] = pid
        self._save_pids(pids)

    def _router_status(
        self, config: NetworkConfig, spec: RouterSpec, ports: dict[str, int]
    ) -> RouterStatus:
        def forwarded(service: str) -> str:
            return f"127.0.0.1:{ports[f'{spec.name}.{service}']}"

        is_i2pd = spec.kind == "i2pd"
        version = spec.version
        if is_i2pd:  # what the binary says it is, should Debian's i2pd be another release
            binary = software.i2pd_binary(spec.version)
            version = (software.i2pd_version(binary) if binary else None) or spec.version
        http_proxy = None
        if not is_i2pd:
            http_proxy = forwarded("http_proxy")
        elif spec.index == config.proxy_router:
            http_proxy = f"127.0.0.1:{ports['http_proxy']}"
        return RouterStatus(
            index=spec.index,
            name=spec.name,
            floodfill=spec.floodfill,
            i2cp=forwarded("i2cp"),
            sam=forwarded("sam"),
            webconsole=forwarded("webconsole") if is_i2pd else None,
            pid=self._load_pids()["routers"].get(str(spec.index)),
            kind=spec.kind,
            version=version,
            http_proxy=http_proxy,
        )

    def _router_argv(self, spec: RouterSpec) -> list[str]:
        if spec.kind == "java":
            java, dist = software.find_java(), software.find_java_dist()
            assert java is not None and dist is not None
            return ["ip", "netns", "exec", self.netns, *javarouter.java_argv(java, dist, spec)]
        i2pd = software.i2pd_binary(spec.version)
        assert i2pd is not None
        return [
            "ip", "netns", "exec", self.netns, i2pd,
            f"--conf={spec.conf_path}",
            f"--tunconf={spec.tunnels_conf_path}",
            f"--tunnelsdir={spec.data_dir / 'tunnels.d'}",
            f"--datadir={spec.data_dir}",
            f"--pidfile={spec.data_dir / 'i2pd.pid'}",
        ]  # fmt: skip

    def _start_router(self, spec: RouterSpec) -> int:
        log_name = "stdout.log" if spec.kind == "i2pd" else "console.log"
        pid = process.spawn(
            self._router_argv(spec),
            spec.data_dir / log_name,
            cwd=spec.data_dir if spec.kind == "java" else None,
        )
        pids = self._load_pids()
        pids["routers"][str(spec.index)] = pid
        self._save_pids(pids)
        return pid

    async def _first_run(self, config: NetworkConfig, specs: list[RouterSpec]) -> None:
        """Run every router once until it has written its RouterInfo (and eepsite keys)."""
        pids = {spec.index: self._start_router(spec) for spec in specs}
        deadline = time.monotonic() + 30
        pending = set(pids)
        while pending:
            for spec in specs:
                if spec.index in pending and self._first_run_done(config, spec):
                    pending.discard(spec.index)
            if time.monotonic() > deadline:
                raise TestnetError(
                    f"routers {sorted(pending)} wrote no router.info within 30 s; "
                    f"see {self.state_dir}/r*/i2pd.log"
                )
            for index in pending:
                if not process.is_running(pids[index]):
                    raise TestnetError(
                        f"i2pd r{index} exited on first start; see {specs[index].log_path}"
                    )
            await asyncio.sleep(0.05)
        marker = str(self.state_dir)
        await asyncio.gather(*(process.terminate(pid, marker) for pid in pids.values()))

    @staticmethod
    def _first_run_done(config: NetworkConfig, spec: RouterSpec) -> bool:
        try:
            caps = router_info_caps(spec.router_info_path.read_bytes())
        except (OSError, IndexError):
            return False
        if caps is None or (spec.floodfill and "f" not in caps):
            return False  # i2pd rewrites router.info once it has applied its caps
        if spec.index == config.eepsite_router:
            return all((spec.data_dir / keys).exists() for keys in SERVICE_KEYS)
        if spec.index == config.udp_echo_router:
            keys = (UDP_ECHO_KEYS, UDP_ECHO_REPLIABLE_KEYS)
            return all((spec.data_dir / name).exists() for name in keys)
        return True

    @staticmethod
    def _seed_netdbs(specs: list[RouterSpec], java_specs: list[RouterSpec]) -> None:
        """Every i2pd RouterInfo into every other router's netDb (Java: same layout).

        The Java routers are not seeded into i2pd's: they publish their RouterInfo to the
        floodfills when they start.
        """
        infos = [spec.router_info_path.read_bytes() for spec in specs]
        for spec in specs + java_specs:
            for other, info in zip(specs, infos, strict=True):
                if other.index == spec.index:
                    continue
                path = spec.data_dir / "netDb" / netdb_relative_path(info)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(info)

    # --- readiness ----------------------------------------------------------------------------

    async def _wait_ready(self, status: TestnetStatus, deadline: float) -> None:
        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestnetError(
                    f"test network {self.name!r} not ready in {READY_TIMEOUT:.0f} s; "
                    f"logs: {self.state_dir}/r*/i2pd.log, {self.state_dir}/j*/logs/"
                )
            return left

        def step(done: str) -> None:
            log.info(
                "testnet readiness",
                name=self.name,
                done=done,
                at=round(READY_TIMEOUT - (deadline - time.monotonic()), 1),
            )

        i2pd = status.i2pd_routers
        # 1. Every i2pd SAM bridge answers: the i2pd routers run (and accept NTCP2).
        for router in i2pd:
            while not await sam_alive(*router.sam_host_port, timeout=2):
                self._check_alive(router.index)
                remaining()
                await asyncio.sleep(0.1)
        step("i2pd routers up")
        # 1a. The Java routers start now, so that their first RouterInfo publish meets
        #     listening floodfills.
        specs = {s.index: s for s in self._specs(self._config())}
        for router in status.java_routers:
            router.pid = self._start_router(specs[router.index])
        status.save()

        async def i2pd_ready() -> None:
            # 1b. Every i2pd router knows every floodfill (the seeded netDb was loaded).
            for router in i2pd:
                needed = sum(r.floodfill for r in i2pd) - int(router.floodfill)
                assert router.webconsole is not None
                while await known_floodfills(router.webconsole) < needed:
                    self._check_alive(router.index)
                    remaining()
                    await asyncio.sleep(0.2)
            step("floodfills known")
            # 2. The eepsite's router has an inbound tunnel: add the eepsite's server tunnel.
            await self._add_eepsite_tunnel(status, deadline)
            step("eepsite tunnel added")
            # 3. The eepsite resolves on every other non-floodfill i2pd router: floodfills
            #    known, client tunnels built, eepsite LeaseSet published.
            await self._wait_eepsite_published(status, deadline)
            step("eepsite resolvable")
            await self._wait_udp_echo_published(status, deadline)
            step("udp echo resolvable")
            # 4. i2pd's own HTTP proxy fetches the eepsite page (the proxy's tunnels are built).
            await self.wait_http_proxy(status, timeout=remaining())
            step("i2pd HTTP proxy fetches the eepsite")

        async def java_up(router: RouterStatus) -> None:
            await self._wait_java_connected(status, router, deadline)
            step(f"{router.name} (Java) connected")
            await self._read_java_eepsite(status, router, deadline)
            # 5. Its eepsite resolves on i2pd and Java, i2pd's HTTP proxy fetches it.
            await self._wait_java_eepsite_reachable(status, router, deadline)
            step(f"{router.name} (Java) eepsite reachable")
            # 6. It resolves the i2pd eepsite and fetches it through its own HTTP proxy.
            await i2pd_eepsite_ready.wait()
            await self._wait_java_reaches_i2pd(status, router, deadline)
            step(f"{router.name} (Java) fetches the eepsite through its HTTP proxy")

        i2pd_eepsite_ready = asyncio.Event()

        async def i2pd_then_signal() -> None:
            await i2pd_ready()
            i2pd_eepsite_ready.set()

        await gather_or_cancel(i2pd_then_signal(), *(java_up(r) for r in status.java_routers))
        status.save()

    async def _wait_java_connected(
        self, status: TestnetStatus, router: RouterStatus, deadline: float
    ) -> None:
        """I2CP and SAM answer and the router has an NTCP2 session; restarted once if not.

        Java 2.7.0 sometimes publishes its RouterInfo before its netDb is ready, and then sits
        without peers or tunnels for many minutes; a restart (same config and keys) fixes it.
        """
        spec = self._specs(self._config())[router.index]
        peer_ports = {s.port("ntcp2") for s in self._specs(self._config())}
        for attempt in (1, 2):
            while not (
                await sam_alive(*router.sam_host_port, timeout=2)
                and await i2cp_alive(*router.i2cp_host_port)
            ):
                self._check_alive(router.index)
                if time.monotonic() > deadline:
                    raise TestnetError(
                        f"Java router {router.name}: no I2CP/SAM; see {spec.data_dir}"
                    )
                await asyncio.sleep(0.1)
            connect_deadline = min(deadline, time.monotonic() + JAVA_CONNECT_TIMEOUT)
            while time.monotonic() < connect_deadline:
                pid = self._check_alive(router.index)
                if javarouter.established_peer_connections(pid, peer_ports) > 0:
                    return
                await asyncio.sleep(0.25)
            if attempt == 2 or time.monotonic() > deadline:
                break
            log.warning(
                "Java router met no peer (start-up race); restarting it once",
                router=router.name,
                seconds=JAVA_CONNECT_TIMEOUT,
            )
            await self._stop_process(router.index)
            router.pid = self._start_router(spec)
            status.save()
        raise TestnetError(
            f"Java router {router.name} connected to no i2pd router; see {spec.data_dir}/logs/"
        )

    async def _read_java_eepsite(
        self, status: TestnetStatus, router: RouterStatus, deadline: float
    ) -> None:
        """The Java eepsite's keys appear when its I2PTunnel server starts: note its b32."""
        keys = Path(status.state_dir) / router.name / javarouter.EEPSITE_KEYS
        while True:
            try:
                destination, b32 = destination_from_keys_file(keys.read_bytes())
                break
            except (OSError, ValueError):
                self._check_alive(router.index)
                if time.monotonic() > deadline:
                    raise TestnetError(f"Java router {router.name} wrote no {keys}") from None
                await asyncio.sleep(0.2)
        router.eepsite = b32
        if status.java_eepsite is None or status.java_eepsite.router == router.index:
            status.java_eepsite = JavaEepsiteStatus(b32, destination, router.index)
        status.save()

    async def _wait_java_reaches_i2pd(
        self, status: TestnetStatus, router: RouterStatus, deadline: float
    ) -> None:
        """Java resolves the i2pd eepsite and fetches it through its own HTTP proxy."""
        await wait_resolvable(
            router.sam_host_port,
            status.eepsite.b32,
            timeout=max(1.0, deadline - time.monotonic()),
            expected=status.eepsite.destination,
        )
        assert router.http_proxy is not None
        await fetch_through_proxy(
            router.http_proxy, status.eepsite.b32, timeout=max(1.0, deadline - time.monotonic())
        )

    async def _wait_java_eepsite_reachable(
        self,
        status: TestnetStatus,
        router: RouterStatus,
        deadline: float,
        *,
        fetch: bool = True,
    ) -> None:
        """The Java router's eepsite resolves on the proxy router (i2pd) and on every Java
        router, and (with ``fetch``) i2pd's HTTP proxy fetches it.

        No fetch after a restart: i2pd keeps the eepsite's old LeaseSet, whose zero-hop leases
        died with the old Java process, until they expire (up to 10 minutes).
        """
        if router.eepsite is None:
            return
        destination = None
        if status.java_eepsite is not None and status.java_eepsite.b32 == router.eepsite:
            destination = status.java_eepsite.destination
        for other in [status.routers[status.proxy_router], *status.java_routers]:
            await wait_resolvable(
                other.sam_host_port,
                router.eepsite,
                timeout=max(1.0, deadline - time.monotonic()),
                expected=destination,
            )
        if fetch:
            await fetch_through_proxy(
                status.http_proxy, router.eepsite, timeout=max(1.0, deadline - time.monotonic())
            )

    async def _wait_eepsite_published(self, status: TestnetStatus, deadline: float) -> None:
        """Wait until every non-floodfill router resolves the eepsite, the second eepsite and
        the outproxy (all on the services router); fix the publish race.

        Never asks a floodfill: i2pd 2.45.1 re-parses a LeaseSet2 from its own netDb as an old
        LeaseSet, fails, and the stored LeaseSet then stays unusable for everyone for a minute.
        """
        eepsite = status.eepsite
        others = [r for r in status.i2pd_routers if r.index != eepsite.router and not r.floodfill]
        services = [(eepsite.b32, eepsite.destination)]
        services += [(s.b32, s.destination) for s in (status.eepsite2, status.outproxy) if s]
        for attempt in range(1, 6):
            timeout = min(deadline - time.monotonic(), EEPSITE_PUBLISH_TIMEOUT)
            if timeout <= 0:
                break
            checks = [(r, b32, full) for r in others for b32, full in services]
            results = await asyncio.gather(
                *(
                    wait_resolvable(r.sam_host_port, b32, timeout=timeout, expected=full)
                    for r, b32, full in checks
                ),
                return_exceptions=True,
            )
            failed = [
                f"{b32[:8]} on {r.name}"
                for (r, b32, _), result in zip(checks, results, strict=True)
                if isinstance(result, BaseException)
            ]
            if not failed:
                return
            # Not published after all (see render_eepsite_tunnel): recreate the tunnels.
            log.warning("services unresolvable; recreating tunnels", attempt=attempt, failed=failed)
            await self._remove_eepsite_tunnel(status)
            await self._add_eepsite_tunnel(status, deadline)
        raise TestnetError(
            f"the eepsite {eepsite.b32} never became resolvable; logs: {self.state_dir}/r*/"
        )

    async def _wait_udp_echo_published(self, status: TestnetStatus, deadline: float) -> None:
        """Wait until the other client routers resolve the UDP echo; restart its router if not.

        Its tunnels have zero hops, so its LeaseSet should always be published; a restart is
        the only remedy if not (a reload would stop its UDP tunnel, see render_udp_echo_tunnel).
        """
        echo = status.udp_echo
        assert echo is not None
        others = [r for r in status.i2pd_routers if r.index != echo.router and not r.floodfill]
        for attempt in range(1, 4):
            timeout = min(deadline - time.monotonic(), EEPSITE_PUBLISH_TIMEOUT)
            if timeout <= 0:
                break
            try:
                await asyncio.gather(
                    *(
                        wait_resolvable(r.sam_host_port, b32, timeout=timeout, expected=full)
                        for r in others
                        for b32, full in (
                            (echo.b32, echo.destination),
                            (echo.repliable_b32, echo.repliable_destination),
                        )
                    )
                )
                return
            except TimeoutError:
                log.warning("udp echo not resolvable; restarting its router", attempt=attempt)
                await self.stop_router(echo.router)
                await self.start_router(echo.router, timeout=max(1.0, deadline - time.monotonic()))
        raise TestnetError(
            f"the UDP echo {echo.b32} never became resolvable; logs: {self.state_dir}/r*/"
        )

    @staticmethod
    async def wait_http_proxy(status: TestnetStatus, timeout: float) -> None:
        """Fetch ``http://<eepsite b32>/`` through i2pd's HTTP proxy until it works."""
        await fetch_through_proxy(status.http_proxy, status.eepsite.b32, timeout=timeout)

    def _reload_router(self, index: int) -> None:
        """SIGHUP: i2pd re-reads its tunnels.conf, starting new and stopping removed tunnels."""
        pid = self._load_pids()["routers"].get(str(index))
        if pid is None or not process.signal_own(pid, str(self.state_dir), signal.SIGHUP):
            raise TestnetError(f"i2pd r{index} is not running; see {self.state_dir}/r{index}/")

    async def _add_eepsite_tunnel(self, status: TestnetStatus, deadline: float) -> None:
        """Wait for an inbound tunnel on the eepsite's router, then start its server tunnel.

        A zero-hop outbound tunnel needs some inbound tunnel of the router to exist (for the
        build reply path); with one there, it is established at once, before the eepsite's
        own first inbound tunnel, so its first LeaseSet is published.
        """
        index = status.eepsite.router
        console = status.routers[index].webconsole
        assert console is not None
        while not await inbound_tunnel_ready(console):
            self._check_alive(index)
            if time.monotonic() > deadline:
                raise TestnetError(f"i2pd r{index} built no inbound tunnel")
            await asyncio.sleep(0.2)
        spec = self._specs(self._config())[index]
        spec.tunnels_conf_path.write_text(self._service_tunnels(status.tunnel_length))
        self._reload_router(index)

    async def _remove_eepsite_tunnel(self, status: TestnetStatus) -> None:
        index = status.eepsite.router
        self._specs(self._config())[index].tunnels_conf_path.write_text("")
        self._reload_router(index)
        await asyncio.sleep(1.0)  # i2pd stops the tunnel and its destination asynchronously

    def _check_alive(self, index: int) -> int:
        """The router's pid; TestnetError if it is not running."""
        pid = self._load_pids()["routers"].get(str(index))
        if pid is None or not process.is_running(pid):
            raise TestnetError(f"router {index} is not running; see {self.state_dir}/")
        return int(pid)

    def _stop_timeout(self, index: int) -> float:
        """Seconds from SIGTERM to SIGKILL for router ``index`` (Java needs ~2 s, i2pd less)."""
        try:
            java = self.status().routers[index].is_java
        except (OSError, ValueError, KeyError, IndexError):
            return JAVA_STOP_TIMEOUT  # no status (a network that never came up): the safe side
        return JAVA_STOP_TIMEOUT if java else I2PD_STOP_TIMEOUT

    async def _stop_process(self, index: int) -> None:
        """SIGTERM router ``index`` by pid and wait; SIGKILL after :meth:`_stop_timeout`."""
        pids = self._load_pids()
        await process.terminate(
            pids["routers"].get(str(index)), str(self.state_dir), timeout=self._stop_timeout(index)
        )
        pids = self._load_pids()
        pids["routers"][str(index)] = None
        self._save_pids(pids)

    # --- runtime control ----------------------------------------------------------------------

    def _update_status(self, **changes: object) -> TestnetStatus:
        status = self.status()
        for key, value in changes.items():
            setattr(status, key, value)
        status.save()
        return status

    async def set_link_delay(self, delay_ms: float) -> TestnetStatus:
        """Change the one-way delay of every router-to-router link (new data only)."""
        if not 0 <= delay_ms <= 10_000:
            raise TestnetError("the link delay must be between 0 and 10000 ms")
        status = self.status()
        self._delay_path.write_text(f"{delay_ms}\n")
        if not process.signal_own(
            self._load_pids()["helper"] or -1, str(self.state_dir), signal.SIGHUP
        ):
            raise TestnetError(f"the helper process of {self.name!r} is not running")
        status.link_delay_ms = delay_ms
        status.profile = None
        status.save()
        return status

    async def set_impairment(
        self,
        impairment: Impairment,
        *,
        link_delay_ms: float | None = None,
        profile: str | None = None,
    ) -> TestnetStatus:
        """Change every link's impairment (and, if given, delay) at runtime (new data only)."""
        try:
            impairment.validate()
        except ImpairmentError as exc:
            raise TestnetError(str(exc)) from None
        if link_delay_ms is not None:
            await self.set_link_delay(link_delay_ms)
        status = self.status()
        LinkSettings(status.link_delay_ms, impairment).save(self._impair_path)
        if not process.signal_own(
            self._load_pids()["helper"] or -1, str(self.state_dir), signal.SIGHUP
        ):
            raise TestnetError(f"the helper process of {self.name!r} is not running")
        status.impairment = impairment.to_dict()
        status.profile = profile
        status.save()
        return status

    async def stop_router(self, index: int) -> None:
        """Stop router ``index`` (SIGTERM, by pid); its forwarded ports then refuse connections."""
        config = self._config()
        self._check_index(config, index)
        await self._stop_process(index)
        status = self.status()
        status.routers[index].pid = None
        status.save()

    async def start_router(self, index: int, *, wait: bool = True, timeout: float = 120) -> None:
        """Start router ``index`` again; with ``wait``, return once it is usable again.

        Usable: its SAM bridge answers, it has built exploratory tunnels through its peers and
        (unless a floodfill) resolves the eepsite; for the eepsite's router: the eepsite
        resolves again on the other routers. A Java router (restarted with the same config,
        so its NTCP2 key stays what the i2pd routers know): I2CP and SAM answer, it met a
        peer, resolves the eepsite and fetches it through its HTTP proxy; its eepsite resolves.
        """
        config = self._config()
        self._check_index(config, index)
        pid = self._load_pids()["routers"].get(str(index))
        if pid is not None and process.is_running(pid):
            raise TestnetError(f"router {index} is already running (pid {pid})")
        spec = self._specs(config)[index]
        status = self.status()
        hosts_eepsite = index == status.eepsite.router
        if hosts_eepsite and wait:
            spec.tunnels_conf_path.write_text("")  # added once tunnels exist, as in up()
        status.routers[index].pid = self._start_router(spec)
        status.save()
        if not wait:
            return
        deadline = time.monotonic() + timeout
        router = status.routers[index]
        if router.is_java:
            await self._wait_java_connected(status, router, deadline)
            await self._wait_java_reaches_i2pd(status, router, deadline)
            await self._wait_java_eepsite_reachable(status, router, deadline, fetch=False)
            return
        while not await sam_alive(*router.sam_host_port, timeout=2):
            self._check_alive(index)
            if time.monotonic() > deadline:
                raise TestnetError(f"router {index} did not come back in {timeout} s")
            await asyncio.sleep(0.1)
        if hosts_eepsite:
            await self._add_eepsite_tunnel(status, deadline)
            await self._wait_eepsite_published(status, deadline)
            return
        assert router.webconsole is not None
        while not await exploratory_tunnels_ready(router.webconsole):
            self._check_alive(index)
            if time.monotonic() > deadline:
                raise TestnetError(f"router {index} built no tunnels in {timeout} s")
            await asyncio.sleep(0.2)
        if not router.floodfill:  # (never ask a floodfill: see _wait_eepsite_published)
            try:
                await wait_resolvable(
                    router.sam_host_port,
                    status.eepsite.b32,
                    timeout=max(1.0, deadline - time.monotonic()),
                    expected=status.eepsite.destination,
                )
            except TimeoutError as exc:
                # The state directory is gone after a failed test's teardown: say why here.
                log = self._specs(config)[index].log_path
                raise TestnetError(f"{exc}; {log} ends:\n{warnings_tail(log)}") from None

    @staticmethod
    def _check_index(config: NetworkConfig, index: int) -> None:
        last = config.routers + config.java - 1
        if not 0 <= index <= last:
            raise TestnetError(f"router index must be between 0 and {last}")

    # --- down ---------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.state_dir.exists() or netns.exists(self.netns)

    async def down(self) -> None:
        """Stop this network's processes (by pid), delete its namespace and state directory.

        Everything is deleted right after, so nothing needs a graceful exit: all processes get
        SIGTERM at once and SIGKILL after :data:`DOWN_GRACE` (a Java router's or a 2.45.1 with
        SAM sessions' orderly stop took 20 s; every CI run ends with one ``down``)."""
        marker = str(self.state_dir)
        pids = self._load_pids()
        everything = [*pids.get("routers", {}).values(), pids.get("eepsite"), pids.get("helper")]
        await asyncio.gather(
            *(process.terminate(pid, marker, timeout=DOWN_GRACE) for pid in everything)
        )
        netns.delete(self.netns)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def warnings_tail(log: Path, lines: int = 25) -> str:
    """The last warning and error lines of an i2pd log (for failure messages)."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(unreadable: {exc})"
    flagged = [line for line in text if "/warn - " in line or "/error - " in line]
    return "\n".join(flagged[-lines:]) or "(no warnings)"


async def lookup_from(status: TestnetStatus, router: int, name: str) -> str | None:
    """Resolve ``name`` on ``router`` once (a convenience for tests)."""
    return await naming_lookup(*status.routers[router].sam_host_port, name)


async def gather_or_cancel(*coros: Awaitable[object]) -> None:
    """Like ``asyncio.gather``, but the first failure cancels the others (and is raised)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def fetch_through_proxy(proxy: str, b32: str, *, timeout: float) -> None:
    """GET ``http://<b32>/`` through the HTTP proxy at ``proxy`` until the demo page comes."""
    deadline = time.monotonic() + timeout
    url = f"http://{b32}/"
    last = "no attempt"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(
                    url,
                    proxy=f"http://{proxy}",
                    timeout=aiohttp.ClientTimeout(total=min(30, deadline - time.monotonic())),
                ) as response:
                    body = await response.text()
                    if response.status == 200 and "private I2P network" in body:
                        return
                    last = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.5)
    raise TestnetError(f"the HTTP proxy {proxy} could not fetch {url}: {last}")


async def i2cp_version(host: str, port: int, timeout: float = 5.0) -> str | None:
    """The API version an I2CP server reports in SetDate (i2pd 2.45.1: 0.9.57, 2.58.0: 0.9.67,
    Java I2P 2.7.0: 0.9.64); None when it does not answer."""
    version = b"0.9.64"
    get_date = bytes([len(version)]) + version + b"\x00\x00"  # version + empty options
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"\x2a" + len(get_date).to_bytes(4, "big") + b"\x20" + get_date)
                header = await reader.readexactly(5)
                length = int.from_bytes(header[:4], "big")
                if header[4] != 33 or not 9 <= length <= 1024:  # SetDateMessage
                    return None
                payload = await reader.readexactly(length)
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    text = payload[9 : 9 + payload[8]]
    return text.decode("ascii", "replace")


async def i2cp_alive(host: str, port: int, timeout: float = 5.0) -> bool:
    """True when an I2CP server at ``host:port`` answers GetDate with SetDate."""
    return await i2cp_version(host, port, timeout) is not None


async def _console_page(webconsole: str, query: str = "") -> str | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://{webconsole}/{query}", timeout=aiohttp.ClientTimeout(total=5)
            ) as response,
        ):
            return await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def known_floodfills(webconsole: str) -> int:
    """How many floodfills the router's netDb holds (i2pd's web console, main page)."""
    page = await _console_page(webconsole)
    match = re.search(r"Floodfills:</b>\s*(\d+)", page or "")
    return int(match.group(1)) if match else -1


_ESTABLISHED = '<span class="tunnel established"> established'


async def inbound_tunnel_ready(webconsole: str) -> bool:
    """True when i2pd's web console lists at least one established inbound tunnel."""
    page = await _console_page(webconsole, "?page=tunnels")
    if page is None:
        return False
    inbound = page.partition("Outbound tunnels:")[0].partition("Inbound tunnels:")[2]
    return _ESTABLISHED in inbound


async def exploratory_tunnels_ready(webconsole: str) -> bool:
    """True when i2pd's web console lists established exploratory inbound and outbound tunnels."""
    page = await _console_page(webconsole, "?page=tunnels")
    if page is None:
        return False
    inbound, _, outbound = page.partition("Outbound tunnels:")
    marker = "established (exploratory)"
    return marker in inbound and marker in outbound
