"""Benchmark: a 1%-selective filter pushed below the model vs inference-then-filter, and what
planning alone costs, in one run.

The table is the digits dataset repeated to 100,000 rows (each copy's pixels shifted a little,
so every row is a distinct model input: the setup of bench_paradigms.py's pushdown case), the
digits model with its cache off (so every run does the same work). Per round, in a rotating
order:

    pushed                  SELECT id, digits(pixels).label FROM big WHERE id % 100 = 0
                            (the default rules: the filter runs before the model, 1,000 inputs)
    inference-then-filter   the same with SET disabled_rules = 'push_filters' (100,000 inputs)
    planning only           s.explain(query): parse, build, optimize; no model runs

The table gives the median and p90 of each over the rounds (~30) and the speed-up against
inference-then-filter; the planning share of the pushed query follows it.

    .venv/bin/python bench/bench_planning.py [--rows 100000] [--rounds 30]

About a minute on a 2-core CPU. Progress on stderr, the markdown table on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import workbench

QUERY = "SELECT id, digits(pixels).label AS y FROM big WHERE id % 100 = 0"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def setup(rows: int) -> workbench.Session:
    s = workbench.connect(progress=False)
    s.sql("CALL load_dataset('digits'); ALTER MODEL digits SET cache = 'off'")
    # distinct pixel rows beyond the 1,797 digits: each copy shifted a little
    s.sql(
        f"CREATE TABLE big AS SELECT i AS id, list_transform(d.pixels, lambda p: p + (i // 1797) * 0.001)"
        f"::FLOAT[64] AS pixels FROM range({rows}) t(i) JOIN digits d ON d.id = i % 1797"
    )
    return s


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    s = setup(args.rows)

    def pushed() -> float | None:
        s.sql(QUERY)

    def unpushed() -> float | None:
        s.sql("SET disabled_rules = 'push_filters'")
        try:
            start = time.perf_counter()
            s.sql(QUERY)
            return time.perf_counter() - start  # the SET statements are not timed
        finally:
            s.sql("SET disabled_rules = ''")

    def planning() -> float | None:
        s.explain(QUERY)

    cases = {"pushed": pushed, "inference-then-filter": unpushed, "planning only": planning}
    for fn in cases.values():  # warm-up: model load, weights, batch size tuning
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(args.rounds):
        # each round starts at another case, so none always follows the same predecessor
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            own = cases[name]()
            times[name].append(own if own is not None else time.perf_counter() - start)
        if r % 5 == 4:
            log(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{n} {statistics.median(t) * 1000:,.1f} ms" for n, t in times.items())
            )
    pushed_rows = len(s.sql(QUERY))
    s.close()

    base = statistics.median(times["inference-then-filter"])
    print(
        f"query: `{QUERY}` over {args.rows:,} rows ({pushed_rows:,} kept); digits cache off; "
        f"{args.rounds} interleaved rounds\n"
    )
    print("| case | median ms | p90 ms | speed-up |")
    print("|---|---:|---:|---:|")
    for name in ("inference-then-filter", "pushed", "planning only"):
        t = times[name]
        med = statistics.median(t)
        print(f"| {name} | {med * 1000:,.1f} | {p90(t) * 1000:,.1f} | {base / med:,.1f}x |")
    share = statistics.median(times["planning only"]) / statistics.median(times["pushed"])
    print(f"\nPlanning is {share:.0%} of the pushed query's median time (speed-up: against inference-then-filter).")


if __name__ == "__main__":
    main()
