"""Migration from a real i2pd: i2pd 2.x builds its address book from a hosts.txt (in a fresh
network namespace with only loopback, so it reaches nothing), then `i2proxy addressbook import`
reads i2pd's own files and every name resolves to the same destination."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.feedsign import new_identity

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

I2PD_CONF = """\
log = file
loglevel = info
ipv4 = true
ipv6 = false
host = 127.0.0.1
port = 17001
notransit = true
[ntcp2]
enabled = true
published = false
[ssu2]
enabled = false
[http]
enabled = false
[httpproxy]
enabled = false
[socksproxy]
enabled = false
[sam]
enabled = false
[bob]
enabled = false
[i2cp]
enabled = false
[upnp]
enabled = false
[reseed]
urls =
[addressbook]
enabled = true
defaulturl =
subscriptions =
"""


def test_import_of_a_real_i2pd_address_book(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("i2pd"):
        pytest.skip("needs root, unshare and i2pd")
    dests = [new_identity(t)[0] for t in (7, 7, 1, 0, 3)]
    names = [f"migrated{i}.i2p" for i in range(len(dests))]
    datadir = tmp_path / "i2pd"
    datadir.mkdir()
    (datadir / "hosts.txt").write_text(
        "".join(f"{n}={d.to_base64()}\n" for n, d in zip(names, dests, strict=True))
    )
    conf = tmp_path / "i2pd.conf"
    conf.write_text(I2PD_CONF.replace("log = file", f"log = file\nlogfile = {tmp_path}/i2pd.log"))
    i2pd = (
        f"i2pd --datadir={datadir} --conf={conf} --tunconf=/dev/null "
        f"--tunnelsdir={tmp_path}/none --certsdir=/usr/share/i2pd/certificates"
    )
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {i2pd}"])
    try:
        csv = datadir / "addressbook" / "addresses.csv"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if csv.exists() and len(csv.read_text().splitlines()) == len(names):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(
                f"i2pd wrote no address book:\n{(tmp_path / 'i2pd.log').read_text()}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "i2proxy", "--log-level", "error", "addressbook", "import",
         str(datadir / "addressbook"), "--data-dir", str(data)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"added {len(names)}" in result.stdout, result.stdout
    book = AddressBook.open(data)
    for name, dest in zip(names, dests, strict=True):
        assert book.lookup(name) == dest
