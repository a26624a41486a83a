"""Address book benchmark: load and lookup with 100 000 entries, merge of 10 000 signed entries.

    python bench/bench_addressbook.py [--entries 100000] [--signed 10000] [--json]

Entries are generated: distinct, valid destinations (a real Ed25519/X25519 destination whose
padding bytes are randomized, so every one parses and has its own hash). Signed entries are
Proposal 112 add lines, each signed by its own freshly generated key. Everything runs on this
machine; no network.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from i2proxy.i2p.base64 import b64encode
from i2proxy.i2p.destination import SigType
from i2proxy.log import configure
from i2proxy.naming.addressbook import AddressBook
from i2proxy.naming.feedsign import new_identity, sign_line
from i2proxy.naming.subscriptions import _check_all


def generated_destinations(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct valid destinations (randomized padding of one real destination)."""
    raw = bytearray(new_identity()[0].to_bytes())
    out = []
    for _ in range(count):
        raw[32:256] = rng.randbytes(224)  # X25519 key is bytes 0..31; the rest is padding
        out.append(b64encode(bytes(raw)))
    return out


CPU: dict[str, float] = {}


def timed(fn, *args, **kwargs):
    """Wall-clock seconds; the process CPU seconds go to CPU[fn name] (the machine is shared)."""
    cpu, start = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    CPU[getattr(fn, "__name__", "?")] = time.process_time() - cpu
    return result, time.perf_counter() - start


