"""Reading i2pd's address book layout: addresses.csv + b<c>/<b32>.b32 identity files."""

from pathlib import Path

from i2proxy.cli import main
from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.feedsign import new_identity
from i2proxy.naming.i2pdimport import read_i2pd_addressbook


def _store(directory: Path, dest) -> str:
    b32 = dest.b32[: -len(".b32.i2p")]
    sub = directory / f"b{b32[0]}"
    sub.mkdir(parents=True, exist_ok=True)
    (sub / f"{b32}.b32").write_bytes(dest.to_bytes())
    return b32


def test_i2pd_layout_is_read_and_checked(tmp_path):
    book_dir = tmp_path / "addressbook"
    good = [new_identity()[0] for _ in range(3)]
    other = new_identity()[0]
    rows = [f"site{i}.i2p,{_store(book_dir, d)}" for i, d in enumerate(good)]
    # A file filed under the wrong b32 (corrupt or mixed up) must be refused.
    wrong_b32 = _store(book_dir, other)
    (book_dir / f"b{wrong_b32[0]}" / f"{wrong_b32}.b32").write_bytes(good[0].to_bytes())
    rows += [
        f"mixedup.i2p,{wrong_b32}",
        "nofile.i2p," + "a" * 52,
        "blinded.i2p," + "b" * 56,
        "site0.i2p," + rows[0].split(",")[1],
        "garbage-line",
    ]
    (book_dir / "addresses.csv").write_text("\n".join(rows) + "\n")
    local = new_identity()[0]
    (book_dir / "local.csv").write_text(f"mylocal.i2p,{_store(book_dir, local)}\n")

    result = read_i2pd_addressbook(book_dir)
    assert [line.split("=")[0] for line in result.lines] == [
        "site0.i2p",
        "site1.i2p",
        "site2.i2p",
        "mylocal.i2p",
    ]
    assert result.skipped == {
        "identity-hash-mismatch": 1,
        "no-identity-file": 1,
        "not-b32 (b33 or garbage)": 1,
        "duplicate": 1,
        "malformed": 1,
    }


def test_cli_import_of_an_i2pd_directory(tmp_path, capsys):
    book_dir = tmp_path / "i2pd" / "addressbook"
    dest = new_identity()[0]
    (book_dir).mkdir(parents=True)
    (book_dir / "addresses.csv").write_text(f"fromi2pd.i2p,{_store(book_dir, dest)}\n")
    data = tmp_path / "data"
    code = main(["--log-level", "error", "addressbook", "import", str(book_dir),
                 "--data-dir", str(data)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "i2pd address book" in out and "added 1" in out
    assert AddressBook.open(data).lookup("fromi2pd.i2p") == dest
