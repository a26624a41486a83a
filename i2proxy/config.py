"""i2proxy settings: defaults < TOML config file < ``I2PROXY_*`` environment < command-line flags.

Every setting has one name used everywhere: ``http_listen`` is ``http_listen = "..."`` in the
file, ``I2PROXY_HTTP_LISTEN`` in the environment. Lists are TOML arrays in the file and
comma-separated in the environment. ``users`` is a table ``{name = "password"}`` in the file and
``name:password,name2:password2`` in the environment. ``options`` (router session options) is a
table ``{"inbound.length" = 1}`` in the file and ``KEY=VALUE,KEY=VALUE`` in the environment (a
comma-separated piece without ``=`` continues the previous value: ``i2cp.leaseSetEncType=4,0``);
unlike the other settings, options from the file, the environment and the flags merge key by key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "I2PROXY_"

#: The User-Agent sent to eepsites unless configured otherwise: the same for every user.
DEFAULT_USER_AGENT = "MYOB/6.66 (AN/ON)"

#: i2pd's hard-coded list (anchors-features §1), kept as the default; configurable here.
DEFAULT_JUMP_SERVICES = [
    "http://shx5vqsw7usdaunyzr2qmes2fq37oumybpudrd4jjj4e4vk4uusa.b32.i2p/jump/",
    "http://7tbay5p4kzeekxvyvbf6v7eauazemsnnl2aoyqhg5jzpr5eke7tq.b32.i2p/cgi-bin/jump.cgi?a=",
    "http://nytzrhrjjfsutowojvxi7hphesskpqqr65wpistz6wa7cpajhp7a.b32.i2p/cgi-bin/jump.cgi?q=",
]


#: What ``--option KEY=VALUE`` may set: tunnels, I2CP session options, streaming options.
SESSION_OPTION_PREFIXES = ("inbound.", "outbound.", "i2cp.", "i2p.streaming.")
#: Java I2P and i2pd both cap tunnels at 7 hops and 16 tunnels per pool.
MAX_HOPS = 7
MAX_TUNNEL_QUANTITY = 16
MAX_SESSION_OPTIONS = 64
MAX_OPTION_KEY = 64
MAX_OPTION_VALUE = 256
#: Listeners that take an ``isolation`` mode, and the modes (``proxy/isolation.py``).
LISTENERS = ("http", "socks", "mixed")
ISOLATION_MODES = ("none", "user", "site")
#: The default mode of every listener (README "Isolation").
DEFAULT_ISOLATION = "site"
MAX_DESTINATIONS_LIMIT = 256
#: Outproxies at most (``--outproxy``, repeatable).
MAX_OUTPROXIES = 16
#: Settings that are a number or unset (None = the router's own default).
_OPTIONAL_INTS = frozenset({"hops", "quantity", "backup_quantity"})


class ConfigError(ValueError):
    """A setting has a bad value; the message names the setting and where it came from."""


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(base, "i2proxy")


@dataclass
class Config:
    #: Router URL: ``i2cp://host:port`` or ``sam://host:port``; empty = find a local router
    #: (I2CP on 7654 preferred, then SAM on 7656).
    router: str = ""
    data_dir: str = field(default_factory=default_data_dir)
    #: ``host:port`` to listen on; an empty string disables the listener.
    http_listen: str = "127.0.0.1:4444"
    socks_listen: str = "127.0.0.1:4447"
    #: One port speaking SOCKS4, SOCKS5 and HTTP (detected from the first byte); off by default.
    mixed_listen: str = ""
    #: Proxy users (SOCKS5 RFC 1929 and HTTP Basic); empty means no authentication.
    users: dict[str, str] = field(default_factory=dict)
    #: Client networks allowed to connect (CIDRs); empty means everyone who can reach the port.
    allow: list[str] = field(default_factory=list)
    #: User-Agent sent to eepsites; ``send_user_agent`` passes the browser's own instead.
    user_agent: str = DEFAULT_USER_AGENT
    send_user_agent: bool = False
    address_helper: bool = True
    jump_services: list[str] = field(default_factory=lambda: list(DEFAULT_JUMP_SERVICES))
    #: How long to wait for the client's first bytes after a SOCKS/CONNECT handshake so they
    #: ride in the SYN (Java's connectDelay). 0 dials first and reports dial errors precisely.
    syn_window_ms: int = 200
    handshake_timeout: float = 15.0
    header_timeout: float = 15.0
    idle_timeout: float = 120.0
    #: A kept-alive browser connection's I2P stream is closed after this many seconds without
    #: a request; the browser connection stays (up to ``idle_timeout``) and its next request
    #: opens a fresh stream.
    stream_idle_timeout: float = 30.0
    #: At ``max_clients`` (or the stream limit), a fresh authenticated request closes the
    #: connection idle the longest, if it has been idle at least this long (a SOCKS or CONNECT
    #: tunnel that carried no byte, a browser connection between requests); else it is refused.
    evict_idle_after: float = 10.0
    #: Once the connection count fell to half its peak (by 256 or more), collect garbage and
    #: return free heap pages to the system (``malloc_trim``), at most once a minute.
    release_memory: bool = True
    connect_timeout: float = 60.0
    max_header_bytes: int = 32 * 1024
    #: Authenticated clients at once (~18 KB each when idle, one open file each; the process
    #: raises its open-files limit to fit). 1000 simultaneous requests must all be answered.
    max_clients: int = 2048
    #: Connections that have not authenticated yet (no SOCKS request or HTTP head accepted)
    #: have their own budget, in total and per client address; when it is full the oldest
    #: pending connection is closed to make room. They must authenticate within
    #: ``auth_timeout`` seconds.
    max_pending: int = 64
    max_pending_per_address: int = 16
    auth_timeout: float = 5.0
    #: A pending connection is never closed to make room before it had this long to send its
    #: request; meanwhile a burst waits in the kernel's accept queue (proxy/listener.py).
    pending_grace: float = 1.0
    #: Serve ``/proxy.pac`` without credentials even when users are configured (browsers fetch
    #: the PAC file directly, without proxy authentication). Every other page needs them.
    public_pac: bool = False
    #: Open I2P streams of the native backend (``i2proxy.streaming.maxStreams``); beyond it a
    #: request gets "i2proxy is at its limit" (503 / SOCKS general failure), logged once a minute.
    max_streams: int = 4096
    #: Keep the client destination across runs, in ``keys_file`` or, when that is empty, in
    #: ``<data_dir>/client-destination.keys``. Off by default: a new destination each run cannot
    #: be linked to the previous one, and with i2pd 2.45.1 a reused destination gets no replies
    #: from recently used sites for ~2 minutes after a restart (docs/PROXY.md).
    persistent: bool = False
    #: Keys file of a persistent client destination (setting it implies ``persistent``).
    keys_file: str = ""
    #: Tunnel length, inbound and outbound; None leaves the router's default, which is 3 hops
    #: on Java I2P and i2pd: the privacy I2P is built for. Fewer hops are faster and make it
    #: easier for a peer or a hop to find the user's router (README "Tunnel settings").
    hops: int | None = None
    #: Tunnels per direction, and standby tunnels; None = the router's default (Java I2P 2 and
    #: 0, i2pd 5 and 0 for client sessions).
    quantity: int | None = None
    backup_quantity: int | None = None
    #: Any ``inbound.*``, ``outbound.*``, ``i2cp.*`` or ``i2p.streaming.*`` option for the
    #: router session (SAM SESSION CREATE, I2CP CreateSession); wins over ``hops`` & co.
    options: dict[str, str] = field(default_factory=dict)
    #: Client destination per listener: ``none`` (one shared), ``user`` (per proxy user or
    #: SOCKS credentials), ``site`` (HTTP: per user and first-party site). File: a string for
    #: every listener or a table ``{http = "site", socks = "user"}``; environment and flag:
    #: ``site`` or ``http=site,socks=user`` (unnamed listeners keep the default).
    isolation: dict[str, str] = field(
        default_factory=lambda: dict.fromkeys(LISTENERS, DEFAULT_ISOLATION)
    )
    #: Isolated destinations at most (spares included); at the bound the least recently used
    #: one without open streams is closed, and with none idle a request is refused (PROXY.md).
    max_destinations: int = 16
    #: Destinations kept ready (tunnels built, LeaseSet published) for the next new key.
    spare_destinations: int = 1
    #: Seconds an isolated destination without open streams lives after its last use.
    destination_idle: float = 600.0
    #: Outproxies for clearnet hosts, tried in this order (``http://name.i2p``,
    #: ``socks5://<b32>.b32.i2p:1080``); reached over I2P only, from a destination of their
    #: own. Empty (the default): clearnet hosts are refused.
    outproxy: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for name in ("http_listen", "socks_listen", "mixed_listen"):
            value = getattr(self, name)
            if value:
                parse_listen(value, name)
        if not (self.http_listen or self.socks_listen or self.mixed_listen):
            raise ConfigError("every listener is disabled; enable http, socks or mixed")
        for cidr in self.allow:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"allow: {cidr!r} is not a network ({exc})") from None
        for user, password in self.users.items():
            if not user or ":" in user:
                raise ConfigError(f"users: bad user name {user!r} (non-empty, no ':')")
            if not password:
                raise ConfigError(f"users: {user!r} has an empty password")
        if self.syn_window_ms < 0 or self.max_clients < 1 or self.max_header_bytes < 1024:
            raise ConfigError("syn_window_ms >= 0, max_clients >= 1, max_header_bytes >= 1024")
        if self.max_pending < 1 or self.max_pending_per_address < 1 or self.auth_timeout <= 0:
            raise ConfigError("max_pending >= 1, max_pending_per_address >= 1, auth_timeout > 0")
        if self.pending_grace < 0:
            raise ConfigError("pending_grace >= 0")
        if self.max_streams < 1:
            raise ConfigError("max_streams >= 1")
        if self.stream_idle_timeout <= 0 or self.evict_idle_after < 0:
            raise ConfigError("stream_idle_timeout > 0, evict_idle_after >= 0")
        for listener, mode in self.isolation.items():
            if listener not in LISTENERS or mode not in ISOLATION_MODES:
                raise ConfigError(
                    f"isolation: {listener}={mode!r}; listeners {', '.join(LISTENERS)}, "
                    f"modes {', '.join(ISOLATION_MODES)}"
                )
        if not 1 <= self.max_destinations <= MAX_DESTINATIONS_LIMIT:
            raise ConfigError(f"max_destinations: 1 to {MAX_DESTINATIONS_LIMIT}")
        if not 0 <= self.spare_destinations <= self.max_destinations:
            raise ConfigError("spare_destinations: 0 to max_destinations")
        if self.destination_idle <= 0:
            raise ConfigError("destination_idle > 0")
        if len(self.outproxy) > MAX_OUTPROXIES:
            raise ConfigError(f"outproxy: at most {MAX_OUTPROXIES}")
        _check_range("hops", self.hops, 0, MAX_HOPS)
        _check_range("quantity", self.quantity, 1, MAX_TUNNEL_QUANTITY)
        _check_range("backup_quantity", self.backup_quantity, 0, MAX_TUNNEL_QUANTITY)
        if len(self.options) > MAX_SESSION_OPTIONS:
            raise ConfigError(f"options: at most {MAX_SESSION_OPTIONS}")
        for key, value in self.options.items():
            check_session_option(key, value)

    def session_options(self) -> dict[str, str]:
        """The router session's options: ``hops``/``quantity``/``backup_quantity`` expanded to
        both directions, then ``options`` on top (an explicit ``inbound.length`` wins)."""
        result: dict[str, str] = {}
        for name, suffix in (
            ("hops", "length"),
            ("quantity", "quantity"),
            ("backup_quantity", "backupQuantity"),
        ):
            value = getattr(self, name)
            if value is not None:
                result[f"inbound.{suffix}"] = result[f"outbound.{suffix}"] = str(value)
        result.update(self.options)
        return result

    def check_exposure(self) -> None:
        """Refuse to listen beyond loopback with neither users nor an allow-list."""
        if self.users or self.allow:
            return
        for name in ("http_listen", "socks_listen", "mixed_listen"):
            value = getattr(self, name)
            if value and not is_loopback(parse_listen(value, name)[0]):
                raise ConfigError(
                    f"{name} = {value!r} is reachable from other machines, and neither users nor "
                    "an allow-list is configured. Anyone who can reach that port could browse "
                    "I2P as you (and malware on the network scans for open proxies). Either bind "
                    "to 127.0.0.1, or set users (--user NAME:PASSWORD, I2PROXY_USERS) or allowed "
                    "client networks (--allow 192.168.1.0/24, I2PROXY_ALLOW)."
                )


def _check_range(name: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{name}: {value} is not between {low} and {high}")


def check_session_option(key: str, value: str) -> None:
    """Refuse what a router must not be sent: other prefixes, spaces, quotes, control bytes.

    SAM carries options as ``KEY=VALUE`` words on one line and i2pd splits on every space (it
    knows no quoting), so a value with a space would turn into a second, unintended option.
    """
    if not key.startswith(SESSION_OPTION_PREFIXES) or len(key) > MAX_OPTION_KEY:
        allowed = ", ".join(prefix + "*" for prefix in SESSION_OPTION_PREFIXES)
        raise ConfigError(
            f"option {key[:MAX_OPTION_KEY]!r}: only {allowed} options"
            f" (key up to {MAX_OPTION_KEY} characters)"
        )
    for text, what in ((key, "key"), (value, "value")):
        if (
            not text
            or not text.isascii()
            or not text.isprintable()
            or any(c in text for c in ' "\\')
        ):
            raise ConfigError(
                f"option {key!r}: the {what} must be printable ASCII without spaces or quotes"
            )
    if "=" in key or len(value) > MAX_OPTION_VALUE:
        raise ConfigError(
            f"option {key!r}: no '=' in the key, value up to {MAX_OPTION_VALUE} characters"
        )


def parse_session_options(value: Any) -> dict[str, str]:
    """``{"k": v}`` (file), ``["k=v", ...]`` (flags) or ``"k=v,k2=v2"`` (environment) → dict."""
    if isinstance(value, Mapping):
        return {str(k): _option_text(v) for k, v in value.items()}
    if isinstance(value, str):
        items: list[str] = []
        for piece in (p.strip() for p in value.split(",")):
            if "=" in piece or not items:
                items.append(piece)
            else:
                items[-1] += "," + piece  # "i2cp.leaseSetEncType=4,0": the value has a comma
        value = [item for item in items if item]
    if not isinstance(value, list):
        raise ValueError("expected a table of option = value")
    options: dict[str, str] = {}
    for item in value:
        key, sep, text = str(item).partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        options[key.strip()] = text.strip()
    return options


def parse_isolation(value: Any) -> dict[str, str]:
    """``"site"`` (every listener), ``"http=site,socks=user"`` or a table → the listeners it
    names and their modes (later sources merge listener by listener)."""
    if isinstance(value, list):  # repeated flags
        value = ",".join(str(v) for v in value)
    if isinstance(value, str):
        pieces = [p.strip().lower() for p in value.split(",") if p.strip()]
        table: dict[str, str] = {}
        for piece in pieces:
            listener, sep, mode = piece.partition("=")
            if sep:
                table[listener.strip()] = mode.strip()
            else:
                table.update(dict.fromkeys(LISTENERS, piece))
        value = table
    if not isinstance(value, Mapping):
        raise ValueError('expected a mode ("site") or a table {http = "site"}')
    return {str(k).lower(): str(v).lower() for k, v in value.items()}


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"option value {value!r} is not a string, number or boolean")


def parse_listen(value: str, what: str = "listen") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _convert(name: str, value: Any, source: str) -> Any:
    default = getattr(Config(), name)
    try:
        if name == "options":
            return parse_session_options(value)
        if name == "isolation":
            return parse_isolation(value)
        if name in _OPTIONAL_INTS:
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return int(value)
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
            return list(value)
        if isinstance(default, dict):
            if isinstance(value, str):
                users: dict[str, str] = {}
                for item in filter(None, (v.strip() for v in value.split(","))):
                    user, sep, password = item.partition(":")
                    if not sep:
                        raise ValueError(f"{item!r} is not NAME:PASSWORD")
                    users[user] = password
                return users
            if not isinstance(value, Mapping):
                raise ValueError("expected a table of name = password")
            return {str(k): str(v) for k, v in value.items()}
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} (from {source}): {exc}") from None


def _set(values: dict[str, Any], name: str, value: Any) -> None:
    """A later source replaces a setting; session options and isolation modes merge key by
    key instead."""
    if name == "options":
        value = {**values.get("options", {}), **value}
    elif name == "isolation":
        defaults = dict.fromkeys(LISTENERS, DEFAULT_ISOLATION)
        value = {**values.get("isolation", defaults), **value}
    values[name] = value


def load_config(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective config; ``overrides`` are the flags the user gave (None = not given)."""
    values: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            _set(values, name, _convert(name, value, str(path)))
    environ = os.environ if env is None else env
    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            _set(values, name, _convert(name, environ[env_name], env_name))
    for name, value in (overrides or {}).items():
        if value is not None:
            _set(values, name, _convert(name, value, "command line"))
    config = Config(**values)
    config.validate()
    return config