def per_op_us(fn, keys: list[str]) -> float:
    start = time.perf_counter()
    for key in keys:
        fn(key)
    return (time.perf_counter() - start) / len(keys) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--signed", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--peer-i2pd",
        action="store_true",
        help="also time i2pd 2.x loading the same hosts.txt and answering SAM NAMING LOOKUPs "
        "(runs i2pd in a fresh network namespace with only loopback: needs root + unshare)",
    )
    parser.add_argument("--_in_netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._in_netns:
        return _i2pd_peer_inside(args)
    configure(level="warning")
    rng = random.Random(112)
    results: dict[str, float | int | str] = {"entries": args.entries, "signed": args.signed}

    dests = generated_destinations(args.entries, rng)
    names = [f"site{i:06d}.i2p" for i in range(args.entries)]
    doc = "".join(f"{n}={d}\n" for n, d in zip(names, dests, strict=True)).encode()
    results["feed_mb"] = round(len(doc) / 1e6, 1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # 1. A subscription of N plain entries: parse, validate (every destination parsed), merge.
        feed = "http://feed.i2p/hosts.txt"
        book = AddressBook.open(root, subscriptions=[feed])
        stats, t = timed(book.merge_text, doc, into=feed)
        assert stats.added == args.entries, stats.summary()
        results["merge_plain_s"] = round(t, 3)
        results["merge_plain_cpu_s"] = round(CPU["merge_text"], 3)
        # Peer (floor): a bare dict from split lines, no validation, no parsing.
        _, t = timed(_naive_load, doc)
        results["peer_naive_dict_load_s"] = round(t, 3)
        _, t = timed(book.save)
        results["save_s"] = round(t, 3)
        results["book_file_mb"] = round(
            sum(p.stat().st_size for p in (root / "addressbook").rglob("*.txt")) / 1e6, 1
        )

        # 2. Cold start: open the data directory with the N-entry book on disk.
        reopened, t = timed(AddressBook.open, root, subscriptions=[feed])
        assert len(reopened.subscription_book(feed)) == args.entries
        results["open_s"] = round(t, 3)
        results["open_cpu_s"] = round(CPU["open"], 3)

        # 3. Lookups (random known names; misses; b32 reverse).
        sample = [rng.choice(names) for _ in range(args.lookups)]
        misses = [f"missing{i}.i2p" for i in range(min(args.lookups, 20_000))]
        results["lookup_b64_us"] = round(per_op_us(reopened.lookup_b64, sample), 2)
        results["lookup_dest_us"] = round(per_op_us(reopened.lookup, sample), 2)
        hot = sample[:1000] * (args.lookups // 1000)
        results["lookup_dest_hot_us"] = round(per_op_us(reopened.lookup, hot), 2)
        results["lookup_miss_us"] = round(per_op_us(reopened.lookup, misses), 2)
        naive = _naive_load(doc)
        results["peer_naive_dict_get_us"] = round(per_op_us(naive.get, sample), 2)
        hashes = [reopened.lookup(n).hash for n in sample[:2000]]
        _, t = timed(reopened.reverse, hashes[0])
        results["reverse_index_build_s"] = round(t, 3)
        start = time.perf_counter()
        for h in hashes:
            assert reopened.reverse(h) is not None
        results["reverse_us"] = round((time.perf_counter() - start) / len(hashes) * 1e6, 2)

        # 4. Merge of M signed entries (each with its own Ed25519 key) into the big book.
        signed_lines = []
        for i in range(args.signed):
            dest, key = new_identity(SigType.EDDSA_SHA512_ED25519)
            signed_lines.append(
                sign_line(f"signed{i:05d}.i2p", dest.to_base64(), key, date="1700000000")
            )
        signed_doc = ("\n".join(signed_lines) + "\n").encode()
        feed2 = "http://signed.i2p/hosts.txt"
        reopened.subscription_book(feed2)
        stats, t = timed(reopened.merge_text, signed_doc, into=feed2)
        assert stats.added == args.signed and stats.invalid_total == 0, stats.summary()
        results["merge_signed_s"] = round(t, 3)
        results["merge_signed_cpu_s"] = round(CPU["merge_text"], 3)
        results["merge_signed_per_entry_us"] = round(t / args.signed * 1e6, 1)

        # 5. The same merge as the background manager does it: verification in a worker thread,
        #    application in batches; measure how long the event loop is blocked at most.
        #    Drop the benchmark's own big structures first: they are not part of a proxy's heap.
        del dests, names, doc, sample, naive, misses, hot, signed_doc, signed_lines
        gc.collect()
        feed3 = "http://signed2.i2p/hosts.txt"
        reopened.subscription_book(feed3)
        resigned = []
        for i in range(min(args.signed, 2000)):
            dest, key = new_identity()
            resigned.append(sign_line(f"bg{i:05d}.i2p", dest.to_base64(), key))
        bg_doc = ("\n".join(resigned) + "\n").encode()
        results["loop_max_block_ms"] = round(asyncio.run(_loop_block(reopened, bg_doc, feed3)), 1)
        results["loop_max_block_idle_ms"] = round(asyncio.run(_loop_block(None, b"", "")), 1)

    per_type = {}
    for sig_type in (SigType.ECDSA_SHA256_P256, SigType.DSA_SHA1, SigType.ECDSA_SHA512_P521):
        lines = []
        for i in range(300):
            dest, key = new_identity(sig_type)
            lines.append(sign_line(f"t{i}.i2p", dest.to_base64(), key))
        _, t = timed(_check_all, ("\n".join(lines)).encode(), "x", time.time())
        per_type[sig_type.name] = round(t / len(lines) * 1e6, 1)
    results["verify_us_by_type"] = json.dumps(per_type)
    if args.peer_i2pd:
        results.update(_i2pd_peer(args))
    results["python"] = sys.version.split()[0]
    results["cpus"] = os.cpu_count() or 0

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:28} {v}")
    return 0


I2PD_CONF = """\
log = file
loglevel = info
ipv4 = true
ipv6 = false
host = 127.0.0.1
port = 17000
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
enabled = true
address = 127.0.0.1
port = 17656
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


def _i2pd_peer(args: argparse.Namespace) -> dict[str, float | str]:
    """Re-run this script in a new network namespace (loopback only: i2pd cannot reach anything)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("i2pd"):
        return {"peer_i2pd": "skipped (needs root, unshare and i2pd)"}
    cmd = [
        "unshare", "-n", "sh", "-c",
        'ip link set lo up && exec "$0" "$@"',
        sys.executable, __file__, "--_in_netns",
        "--entries", str(args.entries), "--lookups", str(min(args.lookups, 5000)),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        return {"peer_i2pd": f"failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout)


def _i2pd_peer_inside(args: argparse.Namespace) -> int:
    """Inside the namespace: time i2pd's start with and without the N-entry hosts.txt."""
    import socket
    import subprocess

    dests = generated_destinations(args.entries, random.Random(112))
    names = [f"site{i:06d}.i2p" for i in range(args.entries)]
    out: dict[str, float | str] = {}
    version = subprocess.run(["i2pd", "--version"], capture_output=True, text=True).stdout
    out["peer_i2pd_version"] = version.split("\n")[0]

    def sam_lookup(sock_file, name: str) -> str:
        sock_file.write(f"NAMING LOOKUP NAME={name}\n".encode())
        sock_file.flush()
        return sock_file.readline().decode()

    def run_i2pd(with_hosts: bool) -> tuple[float, float | None]:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            conf = Path(tmp) / "i2pd.conf"
            conf.write_text(I2PD_CONF.replace("log = file", f"log = file\nlogfile = {tmp}/log"))
            if with_hosts:
                (data / "hosts.txt").write_text(
                    "".join(f"{n}={d}\n" for n, d in zip(names, dests, strict=True))
                )
            start = time.perf_counter()
            proc = subprocess.Popen(
                ["i2pd", f"--datadir={data}", f"--conf={conf}", "--tunconf=/dev/null",
                 f"--tunnelsdir={tmp}/none", "--certsdir=/usr/share/i2pd/certificates"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                target = names[-1] if with_hosts else None
                while True:
                    if time.perf_counter() - start > 900:
                        raise TimeoutError("i2pd did not answer")
                    try:
                        sock = socket.create_connection(("127.0.0.1", 17656), timeout=5)
                    except OSError:
                        time.sleep(0.02)
                        continue
                    f = sock.makefile("rwb")
                    f.write(b"HELLO VERSION MIN=3.0 MAX=3.3\n")
                    f.flush()
                    f.readline()
                    if target is None or "RESULT=OK" in sam_lookup(f, target):
                        ready = time.perf_counter() - start
                        break
                    sock.close()
                    time.sleep(0.02)
                per_lookup = None
                if with_hosts:
                    sample = [random.choice(names) for _ in range(args.lookups)]
                    t0 = time.perf_counter()
                    for n in sample:
                        assert "RESULT=OK" in sam_lookup(f, n)
                    per_lookup = (time.perf_counter() - t0) / len(sample) * 1e6
                sock.close()
                return ready, per_lookup
            finally:
                proc.terminate()
                proc.wait(timeout=60)

    base, _ = run_i2pd(False)
    loaded, per_lookup = run_i2pd(True)
    out["peer_i2pd_start_empty_s"] = round(base, 3)
    out["peer_i2pd_start_with_hosts_s"] = round(loaded, 3)
    out["peer_i2pd_load_s"] = round(loaded - base, 3)
    out["peer_i2pd_sam_lookup_us"] = round(per_lookup or 0.0, 1)
    print(json.dumps(out))
    return 0


def _naive_load(doc: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in doc.decode().splitlines() if "=" in line)


async def _loop_block(book: AddressBook | None, doc: bytes, url: str) -> float:
    """Run the manager's merge path while a ticker measures the event loop's longest stall.

    With ``book=None`` the ticker runs alone for a second: the machine's own scheduling noise.
    """
    from i2proxy.naming.subscriptions import SubscriptionManager

    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    if book is None:
        await asyncio.sleep(1.0)
    else:
        manager = SubscriptionManager(book, dialer=None)  # type: ignore[arg-type]
        await manager.merge_body(url, doc, now=time.time())
        await manager._save()
    stop.set()
    await task
    return (max(gaps) - 0.001) * 1000


if __name__ == "__main__":
    raise SystemExit(main())
