"""testnet CLI errors that need no network."""

from __future__ import annotations

import pytest

from testnet import netns
from testnet.cli import main


@pytest.fixture(autouse=True)
def empty_state(tmp_path, monkeypatch):
    monkeypatch.setenv("I2PROXY_TESTNET_DIR", str(tmp_path))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["status", "--name", "absent"], "no test network named 'absent'"),
        (["down", "--name", "absent"], "no test network named 'absent'"),
        (["delay", "--name", "absent", "50"], "no test network named 'absent'"),
        (["stop-router", "--name", "absent", "1"], "no test network named 'absent'"),
        (["up", "--name", "Bad Name"], "invalid network name"),
        (["up", "--routers", "1"], "--routers must be between 2 and 16"),
        (["up", "--floodfills", "6"], "--floodfills must be at least 1"),
        (["up", "--tunnel-length", "7"], "--tunnel-length must be between 0 and 3"),
        (["up", "--java", "9"], "--java must be between 0 and 4"),
        (["demo", "--routers", "1"], "--routers must be between 2 and 16"),
        (["demo", "--floodfills", "5", "--routers", "5"], "--floodfills must be at least 1"),
    ],
)
def test_errors_are_one_clear_line_and_exit_1(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("testnet: error:")


def test_missing_prerequisites_are_listed_together_with_how_to_get_them(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(netns, "find_i2pd", lambda: None)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    with pytest.raises(netns.MissingPrerequisite) as info:
        netns.check_prerequisites()
    message = str(info.value)
    for needed in ("root", "apt-get install i2pd", "apt-get install iproute2", "nftables",
                   "openjdk-17-jre-headless"):  # fmt: skip
        assert needed in message


def test_a_missing_i2pd_258_is_named_only_when_the_mix_needs_it(monkeypatch, tmp_path):
    monkeypatch.setenv("I2PROXY_TESTNET_I2PD_258", str(tmp_path / "absent"))
    assert any("i2pd 2.58.0" in p for p in netns.missing_prerequisites())
    problems = netns.missing_prerequisites(i2pd_new=False)
    assert not any("2.58" in p for p in problems)


def test_up_without_prerequisites_fails_with_that_message(monkeypatch, capsys):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert main(["up", "--name", "x"]) == 1
    assert "root privileges" in capsys.readouterr().err
