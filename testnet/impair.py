"""Link impairments: what a TCP link with loss, reordering, duplication, jitter and a rate cap
delivers to the routers at its ends (pure; the relay applies it, ``impair`` sets it).

Router links are NTCP2 over TCP: encrypted frames with obfuscated lengths, delivered in order. A
relay cannot drop or reorder I2NP messages in them, and neither can the network: a lost IP
packet is retransmitted by TCP, and everything behind it waits. So the relay models the *TCP
view* of an impaired path, per link and direction, at the cost of one timing decision per chunk
(no per-byte work):

- delay D and jitter J: each chunk is held D ± J (uniform), never overtaking an earlier one;
- loss: each 1448-byte segment is lost with the given probability; a chunk holding a lost
  segment waits for its retransmission, as Linux recovers it: with ≥ 4 segments in flight by
  RACK/fast retransmit (≈ 1.25 RTT), with fewer by a tail-loss probe (2 RTT + 2 ms; + 200 ms
  with a single segment in flight, TCP_RTO_MIN);
- reordering: a late segment holds the later data until it arrives (the displacement: up to J,
  or a quarter RTT, at least 1 ms); TCP hides the order itself;
- duplication: duplicated segments take link capacity (they count against the rate cap);
- rate: a bottleneck shared by all connections of the directed link; the relay stops reading
  once ~100 ms of data waits for it, so the sender's TCP window closes and the routers' own
  queues fill — and may overflow (i2pd drops, or in 2.45.1 terminates a session with > 500
  messages queued): the only way I2NP messages are lost here, as on the live network.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

MSS = 1448
#: Linux's minimum retransmission timeout (TCP_RTO_MIN), added to a tail-loss probe with one
#: segment in flight.
RTO_MIN = 0.2
#: Linux's TCP_TIMEOUT_MIN (2 jiffies), added to any tail-loss probe.
TLP_MIN = 0.002
#: With this many segments in flight a loss is found by RACK / duplicate ACKs, not a probe.
FAST_RECOVERY_SEGMENTS = 4
#: Data may wait this long for a rate-capped link before the relay stops reading from the sender.
BOTTLENECK_QUEUE = 0.1

_RATE_UNITS = {
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
    "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024.0, "mib": 1024.0**2,
}  # fmt: skip
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


class ImpairmentError(ValueError):
    """An impairment setting is out of range or malformed; the message says which."""


def parse_rate(text: str) -> float:
    """``'4mbit'`` → 500000.0 bytes/s. Units: bit kbit mbit gbit (bits/s), B KB MB GB KiB MiB
    (bytes/s, decimal unless ``i``); a bare number is bytes/s."""
    match = _RATE_RE.match(text.lower())
    if not match or match.group(2) not in {"", *_RATE_UNITS}:
        raise ImpairmentError(
            f"bad rate {text!r}: use a number and one of bit, kbit, mbit, gbit, B, KB, MB, GB"
        )
    rate = float(match.group(1)) * _RATE_UNITS.get(match.group(2), 1.0)
    if not 1000 <= rate <= 10e9:
        raise ImpairmentError(f"rate {text!r} must be between 8kbit and 80gbit")
    return rate


@dataclass(frozen=True)
class Impairment:
    """Per link and direction (one way). All zero/None: an unimpaired link."""

    loss_pct: float = 0.0
    reorder_pct: float = 0.0
    duplicate_pct: float = 0.0
    jitter_ms: float = 0.0
    #: The rate cap as given (``"4mbit"``), or None for none.
    rate: str | None = None

    def validate(self) -> None:
        for name in ("loss_pct", "reorder_pct", "duplicate_pct"):
            if not 0 <= getattr(self, name) <= 50:
                raise ImpairmentError(f"--{name[:-4]} must be between 0 and 50 (%)")
        if not 0 <= self.jitter_ms <= 5000:
            raise ImpairmentError("--jitter must be between 0 and 5000 ms")
        if self.rate is not None:
            parse_rate(self.rate)

    @property
    def rate_bytes_per_s(self) -> float | None:
        return parse_rate(self.rate) if self.rate is not None else None

    @property
    def active(self) -> bool:
        return self != Impairment()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate_bytes_per_s"] = self.rate_bytes_per_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Impairment:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class Profile:
    """A named network condition: link delay, impairment and (at ``up`` only) tunnel length."""

    name: str
    description: str
    link_delay_ms: float
    impairment: Impairment = field(default_factory=Impairment)
    tunnel_length: int | None = None


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("ideal", "no delay, no impairment", 0.0, Impairment()),
        Profile(
            "real",
            "like the live network: 3-hop tunnels, 80 ms ± 30 ms per link, 1 % loss, "
            "2 % reordering, 4 Mbit/s per link",
            80.0,
            Impairment(loss_pct=1.0, reorder_pct=2.0, jitter_ms=30.0, rate="4mbit"),
            tunnel_length=3,
        ),
    )
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ImpairmentError(
            f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None


@dataclass(frozen=True)
class LinkSettings:
    """What the relay applies to every link: the one-way delay plus the impairment."""

    delay_ms: float = 0.0
    impairment: Impairment = field(default_factory=Impairment)

    def to_dict(self) -> dict[str, Any]:
        return {"delay_ms": self.delay_ms, "impairment": self.impairment.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkSettings:
        return cls(float(data.get("delay_ms", 0.0)), Impairment.from_dict(data["impairment"]))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LinkSettings:
        """The settings in ``path``; the unimpaired defaults when it is missing or unreadable."""
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    def with_impairment(self, impairment: Impairment) -> LinkSettings:
        return replace(self, impairment=impairment)


@dataclass
class LinkCounters:
    """What the impairment did (per relay process; the helper writes them to a file)."""

    chunks: int = 0
    bytes: int = 0
    losses: int = 0
    reorders: int = 0
    stall_seconds: float = 0.0

    def add(self, other: LinkCounters) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


class Bottleneck:
    """The rate-capped part of one directed link, shared by all its connections."""

    def __init__(self) -> None:
        self.free_at = 0.0

    def backlog(self, now: float) -> float:
        """Seconds of data already waiting for the link."""
        return max(0.0, self.free_at - now)

    def transmit(self, now: float, wire_bytes: float, rate: float | None) -> float:
        """When the last of ``wire_bytes`` (handed over at ``now``) has left the link."""
        if rate is None:
            return now
        self.free_at = max(self.free_at, now) + wire_bytes / rate
        return self.free_at


class LinkModel:
    """The schedule of one direction of one relayed TCP connection."""

    def __init__(
        self,
        bottleneck: Bottleneck,
        counters: LinkCounters,
        rng: random.Random | None = None,
    ) -> None:
        self.bottleneck = bottleneck
        self.counters = counters
        self.rng = rng or random.Random()
        self._last_due = 0.0

    def schedule(self, settings: LinkSettings, now: float, size: int, in_flight: int) -> float:
        """The time a chunk of ``size`` bytes read at ``now`` is delivered, with ``in_flight``
        bytes (this chunk included) accepted from the sender and not yet delivered."""
        imp = settings.impairment
        delay = settings.delay_ms / 1000.0
        jitter = imp.jitter_ms / 1000.0
        segments = max(1, math.ceil(size / MSS))
        wire = size * (1.0 + imp.duplicate_pct / 100.0)
        sent = self.bottleneck.transmit(now, wire, imp.rate_bytes_per_s)
        one_way = delay + (self.rng.uniform(-jitter, jitter) if jitter else 0.0)
        due = sent + max(0.0, one_way)
        rtt = 2 * delay
        stall = 0.0
        if imp.loss_pct and self._hit(imp.loss_pct, segments):
            self.counters.losses += 1
            stall += retransmission_wait(rtt, math.ceil(in_flight / MSS))
        if imp.reorder_pct and self._hit(imp.reorder_pct, segments):
            self.counters.reorders += 1
            stall += self.rng.uniform(0.0, max(jitter, rtt / 4, 0.001))
        due = max(due + stall, self._last_due)
        self._last_due = due
        self.counters.chunks += 1
        self.counters.bytes += size
        self.counters.stall_seconds += stall
        return due

    def _hit(self, pct: float, segments: int) -> bool:
        """Whether any of ``segments`` is hit by a ``pct`` % chance each."""
        return self.rng.random() < 1.0 - (1.0 - pct / 100.0) ** segments


def retransmission_wait(rtt: float, segments_in_flight: int) -> float:
    """How much later than planned a lost segment arrives (Linux: RACK or tail-loss probe)."""
    if segments_in_flight >= FAST_RECOVERY_SEGMENTS:
        return 1.25 * rtt
    return 2 * rtt + TLP_MIN + (RTO_MIN if segments_in_flight <= 1 else 0.0)


def max_read(settings: LinkSettings, chunk: int) -> int:
    """Read at most ~10 ms of a rate-capped link at once, so shaping stays smooth."""
    rate = settings.impairment.rate_bytes_per_s
    if rate is None:
        return chunk
    return max(MSS, min(chunk, int(rate / 100)))
