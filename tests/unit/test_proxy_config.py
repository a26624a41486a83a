"""Settings precedence (file < environment < flags) and the exposure check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from i2proxy.config import Config, ConfigError, load_config
from i2proxy.proxy.cli import register


def test_flags_beat_environment_beat_file(tmp_path):
    path = tmp_path / "i2proxy.toml"
    path.write_text(
        'router = "sam://127.0.0.1:1"\nhttp_listen = "127.0.0.1:1"\nsocks_listen = "127.0.0.1:2"\n'
        'users = { alice = "pw" }\nallow = ["10.0.0.0/8"]\nsyn_window_ms = 50\n'
    )
    env = {"I2PROXY_HTTP_LISTEN": "127.0.0.1:3", "I2PROXY_ROUTER": "sam://127.0.0.1:4"}
    config = load_config(config_file=path, env=env, overrides={"router": "i2cp://127.0.0.1:5"})
    assert config.router == "i2cp://127.0.0.1:5"
    assert config.http_listen == "127.0.0.1:3"
    assert config.socks_listen == "127.0.0.1:2"
    assert config.users == {"alice": "pw"}
    assert config.allow == ["10.0.0.0/8"]
    assert config.syn_window_ms == 50


def test_environment_lists_users_and_booleans():
    env = {
        "I2PROXY_USERS": "alice:pw,bob:x:y",
        "I2PROXY_ALLOW": "10.0.0.0/8, 192.168.0.0/16",
        "I2PROXY_SEND_USER_AGENT": "yes",
    }
    config = load_config(env=env)
    assert config.users == {"alice": "pw", "bob": "x:y"}
    assert config.allow == ["10.0.0.0/8", "192.168.0.0/16"]
    assert config.send_user_agent is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope = 1", "unknown setting"),
        ('max_clients = "x"', "max_clients"),
        ('http_listen = "4444"', "HOST:PORT"),
        ('allow = ["not-a-net"]', "allow"),
        ("broken = [", "config file"),
        ('users = { alice = "" }', "empty password"),
        ("max_pending = 0", "max_pending"),
        ("auth_timeout = 0", "auth_timeout"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(config_file=path, env={})


def test_an_empty_password_is_refused_from_the_environment_and_flags_too():
    with pytest.raises(ConfigError, match="empty password"):
        load_config(env={"I2PROXY_USERS": "alice:"})
    with pytest.raises(ConfigError, match="empty password"):
        load_config(env={}, overrides={"users": "alice:"})


def test_lan_bind_without_users_or_allow_list_is_refused_with_the_options():
    config = Config(http_listen="0.0.0.0:4444")
    with pytest.raises(ConfigError) as info:
        config.check_exposure()
    assert "--user" in str(info.value)
    assert "--allow" in str(info.value)
    Config(http_listen="0.0.0.0:4444", users={"a": "b"}).check_exposure()
    Config(http_listen="[::]:4444", allow=["192.168.0.0/16"]).check_exposure()
    Config(http_listen="[::1]:4444").check_exposure()


def test_run_flags_map_to_settings():
    import argparse

    from i2proxy.proxy.cli import _overrides

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["run", "--http", "127.0.0.1:1", "--user", "a:b", "--user", "c:d", "--allow", "::1/128"]
    )
    config = load_config(env={}, overrides=_overrides(args))
    assert config.http_listen == "127.0.0.1:1"
    assert config.users == {"a": "b", "c": "d"}
    assert config.allow == ["::1/128"]


def test_lan_bind_refused_by_the_run_command():
    proc = subprocess.run(
        [sys.executable, "-m", "i2proxy", "run", "--http", "0.0.0.0:0", "--socks", ""],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "reachable from other machines" in proc.stderr


def test_persistent_client_destination_lives_in_the_data_dir(tmp_path):
    from i2proxy.proxy.cli import make_dialer

    config = Config(router="i2cp://127.0.0.1:7654", data_dir=str(tmp_path), persistent=True)
    first = make_dialer(config).destination
    second = make_dialer(config).destination
    assert first == second
    key_file = tmp_path / "client-destination.keys"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_by_default_each_run_has_a_new_destination_and_writes_no_key(tmp_path):
    from i2proxy.proxy.cli import make_dialer

    config = Config(router="i2cp://127.0.0.1:7654", data_dir=str(tmp_path))
    assert make_dialer(config).destination != make_dialer(config).destination
    assert not any(tmp_path.iterdir())


def test_a_keys_file_implies_a_persistent_destination(tmp_path):
    from i2proxy.proxy.cli import client_keys

    config = Config(router="sam://127.0.0.1:7656", data_dir=str(tmp_path))
    assert client_keys(config) is None
    config.keys_file = str(tmp_path / "mine.keys")
    assert client_keys(config) == str(tmp_path / "mine.keys")


# --------------------------------------------------------------------------- session options


def test_no_tunnel_settings_leave_the_router_defaults():
    assert load_config(env={}).session_options() == {}


def test_hops_quantity_and_backups_expand_to_both_directions_and_options_win():
    config = load_config(
        env={},
        overrides={
            "hops": 1,
            "quantity": 3,
            "backup_quantity": 0,
            "options": ["inbound.length=0", "i2cp.leaseSetEncType=4,0", "i2p.streaming.x=a=b"],
        },
    )
    assert config.session_options() == {
        "inbound.length": "0",
        "outbound.length": "1",
        "inbound.quantity": "3",
        "outbound.quantity": "3",
        "inbound.backupQuantity": "0",
        "outbound.backupQuantity": "0",
        "i2cp.leaseSetEncType": "4,0",
        "i2p.streaming.x": "a=b",
    }


def test_options_from_file_environment_and_flags_merge_key_by_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'hops = 2\n[options]\n"inbound.length" = 1\n"i2cp.fastReceive" = true\n'
        '"outbound.quantity" = "4"\n'
    )
    env = {
        "I2PROXY_OPTIONS": "i2cp.leaseSetEncType=4,0, outbound.quantity=2",
        "I2PROXY_HOPS": "3",
        "I2PROXY_QUANTITY": "",
    }
    config = load_config(config_file=path, env=env, overrides={"options": ["outbound.quantity=5"]})
    assert config.hops == 3 and config.quantity is None
    assert config.options == {
        "inbound.length": "1",
        "i2cp.fastReceive": "true",
        "outbound.quantity": "5",
        "i2cp.leaseSetEncType": "4,0",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hops": 8}, "hops: 8 is not between 0 and 7"),
        ({"hops": -1}, "hops"),
        ({"quantity": 0}, "quantity"),
        ({"backup_quantity": 17}, "backup_quantity"),
        ({"options": ["router.blah=1"]}, "only inbound"),
        ({"options": ["inbound.nickname=two words"]}, "without spaces"),
        ({"options": ['i2cp.x="q"']}, "without spaces or quotes"),
        ({"options": ["inbound.length="]}, "value must be"),
        ({"options": ["noequals"]}, "KEY=VALUE"),
        ({"options": ["i2cp.x=" + "v" * 300]}, "value up to 256"),
        ({"options": [f"i2cp.o{i}=1" for i in range(65)]}, "at most 64"),
        ({"hops": "three"}, "hops"),
    ],
)
def test_bad_session_options_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, overrides=overrides)


def test_run_flags_for_tunnels_reach_the_dialer():
    import argparse

    from i2proxy.proxy.cli import _overrides, make_dialer

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "run",
            "--router",
            "sam://127.0.0.1:1",
            "--hops",
            "1",
            "--backup-quantity",
            "1",
            "--option",
            "inbound.length=0",
            "--option",
            "i2p.streaming.connectDelay=0",
        ]
    )
    config = load_config(env={}, overrides=_overrides(args))
    sam = make_dialer(config)
    assert sam.client.options["inbound.length"] == "0"
    assert sam.client.options["outbound.length"] == "1"
    assert sam.client.options["outbound.backupQuantity"] == "1"
    assert sam.client.options["i2p.streaming.connectDelay"] == "0"  # Java's SAM reads it
    config.router = "i2cp://127.0.0.1:1"
    native = make_dialer(config)
    assert native.client.options["inbound.length"] == "0"
    assert native.client.options["i2cp.fastReceive"] == "true"
    assert "i2p.streaming.connectDelay" not in native.client.options  # our own stack's
    assert native.manager.options.connect_delay == 0


def test_isolation_is_set_per_listener_and_merges_across_sources(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('isolation = {http = "none"}\nmax_destinations = 4\n')
    config = load_config(config_file=path, env={"I2PROXY_ISOLATION": "socks=user"}, overrides={})
    assert config.isolation == {"http": "none", "socks": "user", "mixed": "site"}
    assert config.max_destinations == 4
    every = load_config(env={}, overrides={"isolation": ["none"]})
    assert set(every.isolation.values()) == {"none"}
    assert set(load_config(env={}).isolation.values()) == {"site"}
    for bad in ("http=private", "ftp=site"):
        with pytest.raises(ConfigError, match="isolation"):
            load_config(env={"I2PROXY_ISOLATION": bad})
    with pytest.raises(ConfigError, match="max_destinations"):
        load_config(env={"I2PROXY_MAX_DESTINATIONS": "0"})
