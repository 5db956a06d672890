"""Benchmark: every forced paradigm against the optimizer's choice, in one run.

Sweep: rows (10 .. 100,000), model (the digits MLP, a ~50M-parameter MLP, minilm, and an
MLP behind a 400,000 x 64 embedding over integer ids), filter selectivity on a plain column
(1%, 10%, 100%) and memory budget (none; 128 MB, below the wide MLP's 202 MB of weights, for
wide; 64 MB, below the embedding's 98 MB, for emb). Every point times dl_centric, udf_centric,
relation_centric, hybrid (where the model has a relational form and fits the budget) and
the optimizer's own choice, each the whole `s.sql()` call, best of a few runs after one
warm-up. A forced paradigm whose estimate is over 20x the best estimate and over 10 s is
skipped and shown as such (relation-centric on thousands of rows of the wide MLP would
take minutes and cannot be the best); a point whose best estimate is over a minute is not
run (the wide MLP on 1,000 rows under the 128 MB budget, where only relation-centric can run).

Targets: the optimizer within 1.10x of the best forced paradigm in >= 95% of points and
never worse than 1.5x; a 1%-selective filter on a non-model column >= 20x faster than
inference-then-filter (push_filters off).

Large points (`--large`, or `--only-large` for them alone): 100,000 and 1,000,000 rows of
the digits and wide MLPs, over distinct inputs (`px_large`: each copy of the digits shifted a
little) and repeated ones (`rep_large`: the 1,797 digits repeated), `SELECT avg(m(pixels).score)`,
cache off, each with every rule on and with dedup_inputs off (the same skip rules: a point
whose best estimate is over a minute is not run, e.g. the wide MLP on a million distinct
rows; a forced paradigm estimated over 5x the best is shown as skipped, not timed). Target:
the same 1.10x / 1.5x. Then the engine on 1M rows of the digits MLP against
torch in batches of 4,096 on the same tensor (target: within 1.5x).

Run from the repository root: `.venv/bin/python bench/bench_paradigms.py [--quick] [--large | --only-large]`
(about 10 minutes on a 2-core CPU; --quick: fewer rows, about 2; the large points add about
10). Progress on stderr, the tables on stdout (markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict

import torch

import workbench
from workbench.errors import WorkbenchError

FORCED = ("dl_centric", "udf_centric", "relation_centric", "hybrid")
FLAKY: dict[tuple[str, str | None], int] = {}  # (query, config) -> timed rounds that failed
SELECTIVITY = {"1%": 1, "10%": 10, "100%": 100}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def wide_mlp() -> torch.nn.Module:
    """64 -> 4096 -> 4096 -> 4096 -> 4096 -> 10: 50.6M parameters (random weights: timing only)."""
    torch.manual_seed(0)
    widths = [64, 4096, 4096, 4096, 4096, 10]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


def setup(quick: bool, path: str) -> tuple[workbench.Session, list[tuple[str, str, int]]]:
    # a database file: under a memory budget DuckDB can evict table blocks (the weight
    # tables of the big models) to disk and read them back
    for old in (path, path + ".wal"):
        if os.path.exists(old):
            os.remove(old)
    s = workbench.connect(path)
    s.sql(
        "CALL load_dataset('digits'); CALL load_dataset('pydoc');"
        "ALTER MODEL digits SET cache = 'off'; ALTER MODEL minilm SET cache = 'off'"
    )
    s.register_model("wide", wide_mlp(), task="classify", cache="off")
    torch.manual_seed(0)
    emb = torch.nn.Sequential(
        torch.nn.Embedding(400_000, 64), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    )
    s.register_model("emb", emb, task="classify", cache="off")
    s.sql("CREATE TABLE ev AS SELECT i AS id, (i * 7919) % 400000 AS item FROM range(100000) t(i)")
    # distinct pixel rows beyond the 1,797 digits: each copy shifted a little
    s.sql(
        "CREATE TABLE px AS SELECT i AS id, list_transform(d.pixels, lambda p: p + (i // 1797) * 0.001)"
        "::FLOAT[64] AS pixels FROM range(100000) t(i) JOIN digits d ON d.id = i % 1797"
    )
    s.sql("CREATE TABLE txt AS SELECT row_number() OVER (ORDER BY id) - 1 AS id, body FROM pydoc")
    digits_rows = (10, 100, 1000, 10000) if quick else (10, 100, 1000, 10000, 100000)
    wide_rows = (10, 100) if quick else (10, 100, 1000)
    text_rows = (10, 100) if quick else (10, 100, 1000)
    points = [("digits", "px", n) for n in digits_rows]
    points += [("wide", "px", n) for n in wide_rows]
    points += [("minilm", "txt", n) for n in text_rows]
    points += [("emb", "ev", n) for n in ((1000,) if quick else (1000, 100000))]
    return s, points


def query(model: str, table: str, rows: int, pct: int) -> str:
    arg = {"minilm": "body", "emb": "item"}.get(model, "pixels")
    out = f"{model}({arg})[1]" if model == "minilm" else f"{model}({arg}).label"
    return f"SELECT id, {out} AS y FROM {table} WHERE id < {rows} AND id % 100 < {pct}"


def timed(s: workbench.Session, sql: str, paradigm: str | None) -> tuple[float, str]:
    start = time.perf_counter()
    r = s.sql(sql, paradigm=paradigm)
    return time.perf_counter() - start, ",".join(st["paradigm"] for st in r.stats) or "-"


def best_of(s: workbench.Session, sql: str, paradigm: str | None) -> tuple[float, str]:
    first, ran = timed(s, sql, paradigm)  # warm-up: stores weights, tunes batches
    runs = 5 if first < 0.2 else 3 if first < 2 else 1
    times = [first] if runs == 1 else [timed(s, sql, paradigm)[0] for _ in range(runs)]
    return min(times), ran


def interleaved(
    s: workbench.Session, sql: str, configs: list[str | None]
) -> tuple[dict[str | None, tuple[float, str]], dict[str | None, str]]:
    """Best time of each config, measured in rounds (every config once per round) so a
    burst of load on this noisy machine hits all configs alike, in a rotating order; one
    warm-up round first
    (it stores weights and tunes batch sizes). Configs slower than 2 s keep their single
    warm-up-round time; the others run 7 rounds (3 when the fastest takes over 0.2 s).
    A config that fails is reported with its error, not retried."""
    best: dict[str | None, tuple[float, str]] = {}
    failed: dict[str | None, str] = {}
    for c in configs:
        try:
            best[c] = timed(s, sql, c)
        except WorkbenchError as exc:
            failed[c] = f"{type(exc).__name__}: {exc}"
            log(f"  {c or 'optimizer'} failed: {failed[c]}")
    fast = [c for c in best if best[c][0] < 2]
    rounds = 7 if fast and min(best[c][0] for c in fast) < 0.2 else 3
    for c in fast:
        best[c] = (float("inf"), best[c][1])
    for r in range(rounds if fast else 0):
        # each round starts at another config, so none always follows the same predecessor
        for c in fast[r % len(fast) :] + fast[: r % len(fast)]:
            try:
                t, ran = timed(s, sql, c)
            except WorkbenchError as exc:  # counted: an intermittent failure is a finding too
                FLAKY[(sql, c)] = FLAKY.get((sql, c), 0) + 1
                log(f"  {c or 'optimizer'} failed in a timed round: {type(exc).__name__}: {exc}")
                continue
            if t < best[c][0]:
                best[c] = (t, ran)
    return best, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows (about 2 minutes)")
    parser.add_argument("--json", help="also write the points to this file")
    parser.add_argument("--models", help="comma-separated subset of digits,wide,minilm,emb (default: all)")
    parser.add_argument("--large", action="store_true", help="add the 100,000 and 1,000,000-row points")
    parser.add_argument("--only-large", action="store_true", help="only the large points and the torch comparison")
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "bench_paradigms.duckdb")
    s, points = setup(args.quick, path)
    if args.models:
        points = [p for p in points if p[0] in args.models.split(",")]
    if args.only_large:
        large = large_points(s)
        report_large(large, torch_rows(s))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"large": large}, f, indent=1)
        return
    budgets = {"none": None, "128MB": "128MB", "64MB": "64MB"}
    budget_for = {"wide": "128MB", "emb": "64MB"}  # below each model's weights
    results: list[dict] = []
    failures: list[dict] = []
    for model, table, rows in points:
        for budget_name, budget in budgets.items():
            if budget is not None and budget_for.get(model) != budget_name:
                continue  # a budget changes anything only for a model it cannot hold
            s.sql(f"SET memory_budget_cpu = '{budget or 'none'}'")
            for sel_name, pct in SELECTIVITY.items():
                sql = query(model, table, rows, pct)
                plan = s.explain(sql)
                op = plan.operators[0]
                estimates = {p: t for p, t in op.alternatives}
                feasible = {p: t for p, t in estimates.items() if t is not None}
                best_est = min(feasible.values())
                if best_est > 60:
                    log(
                        f"{model} {rows} rows sel {sel_name} budget {budget_name}: not run, the best estimate is "
                        f"{best_est:.0f} s ({op.paradigm})"
                    )
                    continue
                point = {
                    "model": model,
                    "rows": rows,
                    "selectivity": sel_name,
                    "budget": budget_name,
                    "chosen": op.paradigm,
                    "estimates": estimates,
                    "times": {},
                    "skipped": {},
                }
                configs: list[str | None] = []
                for p in FORCED:
                    if estimates.get(p) is None:
                        point["skipped"][p] = "cannot run"
                    elif estimates[p] > 20 * best_est and estimates[p] > 10:
                        point["skipped"][p] = f"est. {estimates[p]:.0f} s"
                    else:
                        configs.append(p)
                measured, failed = interleaved(s, sql, [*configs, None])
                for p, error in failed.items():
                    point["skipped"][p or "optimizer"] = "failed: " + error.split(":")[0]
                if None not in measured or len(measured) < 2:
                    log(f"{model} {rows} rows sel {sel_name} budget {budget_name}: not compared ({failed})")
                    failures.append({**point, "errors": {str(k): v for k, v in failed.items()}})
                    continue
                point["times"] = {p or "optimizer": t for p, (t, _) in measured.items()}
                point["ran"] = measured[None][1]
                forced = {p: t for p, t in point["times"].items() if p != "optimizer"}
                point["best"] = min(forced, key=forced.get)
                point["ratio"] = point["times"]["optimizer"] / forced[point["best"]]
                results.append(point)
                log(
                    f"{model:6} {rows:>7,} rows  sel {sel_name:>4}  budget {budget_name:5}  "
                    + "  ".join(f"{p} {t * 1000:,.1f} ms" for p, t in point["times"].items())
                    + f"  -> chose {point['ran']}, {point['ratio']:.2f}x best ({point['best']})"
                )
    s.sql("SET memory_budget_cpu = 'none'")
    pushdown = pushdown_rows(s, args.quick) if not args.models else []
    report(results, pushdown, failures)
    large = large_points(s) if args.large else []
    if args.large:
        report_large(large, torch_rows(s))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"points": results, "pushdown": pushdown, "large": large}, f, indent=1)


LARGE_ROWS = (100_000, 1_000_000)
LARGE_RULES = ("", "dedup_inputs")  # every rule on; dedup_inputs off
# A forced paradigm estimated over 5x the best estimate (and over 10 s) is not timed at these
# sizes: a single run of hybrid on a million rows takes minutes (measured once: 352 s against
# 4.8 s for udf_centric), which a 2-core sweep cannot afford at every point.
LARGE_SKIP = 5


def large_points(s: workbench.Session) -> list[dict]:
    """The 100,000 and 1,000,000-row points: distinct and repeated inputs, each rule setting."""
    n = max(LARGE_ROWS)
    log(f"building the {n:,}-row tables")
    s.sql(
        "CREATE OR REPLACE TABLE px_large AS SELECT i AS id, "
        "list_transform(d.pixels, lambda p: p + (i // 1797) * 0.001)::FLOAT[64] AS pixels "
        f"FROM range({n}) t(i) JOIN digits d ON d.id = i % 1797"
    )
    s.sql(
        f"CREATE OR REPLACE TABLE rep_large AS SELECT i AS id, d.pixels FROM range({n}) t(i) "
        "JOIN digits d ON d.id = i % 1797"
    )
    out = []
    for model in ("digits", "wide"):
        for table, inputs in (("px_large", "distinct"), ("rep_large", "repeated")):
            for rows in LARGE_ROWS:
                for disabled in LARGE_RULES:
                    s.sql(f"SET disabled_rules = '{disabled}'")
                    try:
                        point = large_point(s, model, table, inputs, rows, disabled)
                    finally:
                        s.sql("SET disabled_rules = ''")
                    if point is not None:
                        out.append(point)
    return out


def large_point(s: workbench.Session, model: str, table: str, inputs: str, rows: int, disabled: str) -> dict | None:
    sql = f"SELECT avg({model}(pixels).score) AS y FROM {table} WHERE id < {rows}"
    op = s.explain(sql).operators[0]
    estimates = {p: t for p, t in op.alternatives}
    feasible = {p: t for p, t in estimates.items() if t is not None}
    best_est = min(feasible.values())
    name = f"{model} {rows:,} {inputs} rows, {disabled or 'all rules'} off" if disabled else ""
    name = name or f"{model} {rows:,} {inputs} rows, all rules on"
    if best_est > 60:
        log(f"{name}: not run, the best estimate is {best_est:.0f} s ({op.paradigm})")
        return None
    configs: list[str | None] = []
    skipped = {}
    for p in FORCED:
        if estimates.get(p) is None:
            skipped[p] = "cannot run"
        elif estimates[p] > LARGE_SKIP * best_est and estimates[p] > 10:
            skipped[p] = f"est. {estimates[p]:.0f} s"
        else:
            configs.append(p)
    measured, failed = interleaved(s, sql, [*configs, None])
    for p, error in failed.items():
        skipped[p or "optimizer"] = "failed: " + error.split(":")[0]
    if None not in measured or len(measured) < 2:
        log(f"{name}: not compared ({failed})")
        return None
    times = {p or "optimizer": t for p, (t, _) in measured.items()}
    forced = {p: t for p, t in times.items() if p != "optimizer"}
    best = min(forced, key=forced.get)
    point = {
        "model": model,
        "inputs": inputs,
        "rows": rows,
        "rules": f"{disabled} off" if disabled else "all on",
        "chosen": op.paradigm,
        "estimated_rows": op.estimated_rows,
        "estimates": estimates,
        "times": times,
        "skipped": skipped,
        "ran": measured[None][1],
        "best": best,
        "ratio": times["optimizer"] / forced[best],
    }
    log(
        f"{name}: "
        + "  ".join(f"{p} {t * 1000:,.0f} ms" for p, t in times.items())
        + f"  -> chose {point['ran']}, {point['ratio']:.2f}x best ({best})"
    )
    return point


def torch_rows(s: workbench.Session) -> list[dict]:
    """The engine (optimizer's choice) on 1M rows of the digits MLP against torch in batches
    of 4,096 on the same tensor (read from DuckDB once, outside the timing)."""
    module = s.model("digits").module  # type: ignore[attr-defined]
    out = []
    for table, inputs in (("px_large", "distinct"), ("rep_large", "repeated")):
        sql = f"SELECT avg(digits(pixels).score) AS y FROM {table}"
        pixels = s.sql(f"SELECT pixels FROM {table} ORDER BY id").arrow().column(0).combine_chunks()
        x = torch.from_numpy(pixels.flatten().to_numpy().reshape(len(pixels), 64).copy())

        def by_torch(x: torch.Tensor = x) -> float:
            with torch.inference_mode():
                total = 0.0
                for i in range(0, len(x), 4096):
                    total += float(torch.softmax(module(x[i : i + 4096]), dim=1).max(dim=1).values.sum())
            return total / len(x)

        engine_value = s.sql(sql).arrow().column(0)[0].as_py()
        torch_value = by_torch()
        times = {"engine": float("inf"), "torch": float("inf")}
        ran = ""
        for _ in range(3):
            t, ran = timed(s, sql, None)
            times["engine"] = min(times["engine"], t)
            start = time.perf_counter()
            by_torch()
            times["torch"] = min(times["torch"], time.perf_counter() - start)
        out.append(
            {"inputs": inputs, "rows": len(x), "ran": ran, **times, "same": abs(engine_value - torch_value) < 1e-4}
        )
        log(f"1M {inputs}: engine {times['engine']:.3f} s ({ran}), torch {times['torch']:.3f} s")
    return out


def report_large(large: list[dict], vs_torch: list[dict]) -> None:
    print("\n## 100,000 and 1,000,000 rows (ms; cache off; avg(m(pixels).score))\n")
    print(
        "| model | inputs | rows | rules | dl | udf | relation | hybrid | optimizer | chose | est. rows | best "
        "| ratio |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|")
    for r in large:
        cells = [
            f"{r['times'][p] * 1000:,.0f}" if p in r["times"] else r["skipped"].get(p, "")
            for p in (*FORCED, "optimizer")
        ]
        print(
            f"| {r['model']} | {r['inputs']} | {r['rows']:,} | {r['rules']} | "
            + " | ".join(cells)
            + f" | {r['ran']} | {r['estimated_rows']:,} | {r['best']} | {r['ratio']:.2f} |"
        )
    if large:
        ratios = [r["ratio"] for r in large]
        within = sum(x <= 1.10 for x in ratios)
        print(
            f"\nLarge points: optimizer within 1.10x of the best forced paradigm in {within}/{len(ratios)} "
            f"({within / len(ratios):.0%}; target >= 95%); worst {max(ratios):.2f}x (target <= 1.5x)\n"
        )
    print("## The engine against torch in batches of 4,096, 1,000,000 rows of the digits MLP\n")
    print("| inputs | engine | torch | engine / torch | paradigm | same average |")
    print("|---|---:|---:|---:|---|---|")
    for r in vs_torch:
        print(
            f"| {r['inputs']} | {r['engine'] * 1000:,.0f} ms | {r['torch'] * 1000:,.0f} ms | "
            f"{r['engine'] / r['torch']:.2f}x | {r['ran']} | {'yes' if r['same'] else 'NO'} |"
        )
    print("\nTarget: engine / torch <= 1.5.")


def pushdown_rows(s: workbench.Session, quick: bool) -> list[dict]:
    """A 1%-selective filter on `id`: filter pushed below the model vs inference-then-filter."""
    cases = [
        ("digits", "SELECT id, digits(pixels).label AS y FROM px WHERE id % 100 = 7", 100000),
        ("minilm", "SELECT id, minilm(body)[1] AS y FROM txt WHERE id % 100 = 7", 2331),
    ]
    if not quick:
        cases.append(("wide", "SELECT id, wide(pixels).label AS y FROM px WHERE id < 10000 AND id % 100 = 7", 10000))
    out = []
    for model, sql, rows in cases:
        pushed, _ = best_of(s, sql, "dl_centric")
        chosen, ran = best_of(s, sql, None)
        s.sql("SET disabled_rules = 'push_filters'")
        try:
            start = time.perf_counter()
            s.sql(sql, paradigm="dl_centric")  # one run: it infers every row
            unpushed = time.perf_counter() - start
        finally:
            s.sql("SET disabled_rules = ''")
        out.append(
            {
                "model": model,
                "rows": rows,
                "pushed": pushed,
                "optimizer": chosen,
                "ran": ran,
                "inference_then_filter": unpushed,
            }
        )
        log(f"pushdown {model}: {unpushed:.3f} s -> {pushed:.3f} s ({unpushed / pushed:.0f}x)")
    return out


def report(results: list[dict], pushdown: list[dict], failures: list[dict]) -> None:
    print("## Every point (ms; best of runs; optimizer = its own choice)\n")
    print("| model | rows | sel | budget | dl | udf | relation | hybrid | optimizer | chose | best | ratio |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---:|")

    def cell(point: dict, p: str) -> str:
        if p in point["times"]:
            return f"{point['times'][p] * 1000:,.1f}"
        return point["skipped"].get(p, "")

    for r in results:
        print(
            f"| {r['model']} | {r['rows']:,} | {r['selectivity']} | {r['budget']} | "
            + " | ".join(cell(r, p) for p in (*FORCED, "optimizer"))
            + f" | {r['ran']} | {r['best']} | {r['ratio']:.2f} |"
        )
    ratios = [r["ratio"] for r in results]
    within = sum(x <= 1.10 for x in ratios)
    print(
        f"\nOptimizer within 1.10x of the best forced paradigm: {within}/{len(ratios)} points "
        f"({within / len(ratios):.0%}; target >= 95%); worst {max(ratios):.2f}x (target <= 1.5x); "
        f"median {sorted(ratios)[len(ratios) // 2]:.2f}x\n"
    )

    print("## Which paradigm wins where (fastest forced paradigm; count of points)\n")
    wins: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in results:
        size = "<= 100 rows" if r["rows"] <= 100 else "1,000 - 10,000 rows" if r["rows"] <= 10000 else "100,000 rows"
        key = (f"{r['model']}" + (f" ({r['budget']} budget)" if r["budget"] != "none" else ""), size)
        wins[key][r["best"]] += 1
    print("| model | input rows | winner(s) |")
    print("|---|---|---|")
    for (model, size), counter in wins.items():
        print(f"| {model} | {size} | {', '.join(f'{p} ({n})' for p, n in counter.most_common())} |")

    print("\n## A 1%-selective filter on a non-model column (dl_centric both sides)\n")
    print("| model | table rows | inference-then-filter | filter pushed below the model | speed-up | optimizer |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in pushdown:
        print(
            f"| {p['model']} | {p['rows']:,} | {p['inference_then_filter'] * 1000:,.1f} ms | "
            f"{p['pushed'] * 1000:,.1f} ms | {p['inference_then_filter'] / p['pushed']:.0f}x | "
            f"{p['optimizer'] * 1000:,.1f} ms ({p['ran']}) |"
        )
    print("\nTarget: >= 20x.")
    if FLAKY:
        print("\n## Timed rounds that failed (the point kept its other rounds)\n")
        for (sql, c), n in FLAKY.items():
            print(f"- {c or 'optimizer'} on `{sql}`: {n} round(s)")
    if failures:
        print("\n## Points that could not be compared\n")
        for f in failures:
            print(f"- {f['model']}, {f['rows']:,} rows, sel {f['selectivity']}, budget {f['budget']}: {f['errors']}")


if __name__ == "__main__":
    main()
