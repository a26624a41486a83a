"""A young destination's "not found" is no verdict: look again before calling a site offline.

A router looks a LeaseSet up through the *asking* destination's own tunnels, so a lookup made
right after the destination was created says as much about those tunnels as about the site:

- i2pd answers "not found" at once while the destination has no outbound tunnel
  (``LeaseSetDestination::RequestDestination`` → ``!IsReady()``), and it asks an I2CP client for
  its LeaseSet (our "session ready") — and answers SAM's ``SESSION STATUS OK`` — as soon as
  the first *inbound* tunnel exists;
- its first lookups ride tunnels nobody has tested yet: each floodfill gets
  ``LEASESET_REQUEST_TIMEOUT`` (5 s in 2.45.1, 1.6 s in 2.58) and when no reply comes back
  from any floodfill the answer is again "not found"; a tunnel build can stay pending for
  ``TUNNEL_CREATION_TIMEOUT`` (30 s) before i2pd builds another, and its pools are managed
  (tested, replaced) every 5 s.

Seen: a fresh proxy's first fetch of a live eepsite got the offline page (CI stop 17, i2pd 2.58
client router), a fresh native destination's first dial got ``DestinationOffline`` (CI run of
9d084bc), a fresh SAM session's first dial got ``CANT_REACH_PEER`` (CI run of 2026-11-22); each
time a retry seconds later worked. With per-site isolation every first visit to a site uses a
young destination, so this is what users meet, not only tests.

So while a destination is younger than :data:`YOUNG_SECONDS` a "not found" is looked up again
after 1, 2, 4 s: retries start within :data:`RETRY_WINDOW` of the first lookup (the first retry
even later), and only while the retry — pause and lookup, at least :data:`MIN_LOOKUP_TIME` —
ends within :data:`VERDICT_TIME` of the first lookup and within the caller's timeout. So a site
that is truly absent still gets its "offline" within the issue's 15 s goal: after ~7 s when the
floodfills answer "not found" at once (lookups at 0, 1, 3 and 7 s), after at most 13.5 s when the
router takes its time (Java answers at our 10 s lookup timeout; one retry of up to 2.5 s). An
older destination believes the first "not found": its tunnels have had time to be built, tested
and replaced. Both dialers use this one rule (:data:`YOUNG_RETRY`): the native one for its
HostLookups (``dialer/native.py``, which also serves the streaming manager's lookup after "no
LeaseSet"), SAM for ``CANT_REACH_PEER`` and Java's "Lease set not found" (``dialer/sam.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A destination younger than this (seconds since its session became ready) gets retries.
YOUNG_SECONDS = 90.0
#: Pause before the n-th retry (the last value repeats).
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
#: Retries after the first start at most this long after the first lookup began.
RETRY_WINDOW = 8.0
#: Every retry ends at most this long after the first lookup began (the issue's goal: < 15 s).
VERDICT_TIME = 13.5
#: The least time worth giving a retry's lookup (through working tunnels it takes well under
#: a second on the test network).
MIN_LOOKUP_TIME = 2.0


@dataclass(frozen=True)
class YoungDestinationRetry:
    """When a young destination's "not found" is looked up again (sans-IO: times are passed in).

    ``retry_window``: retries after the first start at most this many seconds after the first
    lookup began (None: no bound); the first retry is exempt, since a first lookup that timed
    out on every floodfill may alone use the window. ``verdict_time``: each retry, pause plus
    at least ``min_lookup``, must end this soon after the first lookup began (None: no bound
    but the caller's timeout).
    """

    young_for: float = YOUNG_SECONDS
    delays: tuple[float, ...] = RETRY_DELAYS
    retry_window: float | None = RETRY_WINDOW
    verdict_time: float | None = VERDICT_TIME
    min_lookup: float = MIN_LOOKUP_TIME

    def __post_init__(self) -> None:
        if not self.delays or min(self.delays) < 0:
            raise ValueError("delays must be a non-empty tuple of non-negative seconds")

    def is_young(self, age: float | None) -> bool:
        """Whether a destination whose session became ready ``age`` s ago is still young
        (None: no session, nothing to wait for)."""
        return age is not None and 0 <= age < self.young_for

    def time_left(self, elapsed: float, remaining: float | None = None) -> float | None:
        """Seconds a retry may still use (pause and lookup): to the verdict time and the
        caller's timeout (``remaining``); None when neither bounds it."""
        bounds = [b for b in (remaining,) if b is not None]
        if self.verdict_time is not None:
            bounds.append(self.verdict_time - elapsed)
        return min(bounds) if bounds else None

    def retry_delay(
        self,
        *,
        age: float | None,
        attempt: int,
        elapsed: float,
        remaining: float | None = None,
    ) -> float | None:
        """Seconds to wait before looking up again, or None to believe the "not found".

        ``age``: the destination's age when the failed lookup began; ``attempt``: retries made
        so far; ``elapsed``: seconds since the first lookup began; ``remaining``: seconds left
        of the caller's timeout (None: no timeout).
        """
        if not self.is_young(age):
            return None
        delay = self.delays[min(attempt, len(self.delays) - 1)]
        if attempt > 0 and self.retry_window is not None and elapsed + delay > self.retry_window:
            return None
        left = self.time_left(elapsed, remaining)
        if left is not None and left < delay + self.min_lookup:
            return None
        return delay


#: The rule both dialers use.
YOUNG_RETRY = YoungDestinationRetry()
