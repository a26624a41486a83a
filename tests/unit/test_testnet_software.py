"""Which router software runs where: mixes, versions, where the binaries are found."""

from __future__ import annotations

import zipfile

import pytest

from testnet import software
from testnet.network import NetworkConfig, TestnetError
from testnet.software import I2PD_NEW, I2PD_OLD, i2pd_versions

NEW, OLD = I2PD_NEW, I2PD_OLD


def test_default_network_is_mixed_with_one_java_router():
    config = NetworkConfig()
    assert (config.mix, config.java, config.routers, config.floodfills) == ("mixed", 1, 6, 2)
    assert (config.proxy_router, config.eepsite_router) == (2, 4)
    # Floodfills on 2.58 (2.58 uses no floodfill older than 0.9.59); the proxy router, the
    # eepsite's router and client router 3 as before; one more client router on 2.58.
    assert config.i2pd_versions() == [NEW, NEW, OLD, OLD, OLD, NEW]
    assert config.prerequisites() == {"i2pd_old": True, "i2pd_new": True, "java": True}


def test_the_restartable_router_is_the_client_router_and_never_a_service_router():
    assert NetworkConfig().restartable_router == 3
    assert NetworkConfig(routers=4, floodfills=1).restartable_router == 2
    # Three routers, one floodfill: router 2 is the eepsite's, so none may be restarted.
    assert NetworkConfig(routers=3, floodfills=1).restartable_router is None
    assert NetworkConfig(routers=2, floodfills=1).restartable_router is None


@pytest.mark.parametrize(
    "routers, floodfills, expected",
    [
        (5, 2, [NEW, NEW, OLD, NEW, OLD]),
        (4, 1, [NEW, OLD, NEW, OLD]),
        (2, 1, [NEW, OLD]),
        (8, 2, [NEW, NEW, OLD, OLD, OLD, OLD, OLD, NEW]),
    ],
)
def test_mixed_keeps_every_floodfill_on_258_and_some_router_on_2451(routers, floodfills, expected):
    config = NetworkConfig(routers=routers, floodfills=floodfills)
    assert config.i2pd_versions() == expected
    assert OLD in expected


def test_uniform_mixes():
    args = {"routers": 4, "floodfills": 1, "proxy_router": 1, "eepsite_router": 3}
    assert i2pd_versions("all-2.45", **args) == [OLD] * 4
    assert i2pd_versions("all-2.58", **args) == [NEW] * 4
    with pytest.raises(ValueError, match="unknown mix"):
        i2pd_versions("all-2.99", **args)
    old_only = NetworkConfig(mix="all-2.45", java=0).prerequisites()
    assert old_only == {"i2pd_old": True, "i2pd_new": False, "java": False}


@pytest.mark.parametrize(
    "config, message",
    [
        (NetworkConfig(mix="newest"), "--mix must be one of mixed, all-2.45, all-2.58"),
        (NetworkConfig(java=5), "--java must be between 0 and 4"),
        (NetworkConfig(java=-1), "--java must be between 0 and 4"),
    ],
)
def test_invalid_configs_say_why(config, message):
    with pytest.raises(TestnetError, match=message):
        config.validate()


def test_eepsite_router_keeps_its_place_two_after_the_proxy_router():
    assert NetworkConfig(routers=5).eepsite_router == 4
    assert NetworkConfig(routers=4, floodfills=1).eepsite_router == 3
    assert NetworkConfig(routers=3, floodfills=1).eepsite_router == 2
    assert NetworkConfig(routers=2, floodfills=1).eepsite_router == 0


def test_i2pd_258_is_found_by_env_var_and_missing_ones_are_named(tmp_path, monkeypatch):
    binary = tmp_path / "i2pd-2.58.0"
    binary.write_text("#!/bin/sh\necho 'i2pd version 2.58.0 (0.9.67)'\n")
    binary.chmod(0o755)
    monkeypatch.setenv(software.I2PD_258_ENV, str(binary))
    assert software.find_i2pd_new() == str(binary)
    assert software.i2pd_version(str(binary)) == "2.58.0"
    monkeypatch.setenv(software.I2PD_258_ENV, str(tmp_path / "absent"))
    monkeypatch.setenv(software.JAVA_DIST_ENV, str(tmp_path / "absent"))
    monkeypatch.setattr(software.shutil, "which", lambda name: None)
    problems = " ".join(software.missing_software(i2pd_old=False, i2pd_new=True, java=True))
    for needed in ("i2pd 2.58.0", software.I2PD_258_ENV, "openjdk-17-jre-headless",
                   "Java I2P 2.7.0", software.JAVA_DIST_ENV):  # fmt: skip
        assert needed in problems
    assert software.missing_software(i2pd_old=False, i2pd_new=False, java=False) == []


def test_java_version_comes_from_router_jar_manifest(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    with zipfile.ZipFile(tmp_path / "lib" / "router.jar", "w") as jar:
        jar.writestr(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\nSpecification-Version: 0.9.64\n"
            "Implementation-Version: 2.7.0-4\n",
        )
    monkeypatch.setenv(software.JAVA_DIST_ENV, str(tmp_path))
    assert software.find_java_dist() == tmp_path
    assert software.java_i2p_version(tmp_path) == "2.7.0"
