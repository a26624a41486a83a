"""TTFB medians of several ``bench_bulk.py --json`` runs: per run and pooled.

On 3-hop tunnels one run's TTFB ratio compares one i2proxy destination's paths with one i2pd
destination's: a destination keeps its tunnels for ~10 minutes, so a run's samples are looks at
the same paths, and on the ``real`` profile each sample may also meet a lost segment on one of
its ~14 links (a ~340 ms step: the median of a few samples flips between the two modes). Runs
started ~10 minutes apart (new tunnels; each run a new i2proxy, so new destinations) add the
independent draws; this prints each run's medians and the pooled ones.

    python bench/ttfb_pool.py run1.json run2.json run3.json [--cell real]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

KINDS = ("HTTP", "SOCKS")
PROXIES = ("i2proxy", "i2pd")


def samples_of(document: dict, cell: str) -> dict[str, list[float]]:  # type: ignore[type-arg]
    """``{"i2proxy HTTP": [ms, …], …}`` of one cell of one run."""
    for entry in document.get("ttfb_ms", []):
        if entry.get("cell") == cell:
            return {
                f"{p} {k}": [float(x) for x in entry.get(f"{p} {k}", [])]
                for p in PROXIES
                for k in KINDS
            }
    return {f"{p} {k}": [] for p in PROXIES for k in KINDS}


def row(label: str, samples: dict[str, list[float]]) -> str:
    """One Markdown row: median (n) per proxy and kind, and i2proxy / i2pd per kind."""
    cols = []
    for kind in KINDS:
        ours, theirs = samples[f"i2proxy {kind}"], samples[f"i2pd {kind}"]
        a = statistics.median(ours) if ours else None
        b = statistics.median(theirs) if theirs else None
        cols += [
            f"{a:.0f} ({len(ours)})" if a else "—",
            f"{b:.0f} ({len(theirs)})" if b else "—",
            f"{a / b:.2f}x" if a and b else "—",
        ]
    return f"| {label} | " + " | ".join(cols) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench_bulk.py --json files")
    parser.add_argument("--cell", default="real")
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {f"{p} {k}": [] for p in PROXIES for k in KINDS}
    print(
        "| run | i2proxy HTTP | i2pd HTTP | ratio | i2proxy SOCKS | i2pd SOCKS | ratio |\n"
        "|---|---|---|---|---|---|---|"
    )
    for path in args.runs:
        document = json.loads(path.read_text())
        samples = samples_of(document, args.cell)
        for key, values in samples.items():
            pooled[key] += values
        print(row(f"{path.name} ({document.get('started', '?')})", samples))
    print(row(f"pooled ({len(args.runs)} runs)", pooled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
