"""Subscriptions: fetch every feed over I2P on a schedule and merge it into its book.

The schedule is a sans-IO function of the stored state and ``now``; the manager is the thin
asyncio part. Differences from i2pd on purpose: a 304 is a success (i2pd retries it every few
minutes), every subscription is polled (not one random one per tick), failures back off
exponentially, and big feeds are parsed and verified in a worker thread so proxying never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from i2proxy.log import get_logger
from i2proxy.naming.fetch import DEFAULT_MAX_FEED_BYTES, FeedError, fetch_feed, make_session
from i2proxy.naming.hoststxt import HostsEntry, parse_document, split_lines
from i2proxy.naming.merge import MergeStats, check_entry

if TYPE_CHECKING:
    import aiohttp

    from i2proxy.dialer.base import Dialer
    from i2proxy.naming.addressbook import AddressBook

log = get_logger("i2proxy.naming.subscriptions")

#: Success interval (Java I2P and i2pd: 12 h).
DEFAULT_INTERVAL = 12 * 3600.0
#: Spread of the success interval, so routers that started together do not poll together.
INTERVAL_JITTER = 0.1
#: First fetch after start: let the router build tunnels first (i2pd waits 3 min).
DEFAULT_FIRST_DELAY = 180.0
FIRST_DELAY_JITTER = 60.0
#: Failure backoff: 5 min, 10, 20, ... capped at the success interval.
BACKOFF_BASE = 300.0
#: Entries applied between two yields to the event loop.
APPLY_BATCH = 2000


@dataclass(frozen=True)
class ScheduleConfig:
    interval: float = DEFAULT_INTERVAL
    first_delay: float = DEFAULT_FIRST_DELAY
    backoff_base: float = BACKOFF_BASE


def next_due(
    state: dict[str, Any],
    *,
    now: float,
    started_at: float,
    config: ScheduleConfig,
    rng: random.Random,
) -> float:
    """When a subscription should be fetched next (wall-clock seconds), from its stored state.

    Never before ``started_at + first_delay``; after a success ``interval`` (±10 %) later;
    after ``n`` consecutive failures ``backoff_base * 2**(n-1)`` (capped at ``interval``) later.
    """
    jitter = min(FIRST_DELAY_JITTER, config.first_delay / 3)
    earliest = started_at + config.first_delay + rng.uniform(0, jitter)
    failures = int(state.get("failures", 0) or 0)
    last_attempt = float(state.get("last_attempt", 0) or 0)
    last_success = float(state.get("last_success", 0) or 0)
    if failures > 0 and last_attempt:
        delay = min(config.backoff_base * 2 ** (failures - 1), config.interval)
        due = last_attempt + delay * rng.uniform(0.9, 1.1)
    elif last_success:
        due = last_success + config.interval * rng.uniform(1 - INTERVAL_JITTER, 1 + INTERVAL_JITTER)
    else:
        due = now
    return max(due, earliest)


@dataclass
class UpdateOutcome:
    """What one subscription run did (for logs and the CLI summary)."""

    url: str
    #: "updated", "not-modified" or "failed".
    result: str
    http_status: int | None = None
    size: int = 0
    elapsed: float = 0.0
    error: str | None = None
    stats: MergeStats = field(default_factory=MergeStats)


Checked = list[tuple[HostsEntry, str | None]]


def _check_all(data: bytes, url: str, now: float) -> tuple[Checked, MergeStats]:
    """Phase 1 (worker thread): parse and verify every line of a feed."""
    stats = MergeStats(source=url)
    entries = parse_document(split_lines(data), stats.parse)
    return [(e, check_entry(e, now=now)) for e in entries], stats


Progress = Callable[[str, str, dict[str, Any]], None]


class SubscriptionManager:
    """Runs the subscriptions of an AddressBook in the background through a Dialer."""

    def __init__(
        self,
        book: AddressBook,
        dialer: Dialer,
        *,
        config: ScheduleConfig | None = None,
        max_bytes: int = DEFAULT_MAX_FEED_BYTES,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.dialer = dialer
        self.config = config or ScheduleConfig()
        self.max_bytes = max_bytes
        self._rng = rng or random.Random()
        self._clock = clock
        self._started_at = clock()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._run_lock = asyncio.Lock()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = make_session(self.dialer, self.book.lookup)
        return self._session

    # --- one subscription ---------------------------------------------------------------------

    async def update_one(self, url: str, progress: Progress | None = None) -> UpdateOutcome:
        """Fetch ``url`` now (conditional GET) and merge it; never raises for feed problems."""
        async with self._run_lock:
            return await self._update_one(url, progress)

    async def _update_one(self, url: str, progress: Progress | None) -> UpdateOutcome:
        notify = progress or (lambda *_: None)
        state = self.book.subscription_state(url)
        started = time.monotonic()
        now = self._clock()
        state["last_attempt"] = now
        notify(url, "fetching", {})
        try:
            result = await fetch_feed(
                self._get_session(),
                url,
                etag=state.get("etag"),
                last_modified=state.get("last_modified"),
                max_bytes=self.max_bytes,
            )
        except FeedError as exc:
            state["failures"] = int(state.get("failures", 0) or 0) + 1
            state["last_error"] = str(exc)
            await self._save()
            outcome = UpdateOutcome(
                url, "failed", error=str(exc), elapsed=time.monotonic() - started
            )
            log.warning(
                "subscription.failed",
                feed=self._feed_number(url),
                error=_error_summary(exc),
                failures=state["failures"],
            )
            log.debug("subscription.failed", url=url, error=str(exc))
            notify(url, "failed", {"error": str(exc)})
            return outcome
        outcome = UpdateOutcome(url, "not-modified", http_status=result.status)
        if result.not_modified:
            outcome.stats = MergeStats(source=url)
        else:
            body = result.body or b""
            outcome.result, outcome.size = "updated", len(body)
            notify(url, "merging", {"bytes": len(body)})
            outcome.stats = await self.merge_body(url, body, now=now)
        # The validators are stored only together with the merged book (one save, books first):
        # a crash in between re-fetches the feed instead of skipping it forever.
        state["etag"] = result.etag
        state["last_modified"] = result.last_modified
        state["last_success"] = now
        state["failures"] = 0
        state.pop("last_error", None)
        state["last_result"] = {"status": result.status, **outcome.stats.summary()}
        await self._save()
        outcome.elapsed = time.monotonic() - started
        log.debug("subscription.done", url=url)
        log.info(
            "subscription.done",
            feed=self._feed_number(url),
            status=result.status,
            bytes=outcome.size,
            seconds=round(outcome.elapsed, 2),
            **outcome.stats.summary(),
        )
        notify(url, outcome.result, {"stats": outcome.stats})
        return outcome

    def _feed_number(self, url: str) -> int:
        """The feed's line in subscriptions.txt (1-based; 0 if gone): names it in the default
        log without its URL, which may be a private feed or name a visited site."""
        urls = list(self.book.subscription_urls)
        return urls.index(url) + 1 if url in urls else 0

    async def merge_body(self, url: str, body: bytes, *, now: float) -> MergeStats:
        """Merge a fetched feed without stalling the event loop.

        Parsing and signature checks run in a worker thread; entries are applied in batches with
        a yield in between; finally the books are frozen out of the garbage collector's scans.
        """
        checked, stats = await asyncio.to_thread(_check_all, body, url, now)
        if any(e.action == "removeall" and r is None for e, r in checked):
            # removeall needs the reverse indexes; build them off the loop, not in apply.
            await asyncio.to_thread(self.book.build_reverse_indexes)
        for i in range(0, len(checked), APPLY_BATCH):
            self.book.apply_checked(checked[i : i + APPLY_BATCH], into=url, stats=stats)
            await asyncio.sleep(0)
        self.book.log_merge(stats)
        self.book.freeze_if_large()
        return stats

    async def _save(self) -> None:
        snapshot = self.book.snapshot_for_save()
        await asyncio.to_thread(self.book.write_snapshot, snapshot)

    async def update_all(self, progress: Progress | None = None) -> list[UpdateOutcome]:
        """Run every subscription now, one after the other (the CLI's ``update``)."""
        return [await self.update_one(url, progress) for url in self.book.subscription_urls]

    # --- background ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background schedule (first run a few minutes after start)."""
        if self._task is None or self._task.done():
            self._started_at = self._clock()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="addressbook-subscriptions"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def due_times(self) -> dict[str, float]:
        now = self._clock()
        return {
            url: next_due(
                self.book.subscription_state(url),
                now=now,
                started_at=self._started_at,
                config=self.config,
                rng=self._rng,
            )
            for url in self.book.subscription_urls
        }

    async def _run(self) -> None:
        due = self.due_times()
        while True:
            try:
                self.book.refresh()  # pick up books and feeds the CLI changed meanwhile
                for url in list(due):
                    if url not in self.book.subscription_urls:
                        del due[url]
                now = self._clock()
                ready = [url for url, t in due.items() if t <= now]
                for url in ready:
                    await self.update_one(url)
                    due[url] = next_due(
                        self.book.subscription_state(url),
                        now=self._clock(),
                        started_at=self._started_at,
                        config=self.config,
                        rng=self._rng,
                    )
                for url in self.book.subscription_urls:
                    due.setdefault(url, self._clock())
                wait = min(due.values(), default=self._clock() + 60) - self._clock()
                await asyncio.sleep(min(max(wait, 1.0), 60.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the schedule or the proxy
                log.exception("subscription.loop_error")
                await asyncio.sleep(60.0)


def _error_summary(exc: FeedError) -> str:
    """The failure without the host and URL that aiohttp's messages carry."""
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else str(exc)


def start_subscriptions(book: AddressBook | None, dialer: Dialer) -> SubscriptionManager | None:
    """Start background feed fetching for a running proxy (None without a book).

    Environment: ``I2PROXY_SUBSCRIPTIONS=off`` disables it (offline set-ups, or a user who only
    wants the names they add); ``I2PROXY_SUBSCRIPTIONS_DELAY=SECONDS`` sets the first fetch's
    delay after start (default 180 s, so the router has built tunnels).
    """
    if book is None or os.environ.get("I2PROXY_SUBSCRIPTIONS", "").lower() in ("off", "0", "no"):
        return None
    config = ScheduleConfig()
    delay = os.environ.get("I2PROXY_SUBSCRIPTIONS_DELAY")
    if delay:
        try:
            config = ScheduleConfig(first_delay=max(0.0, float(delay)))
        except ValueError:
            log.warning("subscriptions.bad_delay", value=delay)
    manager = SubscriptionManager(book, dialer, config=config)
    manager.start()
    log.info(
        "subscriptions.scheduled",
        feeds=len(book.subscription_urls),
        first_delay=config.first_delay,
    )
    return manager
