"""Benchmark: the inference cache on pydoc with `minilm`, in one run.

    cold      SELECT minilm(body) FROM pydoc, cache empty (model runs on every distinct body)
    warm      the same query again (target: warm/cold <= 0.05)
    overlap   a query whose inputs are 50% cached (target: <= 0.6 of cold)
    miss/on   a 100%-miss query with the cache on (lookup + write-back)
    miss/off  the same with the cache off (target: miss/on <= 1.05 x miss/off)

Run from the repository root: `.venv/bin/python bench/bench_cache.py [--repeat N]`
(about 3 minutes on a 2-core CPU). Progress on stderr, the markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import workbench

QUERY = "SELECT minilm(body) AS e FROM pydoc"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(s: workbench.Session, sql: str) -> tuple[float, workbench.Result]:
    start = time.perf_counter()
    result = s.sql(sql)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="passes per cold measurement (best is kept)")
    args = parser.parse_args()

    s = workbench.connect()
    s.sql("CALL load_dataset('pydoc')")
    distinct = s.sql("SELECT count(DISTINCT body) AS n FROM pydoc").pl()["n"][0]
    log("warming up the model (load, batch size)")
    s.sql("ALTER MODEL minilm SET cache = 'off'")
    s.sql(QUERY)

    def cold(policy: str) -> float:
        s.sql("CALL clear_cache()")
        s.sql(f"ALTER MODEL minilm SET cache = '{policy}'")
        secs, r = timed(s, QUERY)
        if policy != "off":
            assert r.stats[0]["cache_misses"] == distinct, r.stats
        log(f"  cold, cache {policy}: {secs:.2f} s")
        return secs

    rows: dict[str, float] = {}
    # Interleave on/off passes so slow phases of a noisy machine hit both alike.
    on, off = [], []
    for _ in range(args.repeat):
        on.append(cold("exact"))
        off.append(cold("off"))
    rows["miss/on"], rows["miss/off"] = min(on), min(off)
    rows["cold"] = rows["miss/on"]

    s.sql("ALTER MODEL minilm SET cache = 'exact'")
    s.sql(QUERY)  # the last cold pass ran with the cache off: fill it again
    warm = [timed(s, QUERY) for _ in range(3)]
    assert all(r.stats[0]["cache_hits"] == distinct for _, r in warm)
    rows["warm"] = min(t for t, _ in warm)

    best_overlap = float("inf")
    for _ in range(args.repeat):
        s.sql("CALL clear_cache()")
        s.sql("SELECT minilm(body) FROM pydoc WHERE id % 2 = 0")  # about half the inputs cached
        secs, r = timed(s, QUERY)
        hits = r.stats[0]["cache_hits"] / r.stats[0]["rows"]
        best_overlap = min(best_overlap, secs)
    rows["overlap"] = best_overlap

    print(f"pydoc: {s.sql('SELECT count(*) AS n FROM pydoc').pl()['n'][0]:,} rows, {distinct:,} distinct bodies\n")
    print("| query | seconds | ratio | target | |")
    print("|---|---:|---:|---:|---|")
    print(f"| cold (cache on, empty) | {rows['cold']:.2f} | 1.00 | | |")
    w = rows["warm"] / rows["cold"]
    print(f"| warm repeat (100% hits) | {rows['warm']:.3f} | {w:.4f} | <= 0.05 | {'PASS' if w <= 0.05 else 'FAIL'} |")
    o = rows["overlap"] / rows["cold"]
    verdict = "PASS" if o <= 0.6 else "FAIL"
    print(f"| 50% overlap ({hits:.0%} hits) | {rows['overlap']:.2f} | {o:.2f} | <= 0.6 | {verdict} |")
    m = rows["miss/on"] / rows["miss/off"]
    print(
        f"| 100% miss, cache on / off | {rows['miss/on']:.2f} / {rows['miss/off']:.2f} | {m:.3f} | <= 1.05 | "
        f"{'PASS' if m <= 1.05 else 'FAIL'} |"
    )


if __name__ == "__main__":
    main()
