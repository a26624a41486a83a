"""Subscriptions on the private network: a feed served by the demo eepsite (an aiohttp server behind
an i2pd server tunnel) is fetched through i2proxy's own dialers, a conditional GET gives 304 on the
second fetch, and the new names then resolve and can be dialed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.feedsign import new_identity, sign_line
from i2proxy.naming.subscriptions import SubscriptionManager

pytestmark = pytest.mark.integration
# The `testnet` fixture arrives with the test-network package; skip cleanly until then.
pytest.importorskip("testnet.status")

REPO = Path(__file__).resolve().parents[2]
SIGNED = 12


def _router_for_client(testnet):
    """A router other than the eepsite's, so every fetch crosses the network (a non-floodfill
    i2pd 2.45.1 router of the mixed network)."""
    return testnet.client_router("i2pd", "2.45.1")


def _make_dialer(backend: str, testnet, data_dir: Path):
    router = _router_for_client(testnet)
    if backend == "i2cp":
        from i2proxy.dialer.native import NativeDialer

        host, port = router.i2cp_host_port
        return NativeDialer.from_data_dir(data_dir, host, port)
    try:
        from i2proxy.dialer.sam import SAMDialer
    except ImportError:
        pytest.skip("SAM dialer not available yet")
    host, port = router.sam_host_port
    return SAMDialer(host, port)


def _write_feed(www_dir: Path, site_name: str, eepsite_dest: str) -> tuple[Path, list[str]]:
    """A feed: the eepsite under a new name, signed entries of several key types, two bad lines."""
    lines = ["# test feed", f"{site_name}={eepsite_dest}"]
    names = [site_name]
    for i in range(SIGNED):
        sig_type = (7, 1, 0)[i % 3]  # Ed25519, ECDSA-P256, DSA
        dest, key = new_identity(sig_type)
        name = f"signed{i}-{uuid.uuid4().hex[:6]}.i2p"
        lines.append(sign_line(name, dest.to_base64(), key, date="1700000000"))
        names.append(name)
    forged_dest, _ = new_identity()
    _, stranger = new_identity()
    lines.append(sign_line("forged-entry.i2p", forged_dest.to_base64(), stranger))
    lines.append("this line is not hosts.txt")
    path = www_dir / f"feed-{uuid.uuid4().hex}.txt"
    path.write_text("\r\n".join(lines) + "\r\n")
    return path, names


def _forbid_dns(monkeypatch) -> None:
    """Any name resolution during the test fails it: feeds travel over I2P only."""

    def no_dns(*args, **kwargs):
        raise AssertionError(f"DNS lookup attempted: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    loop = asyncio.get_running_loop()

    async def no_loop_dns(*args, **kwargs):
        raise AssertionError(f"DNS lookup attempted: {args[:2]}")

    monkeypatch.setattr(loop, "getaddrinfo", no_loop_dns)


async def _http_get_over(dialer, target, port: int, host: str) -> bytes:
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    reader, writer = await dialer.open_stream(target, port, request, timeout=120)
    try:
        data = await asyncio.wait_for(reader.read(1 << 20), 120)
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 120):
            data += chunk
    finally:
        writer.close()
    return data


@pytest.mark.parametrize("backend", ["i2cp", "sam"])
async def test_feed_from_an_eepsite_is_fetched_over_i2p_with_conditional_get(
    testnet, tmp_path, backend, monkeypatch
):
    eep = testnet.eepsite
    site_name = f"newsite-{uuid.uuid4().hex[:8]}.i2p"
    feed_path, names = _write_feed(Path(eep.www_dir), site_name, eep.destination)
    url = f"http://{eep.b32}/files/{feed_path.name}"
    book = AddressBook.open(tmp_path / "data", subscriptions=[url])
    assert book.lookup(site_name) is None

    dialer = _make_dialer(backend, testnet, tmp_path / "keys")
    await asyncio.wait_for(dialer.start(), 180)
    _forbid_dns(monkeypatch)
    manager = SubscriptionManager(book, dialer)
    try:
        first = await manager.update_one(url)
        assert first.result == "updated", first.error
        assert first.http_status == 200
        assert first.stats.added == 1 + SIGNED
        assert first.stats.invalid == {"bad-signature": 1}
        assert first.stats.parse.invalid == {"not-name-dest": 1}

        second = await manager.update_one(url)
        assert second.result == "not-modified", second.error
        assert second.http_status == 304

        # The new names resolve; the eepsite's name leads to the eepsite.
        for name in names:
            assert book.lookup(name) is not None, name
        assert book.lookup("forged-entry.i2p") is None
        target = book.lookup(site_name)
        assert target.to_base64() == eep.destination
        assert book.reverse(eep.b32) == site_name
        page = await _http_get_over(dialer, target, eep.port, site_name)
        assert page.startswith(b"HTTP/1.1 200") and b"i2proxy demo eepsite" in page

        # A changed feed is fetched again (new ETag) and merged incrementally.
        extra_dest, extra_key = new_identity()
        with feed_path.open("a") as f:
            f.write(sign_line("late-entry.i2p", extra_dest.to_base64(), extra_key) + "\n")
        third = await manager.update_one(url)
        assert third.result == "updated" and third.http_status == 200, third.error
        assert third.stats.added == 1 and third.stats.unchanged == 1 + SIGNED
        assert book.lookup("late-entry.i2p") == extra_dest

        # A feed addressed by a book name (not a b32) goes through the same path.
        book.add("feeds.i2p", eep.destination)
        by_name = f"http://feeds.i2p/files/{feed_path.name}"
        fourth = await manager.update_one(by_name)
        assert fourth.result == "updated", fourth.error
        assert fourth.stats.added == 0 and fourth.stats.unchanged == 2 + SIGNED

        # A feed larger than the cap is refused (and counted as a failure), not merged.
        big = Path(eep.www_dir) / f"big-{uuid.uuid4().hex}.txt"
        big.write_bytes(os.urandom(256 * 1024))  # incompressible: gzip cannot hide the size
        try:
            manager.max_bytes = 64 * 1024
            capped = await manager.update_one(f"http://{eep.b32}/files/{big.name}")
        finally:
            manager.max_bytes = 16 * 1024 * 1024
            big.unlink(missing_ok=True)
        assert capped.result == "failed" and "65536" in capped.error, capped.error

        # Hosts outside I2P are refused before anything is sent.
        refused = await manager.update_one("http://example.com/hosts.txt")
        assert refused.result == "failed" and "not an .i2p host" in refused.error
    finally:
        await manager.close()
        await dialer.close()
        feed_path.unlink(missing_ok=True)

    # Everything survived a restart: books and the validators for the next conditional GET.
    again = AddressBook.open(tmp_path / "data", subscriptions=[url])
    assert again.lookup(site_name).to_base64() == eep.destination
    assert again.subscription_state(url)["etag"]
    assert again.subscription_state(url)["failures"] == 0


def test_cli_update_fetches_and_lookup_resolves(testnet, tmp_path):
    pytest.importorskip("i2proxy.dialer.select")
    eep = testnet.eepsite
    site_name = f"clisite-{uuid.uuid4().hex[:8]}.i2p"
    feed_path, _names = _write_feed(Path(eep.www_dir), site_name, eep.destination)
    url = f"http://{eep.b32}/files/{feed_path.name}"
    data_dir = tmp_path / "data"
    router = _router_for_client(testnet)
    env = {**os.environ, "I2PROXY_DATA_DIR": str(data_dir)}

    def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "i2proxy", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    try:
        proc = cli("addressbook", "subscribe", url)
        assert proc.returncode == 0 and "subscribed" in proc.stdout, proc.stderr
        update = ("addressbook", "update", "--router", f"sam://{router.sam}", "--url", url)
        proc = cli("--log-level", "warning", *update, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"added {1 + SIGNED}" in proc.stdout, proc.stdout
        assert "invalid 2" in proc.stdout, proc.stdout
        proc = cli("addressbook", "lookup", site_name)
        assert proc.returncode == 0, proc.stderr
        assert eep.b32 in proc.stdout and f"book: {url}" in proc.stdout
    finally:
        feed_path.unlink(missing_ok=True)


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "90", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class _RunProcess:
    """``i2proxy run`` with subscriptions on (first fetch 1 s after start), logging JSON."""

    def __init__(self, router_url: str, data_dir: Path) -> None:
        self.http, self.socks = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "run.log"
        self.argv = [sys.executable, "-m", "i2proxy", "--log-json", "run", "--router",
                     router_url, "--http", self.http, "--socks", self.socks,
                     "--data-dir", str(data_dir)]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "I2PROXY_SUBSCRIPTIONS": "on", "I2PROXY_SUBSCRIPTIONS_DELAY": "1"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 150
        while b'"i2proxy ready"' not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"i2proxy run did not start:\n{self.log_path.read_text()}")
            time.sleep(0.2)

    def log_events(self) -> list[dict]:
        events = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_subscription_outcome(proxy: _RunProcess, *, deadline: float) -> dict:
    """The first subscription.done or subscription.failed event of ``proxy``, or {} at deadline."""
    while time.monotonic() < deadline:
        for event in proxy.log_events():
            if event.get("event") in ("subscription.done", "subscription.failed"):
                return event
        time.sleep(0.5)
    return {}


@pytest.mark.timeout(720)  # two attempts of up to 240 s each, see below
def test_running_proxy_fetches_its_subscription_and_serves_the_new_names(testnet, tmp_path):
    """`i2proxy run` fetches the feed in the background through its own dialer; the new names
    then work through its SOCKS5 and HTTP proxies (curl as the client)."""
    eep = testnet.eepsite
    site_name = f"runsite-{uuid.uuid4().hex[:8]}.i2p"
    feed_path, _names = _write_feed(Path(eep.www_dir), site_name, eep.destination)
    url = f"http://{eep.b32}/files/{feed_path.name}"
    router = _router_for_client(testnet)
    # A second try from a fresh install (new destination) if the first fetch fails: i2pd 2.45.1
    # drops every new-session message from a key whose first reply was lost, for 2 minutes
    # (docs/TESTNET.md), and the failed feed is next polled only after the 5 min backoff.
    for attempt in range(2):
        data_dir = tmp_path / f"data{attempt}"
        (data_dir / "addressbook").mkdir(parents=True)
        (data_dir / "addressbook" / "subscriptions.txt").write_text(f"# test\n{url}\n")
        proxy = _RunProcess(f"i2cp://{router.i2cp}", data_dir)
        proxy.start()
        outcome = _wait_for_subscription_outcome(proxy, deadline=time.monotonic() + 240)
        if outcome.get("event") == "subscription.done" or attempt == 1:
            break
        print(f"first fetch failed ({outcome}); trying again from a fresh install")
        proxy.stop()
    try:
        if outcome.get("event") != "subscription.done":
            raise AssertionError(f"no subscription fetch:\n{proxy.log_path.read_text()[-3000:]}")
        assert outcome["feed"] == 1 and outcome["status"] == 200
        assert outcome["added"] == 1 + SIGNED and outcome["invalid"] == 2

        via_http = _curl("-x", f"http://{proxy.http}", f"http://{site_name}/")
        assert via_http.returncode == 0, via_http.stderr
        assert "i2proxy demo eepsite" in via_http.stdout
        via_socks = _curl("--socks5-hostname", proxy.socks, f"http://{site_name}/")
        assert via_socks.returncode == 0, via_socks.stderr
        assert "i2proxy demo eepsite" in via_socks.stdout
    finally:
        assert proxy.stop() == 0
        feed_path.unlink(missing_ok=True)
    state = AddressBook.open(data_dir).subscription_state(url)
    assert state["etag"] and state["failures"] == 0


async def test_address_helper_save_goes_to_the_local_book_on_disk(testnet, tmp_path):
    """The HTTP proxy's address-helper "save" writes through AddressBook.add into local.txt: the
    name survives a restart and the CLI sees it in the local book."""
    import aiohttp

    from tests.integration.proxy_support import save_with_address_helper

    eep = testnet.eepsite
    name = f"helped-{uuid.uuid4().hex[:8]}.i2p"
    data_dir = tmp_path / "data"
    router = _router_for_client(testnet)
    proxy = _RunProcess(f"i2cp://{router.i2cp}", data_dir)
    proxy.start()
    try:
        async with aiohttp.ClientSession() as session:
            page = await save_with_address_helper(
                session, f"http://{proxy.http}", name, eep.destination
            )
        assert "i2proxy demo eepsite" in page
    finally:
        assert proxy.stop() == 0
    assert AddressBook.open(data_dir).lookup_entry(name) == ("local", eep.destination)
    assert name in (data_dir / "addressbook" / "local.txt").read_text()
