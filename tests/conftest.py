"""Shared pytest set-up: the private I2P network fixture and the "no silent skips in CI" rule.

- ``testnet`` (session): a :class:`~testnet.status.TestnetStatus` of a running network.
  Reuses the network named by ``I2PROXY_TESTNET`` when set; otherwise brings up its own for the
  session and takes it down at the end: the default mixed network (i2pd 2.58.0 floodfills and
  one 2.58 client router, i2pd 2.45.1 elsewhere, one Java I2P 2.7.0 router with -Xmx192m; pick
  routers with ``testnet.client_router("java")``, ``routers_of_kind("i2pd", "2.58")`` …).
  Skips with one message when this machine cannot run one.
- ``testnet_network``: the :class:`~testnet.network.Network` behind it, to stop/start
  routers or change the link delay (``await testnet_network.stop_router(3)``).
- With ``CI=true`` or ``I2PROXY_REQUIRE_TESTNET=1`` a skipped integration test fails the run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from testnet.netns import missing_prerequisites
from testnet.network import Network
from testnet.status import TestnetStatus

REUSE_ENV = "I2PROXY_TESTNET"

# Subprocesses the tests start (`python -m i2proxy ...`, helpers inside the namespace) must import
# this checkout, not whatever copy an editable install elsewhere points at.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p
)


def testnet_required() -> bool:
    """In CI (or when asked) the integration tests must run, not skip."""
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("I2PROXY_REQUIRE_TESTNET") == "1"
    )


def skip_unless_testnet_possible() -> None:
    """Skip the calling test/fixture with ONE message when no test network can run here."""
    problems = missing_prerequisites()
    if problems:
        pytest.skip(
            "private I2P test network unavailable here; missing: "
            + "; ".join(problems)
            + " (./scripts/install-deps installs the packages)"
        )


@pytest.fixture(scope="session")
def testnet():
    name = os.environ.get(REUSE_ENV)
    if name:
        try:
            status = TestnetStatus.load(name)
        except FileNotFoundError as exc:
            pytest.fail(f"{REUSE_ENV}={name}: {exc}")
        yield status
        return
    skip_unless_testnet_possible()
    network = Network(f"pytest-{uuid.uuid4().hex[:8]}")
    status = asyncio.run(network.up())
    try:
        yield status
    finally:
        asyncio.run(network.down())


@pytest.fixture(scope="session")
def testnet_network(testnet: TestnetStatus) -> Network:
    return Network(testnet.name)


# --- a skipped integration test fails the run in CI -----------------------------------------

_skipped_integration: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # An expected failure (xfail) is reported as "skipped" too; it is not a missing network.
    if report.skipped and not hasattr(report, "wasxfail") and "integration" in report.keywords:
        _skipped_integration.append(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if _skipped_integration and testnet_required():
        terminalreporter.section("integration tests skipped", red=True)
        terminalreporter.line(
            f"{len(_skipped_integration)} integration test(s) were skipped, which fails the run "
            "because CI=true or I2PROXY_REQUIRE_TESTNET=1:"
        )
        for nodeid in sorted(set(_skipped_integration)):
            terminalreporter.line(f"  {nodeid}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_integration and testnet_required() and exitstatus in (0, 5):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
