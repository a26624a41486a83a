"""Key files: every format the project reads (ours, i2pd's and Java's binary files, SAM base64)
loads to the same destination, and every bad file is one KeyFileError naming the file and the
format it was read as. (Files a real router wrote: tests/integration/test_key_files.py.)"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from i2proxy.i2p.certificate import Certificate
from i2proxy.i2p.destination import CryptoType, Destination, SigType
from i2proxy.i2p.encryption import EncryptionKey
from i2proxy.i2p.keyfile import (
    MAX_KEY_FILE,
    KeyFileError,
    KeyFormat,
    detect_format,
    keys_from,
    load_or_create_key_file,
    read_key_file,
    save_key_file,
)
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.signing import SigningPrivateKey

BINARY_NAME = r"binary private key file \(i2pd \.dat / Java I2PTunnel\)"


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate()


def _java_legacy_binary() -> tuple[bytes, Destination]:
    """A private key file as Java's I2PTunnel wrote them for years: NULL certificate (DSA-SHA1
    signing, ElGamal crypto), the real ElGamal key pair, a 20-byte DSA key."""
    signing = SigningPrivateKey.generate(SigType.DSA_SHA1)
    elgamal = EncryptionKey.generate(CryptoType.ELGAMAL)
    dest = Destination(elgamal.public, signing.public_bytes(), Certificate.null())
    return dest.to_bytes() + elgamal.private + signing.raw, dest


def _binary_starting_with_brace() -> tuple[bytes, Destination]:
    """An i2pd-style file (random public-key field) whose first byte is ``{`` like JSON."""
    signing = SigningPrivateKey.generate(SigType.ED25519)
    dest = Destination.create(
        sig_type=SigType.ED25519,
        signing_public_key=signing.public_bytes(),
        crypto_type=CryptoType.ELGAMAL,
        crypto_public_key=b"{" + os.urandom(255),
        padding=os.urandom(32) * 3,
    )
    return dest.to_bytes() + os.urandom(256) + signing.raw, dest


# --- every format ---------------------------------------------------------------------------


def test_our_json_file_is_written_0600_atomically_and_reads_back(tmp_path, keys):
    path = tmp_path / "sub" / "keys.json"
    save_key_file(keys, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temp file left
    assert detect_format(path.read_bytes()) is KeyFormat.JSON
    assert read_key_file(path) == keys


def test_saving_replaces_an_existing_file_and_its_mode(tmp_path, keys):
    path = tmp_path / "keys.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    save_key_file(keys, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_key_file(path) == keys


def test_an_i2pd_binary_file_reads_to_the_same_destination(tmp_path, keys):
    path = tmp_path / "eepsite.dat"
    path.write_bytes(keys.to_binary())
    assert detect_format(path.read_bytes()) is KeyFormat.BINARY
    loaded = read_key_file(path)
    assert loaded.destination == keys.destination
    assert loaded.elgamal == keys.elgamal  # the slot held our real ElGamal key


def test_a_java_legacy_dsa_file_with_a_null_certificate_reads(tmp_path):
    raw, dest = _java_legacy_binary()
    path = tmp_path / "privKeys.dat"
    path.write_bytes(raw)
    loaded = read_key_file(path)
    assert loaded.destination == dest
    assert loaded.destination.sig_type == SigType.DSA_SHA1
    assert loaded.destination.verify(b"m", loaded.sign(b"m"))
    assert loaded.to_binary() == raw


@pytest.mark.parametrize("ending", ["", "\n", "\r\n", "  \n\n"])
def test_sam_base64_reads_with_or_without_a_line_ending(tmp_path, keys, ending):
    path = tmp_path / "priv.txt"
    path.write_text(keys.to_sam_base64() + ending)
    assert detect_format(path.read_bytes()) is KeyFormat.SAM_BASE64
    assert read_key_file(path).destination == keys.destination


def test_a_binary_file_that_starts_like_json_still_reads_as_binary(tmp_path):
    raw, dest = _binary_starting_with_brace()
    path = tmp_path / "odd.dat"
    path.write_bytes(raw)
    assert detect_format(raw) is KeyFormat.JSON
    assert read_key_file(path).destination == dest


def test_all_formats_of_one_identity_give_one_b32(tmp_path, keys):
    files = {"k.json": keys.to_json().encode(), "k.dat": keys.to_binary()}
    files["k.txt"] = keys.to_sam_base64().encode()
    b32s = set()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        b32s.add(read_key_file(tmp_path / name).destination.b32)
    assert b32s == {keys.destination.b32}


def test_load_or_create_creates_our_json_once_then_reuses_it(tmp_path):
    path = tmp_path / "client.keys"
    first = load_or_create_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert detect_format(path.read_bytes()) is KeyFormat.JSON
    assert load_or_create_key_file(path) == first


def test_load_or_create_uses_an_existing_binary_file_without_rewriting_it(tmp_path, keys):
    path = tmp_path / "tunnel.dat"
    path.write_bytes(keys.to_binary())
    assert load_or_create_key_file(path).destination == keys.destination
    assert path.read_bytes() == keys.to_binary()


def test_keys_from_takes_keys_paths_or_none(tmp_path, keys):
    assert keys_from(None) is None
    assert keys_from(keys) is keys
    path = tmp_path / "k.dat"
    path.write_bytes(keys.to_binary())
    assert keys_from(path).destination == keys.destination
    assert keys_from(str(path)).destination == keys.destination
    with pytest.raises(TypeError, match="PrivateKeys or a key file path"):
        keys_from(42)  # type: ignore[arg-type]


# --- every error: one KeyFileError naming the file and the format expected ------------------


def _error(tmp_path, data: bytes) -> str:
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(KeyFileError) as info:
        read_key_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(KeyFileError, match="no such key file"):
        read_key_file(tmp_path / "absent")


def test_a_directory_is_not_read(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read the key file: Is a directory"):
        read_key_file(tmp_path)
    with pytest.raises(KeyFileError, match="cannot read the key file"):
        load_or_create_key_file(tmp_path)


@pytest.mark.parametrize("data", [b"", b" \n\t\n"])
def test_an_empty_file_lists_the_formats_expected(tmp_path, data):
    message = _error(tmp_path, data)
    assert "empty; expected one of: i2proxy JSON key file" in message
    assert "Java I2PTunnel" in message and "SAM private-key base64" in message


def test_a_huge_file_is_not_read_whole(tmp_path):
    assert "larger than 65536 bytes" in _error(tmp_path, b"A" * (MAX_KEY_FILE + 1))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda doc: "{not json", "not JSON"),
        (lambda doc: '{"format": "other"}', "'format' is not 'i2proxy-private-keys'"),
        (lambda doc: doc.replace('"version": 1', '"version": 9'), "unsupported version 9"),
        (lambda doc: doc.replace('"destination"', '"dest"'), "'destination' missing or not str"),
    ],
)
def test_damaged_json_names_our_format_and_the_problem(tmp_path, keys, mutate, reason):
    message = _error(tmp_path, mutate(keys.to_json()).encode())
    assert "not a valid i2proxy JSON key file: " in message and reason in message


def test_json_with_another_signing_key_is_refused(tmp_path, keys):
    other = PrivateKeys.generate().to_json()
    doc = keys.to_json().split("\n")
    theirs = next(line for line in other.split("\n") if "signing_private_key" in line)
    doc = [theirs if "signing_private_key" in line else line for line in doc]
    message = _error(tmp_path, "\n".join(doc).encode())
    assert "i2proxy JSON key file: signing private key does not match" in message


def test_json_that_is_not_utf8_is_refused(tmp_path):
    assert "i2proxy JSON key file: not UTF-8" in _error(tmp_path, b'{"format": "\xff"}')


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda raw: raw[:-1], "signing private key: need 32 bytes, only 31 left"),
        (lambda raw: raw[:300], "destination: need 387 bytes, only 300 left"),
        (lambda raw: raw + b"\x00", "1 unexpected bytes after the signing key"),
        (lambda raw: raw[:-32] + b"\x00" * 32, "offline-signed key file"),
        (lambda raw: raw[:-32] + PrivateKeys.generate().signing_key.raw, "does not match"),
    ],
)
def test_damaged_binary_names_the_binary_format_and_the_problem(tmp_path, keys, mutate, reason):
    message = _error(tmp_path, mutate(keys.to_binary()))
    assert "not a valid binary private key file (i2pd .dat / Java I2PTunnel): " in message
    assert reason in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (lambda b64: b64[:-8], "need"),
        (lambda b64: b64[:-1], "base64"),
        (lambda b64: "AAAA", "need"),
    ],
)
def test_damaged_sam_base64_names_the_sam_format(tmp_path, keys, text, reason):
    message = _error(tmp_path, text(keys.to_sam_base64()).encode())
    assert "not a valid SAM private-key base64 (DEST GENERATE PRIV=): " in message
    assert reason in message


def test_standard_base64_is_read_as_binary_and_refused_as_such(tmp_path, keys):
    """``+`` and ``/`` are not I2P base64: such text is no key file of any known format."""
    import base64

    message = _error(tmp_path, base64.b64encode(keys.to_binary()) + b"\n")
    assert BINARY_NAME.replace("\\", "") in message


def test_an_unwritable_place_is_reported_not_raised_as_oserror(tmp_path, keys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KeyFileError, match="cannot write the key file"):
        save_key_file(keys, blocker / "keys.json")
    with pytest.raises(KeyFileError, match="cannot read the key file: Not a directory"):
        load_or_create_key_file(blocker / "keys.json")


def test_key_file_errors_are_value_errors_for_old_callers(tmp_path):
    with pytest.raises(ValueError):
        read_key_file(tmp_path / "absent")


# --- what users see: one line, no traceback ------------------------------------------------


def test_keys_show_prints_one_line_for_a_bad_file(tmp_path):
    path = tmp_path / "tunnel.dat"
    path.write_bytes(b"\x00" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "i2proxy", "keys", "show", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        and "not a valid binary private key file" in proc.stderr
    )


@pytest.mark.parametrize("router", [["--router", "i2cp://127.0.0.1:1"], []])
def test_run_with_a_bad_keys_file_stops_at_once_with_the_reason(tmp_path, router):
    """Both with --router and with detection: the file is read before any router is probed."""
    path = tmp_path / "mine.keys"
    path.write_text('{"format": "i2proxy-private-keys", "version": 1}')
    proc = subprocess.run(
        [sys.executable, "-m", "i2proxy", "run", *router, "--keys-file", str(path),
         "--http", "127.0.0.1:0", "--socks", "", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "not a valid i2proxy JSON key file: 'destination' missing" in proc.stderr
