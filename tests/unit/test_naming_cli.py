"""`i2proxy addressbook` commands against a temporary data directory."""

from pathlib import Path

import pytest

from i2proxy.cli import main
from i2proxy.naming.feedsign import new_identity

SHARED_HOSTS = Path("/work/shared/data/i2p-default-hosts.txt")


def run(capsys, *argv):
    code = main(["--log-level", "error", "addressbook", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_lookup_reverse_remove(tmp_path, capsys):
    dest = new_identity()[0]
    d = ["--data-dir", str(tmp_path)]
    # "--": an I2P-base64 destination may start with "-".
    assert run(capsys, "add", *d, "Friend.i2p", "--", dest.to_base64())[1] == "friend.i2p: added\n"
    code, out, _ = run(capsys, "lookup", "friend.i2p", *d)
    assert code == 0 and "book: local" in out and dest.b32 in out
    assert run(capsys, "lookup", dest.b32, *d)[1] == "friend.i2p\n"
    assert run(capsys, "lookup", "friend.i2p", "--b64", *d)[1] == dest.to_base64() + "\n"
    code, _, err = run(capsys, "add", *d, f"friend.i2p={new_identity()[0].to_base64()}")
    assert code == 1 and "--replace" in err
    assert run(capsys, "remove", "friend.i2p", *d)[0] == 0
    code, _, err = run(capsys, "lookup", "friend.i2p", *d)
    assert code == 1 and "not in the address book" in err


def test_bad_input_gets_a_clear_error(tmp_path, capsys):
    d = ["--data-dir", str(tmp_path)]
    code, _, err = run(capsys, "add", *d, "bad_name.i2p", "--", new_identity()[0].to_base64())
    assert code == 1 and "illegal character '_'" in err
    code, _, err = run(capsys, "add", "no-destination.i2p", *d)
    assert code == 1 and "NAME=DEST" in err
    code, _, err = run(capsys, "add", "good.i2p", "not-a-destination", *d)
    assert code == 1 and "destination" in err
    code, _, err = run(capsys, "import", str(tmp_path / "missing.txt"), *d)
    assert code == 1 and "No such file" in err
    code, _, err = run(capsys, "list", "--book", "nope", *d)
    assert code == 1 and "unknown book" in err


def test_import_export_list(tmp_path, capsys, monkeypatch):
    if not SHARED_HOSTS.exists():
        pytest.skip("shared hosts file not present")
    monkeypatch.setenv("I2PROXY_DATA_DIR", str(tmp_path))
    code, out, _ = run(capsys, "import", str(SHARED_HOSTS))
    assert code == 0
    assert "added 61" in out and "unchanged 7" in out and "invalid 0" in out
    code, out, _ = run(capsys, "export")
    exported = dict(line.split("=", 1) for line in out.splitlines())
    shared = dict(line.split("=", 1) for line in SHARED_HOSTS.read_text().splitlines())
    assert exported == shared
    out_file = tmp_path / "export.txt"
    assert run(capsys, "export", "--book", "local", "-o", str(out_file))[0] == 0
    assert len(out_file.read_text().splitlines()) == 61
    code, out, _ = run(capsys, "list")
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == 68 and all(r[1].endswith(".b32.i2p") for r in rows)
    assert {r[2] for r in rows} == {"local", "default"}


def test_subscribe_and_unsubscribe(tmp_path, capsys):
    d = ["--data-dir", str(tmp_path)]
    url = "http://feeds.example.i2p/hosts.txt"
    assert run(capsys, "subscribe", url, *d)[1] == f"{url}: subscribed\n"
    assert run(capsys, "subscribe", url, *d)[1] == f"{url}: already subscribed\n"
    code, _, err = run(capsys, "subscribe", "https://example.com/hosts.txt", *d)
    assert code == 1 and "http://" in err
    code, _, err = run(capsys, "subscribe", "http://example.com/hosts.txt", *d)
    assert code == 1 and ".i2p" in err
    code, out, _ = run(capsys, "subscriptions", *d)
    assert url in out
    code, _, err = run(capsys, "update", "--url", "http://other.i2p/x", *d)
    assert code == 1 and "not subscribed" in err
    assert run(capsys, "unsubscribe", url, *d)[0] == 0
    assert url not in run(capsys, "subscriptions", *d)[1]
    assert run(capsys, "unsubscribe", url, *d)[0] == 1
