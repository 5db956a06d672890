"""Benchmark: a fully-cached query in a fresh process (issue 14: no model load, <= 0.5 s).

A file database gets pydoc and minilm's outputs for every body (one process); then each
round starts a new Python process that opens the file and times, side by side:

    fresh     SELECT minilm(body) FROM pydoc, every input cached (the model must not load)
    warm      the same query again in that process
    plain     SELECT body FROM pydoc, no model at all (DuckDB's own speed)
    miss      then one input not in the cache: loads minilm and runs it (what `fresh` must not pay)

Run from the repository root: `.venv/bin/python bench/bench_fresh_cache.py [--rounds N]`
(about 2 minutes on a 2-core CPU). Progress on stderr, the markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

QUERY = "SELECT minilm(body) AS e FROM pydoc"

PREPARE = """
import workbench, sys
s = workbench.connect(sys.argv[1], progress=False)
s.sql("CALL load_dataset('pydoc')")
s.sql("SELECT minilm(body) AS e FROM pydoc")
s.close()
"""

ROUND = """
import json, sys, time
t0 = time.perf_counter()
import workbench
s = workbench.connect(sys.argv[1], progress=False)
t1 = time.perf_counter()
r = s.sql("SELECT minilm(body) AS e FROM pydoc")
t2 = time.perf_counter()
from workbench.models.deferred import Deferred
m = s.engine.models.base("minilm", s.config)
loaded_fresh = not isinstance(m, Deferred) or m.loaded
s.sql("SELECT minilm(body) AS e FROM pydoc")
t3 = time.perf_counter()
s.sql("SELECT body FROM pydoc")
t4 = time.perf_counter()
s.sql("SELECT minilm(:text)", {"text": f"a sentence no paragraph of pydoc holds, round {sys.argv[2]}"})
t5 = time.perf_counter()
print(json.dumps({"rows": len(r), "open": t1 - t0, "fresh": t2 - t1, "warm": t3 - t2, "plain": t4 - t3,
                  "miss": t5 - t4, "loaded_by_query": loaded_fresh}))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "cached.db")
        log("filling the cache (minilm over pydoc) ...")
        subprocess.run([sys.executable, "-c", PREPARE, db], check=True)
        runs = []
        for i in range(args.rounds):
            out = subprocess.run([sys.executable, "-c", ROUND, db, str(i)], check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            log(f"round {i + 1}: fresh {runs[-1]['fresh']:.3f} s, miss {runs[-1]['miss']:.3f} s")
    med = {k: statistics.median(r[k] for r in runs) for k in ("fresh", "warm", "plain", "miss", "open")}
    print(f"\nFully cached `{QUERY}` ({runs[0]['rows']} rows), median of {args.rounds} fresh processes\n")
    print("| measurement | seconds | vs plain SELECT |")
    print("|---|---:|---:|")
    for k in ("fresh", "warm", "plain", "miss"):
        print(f"| {k} | {med[k]:.3f} | {med[k] / med['plain']:.1f}x |")
    print(f"\nmodel loaded by the fresh query: {runs[0]['loaded_by_query']}; target fresh <= 0.5 s")


if __name__ == "__main__":
    main()
