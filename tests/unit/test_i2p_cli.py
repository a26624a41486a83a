"""``i2proxy keys``: generate, show, import/export, inspect — through the real entry point."""

import json
import os
import stat

from i2proxy.cli import main
from i2proxy.i2p.keyfile import read_key_file
from i2proxy.i2p.keys import PrivateKeys


def test_generate_then_show(tmp_path, capsys):
    path = tmp_path / "k.json"
    assert main(["keys", "generate", str(path)]) == 0
    b32 = capsys.readouterr().out.strip()
    assert b32.endswith(".b32.i2p") and len(b32) == 60
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert main(["keys", "show", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["b32"] == b32
    assert info["sig_type"] == "EDDSA_SHA512_ED25519"
    assert info["crypto_type"] == "ELGAMAL"
    assert info["encryption_keys"] == ["X25519", "ELGAMAL"]


def test_generate_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "k.json"
    path.write_text("precious")
    assert main(["keys", "generate", str(path)]) == 1
    assert "exists" in capsys.readouterr().err
    assert path.read_text() == "precious"


def test_import_i2pd_dat_and_sam_base64_then_export(tmp_path, capsys):
    keys = PrivateKeys.generate()
    dat = tmp_path / "eepsite.dat"
    dat.write_bytes(keys.to_binary())
    sam = tmp_path / "sam.txt"
    sam.write_text(keys.to_sam_base64() + "\n")
    for source in (dat, sam):
        out = tmp_path / f"{source.stem}.json"
        assert main(["keys", "import", str(source), str(out)]) == 0
        assert capsys.readouterr().out.strip() == keys.destination.b32
        assert read_key_file(out).destination == keys.destination
        assert main(["keys", "export-sam", str(out)]) == 0
        assert capsys.readouterr().out.strip() == keys.to_sam_base64()


def test_inspect_a_destination_and_reject_garbage(capsys):
    keys = PrivateKeys.generate()
    assert main(["keys", "inspect", "--", keys.destination.to_base64()]) == 0
    assert f"b32: {keys.destination.b32}" in capsys.readouterr().out
    assert main(["keys", "inspect", "AAAA"]) == 1
    assert "destination" in capsys.readouterr().err


def test_inspect_a_destination_that_starts_with_a_dash(capsys):
    # I2P's base64 alphabet has '-': one destination in 64 starts with it, which argparse takes
    # for an option unless it follows '--' (a CI run failed on such a random key).
    keys = next(k for k in iter(PrivateKeys.generate, None) if k.destination.to_base64()[0] == "-")
    assert main(["keys", "inspect", "--", keys.destination.to_base64()]) == 0
    assert f"b32: {keys.destination.b32}" in capsys.readouterr().out


def test_show_reports_a_damaged_file(tmp_path, capsys):
    path = tmp_path / "bad.dat"
    path.write_bytes(b"\x00" * 100)
    assert main(["keys", "show", str(path)]) == 1
    assert "need" in capsys.readouterr().err
