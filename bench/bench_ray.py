"""Benchmark: minilm over pydoc (cache off) on this machine and on a Ray cluster, in one run.

Side by side: local dl_centric with 1 torch thread and with the engine's default threads,
then `dl_centric on ray` with 1 actor and with 2 actors (one torch thread each) on a two-node
cluster on 127.0.0.1 (tests/cluster/local_cluster.py: `ray start --head` plus a second node,
one CPU each). Every contender runs warm (actors already hold the model; a first pass is not
timed), best of --repeat passes. It prints rows/s, the ratios the issue targets, the overhead
per block, and a model of how throughput and transfer grow with N nodes from the measured
per-actor figures.

    .venv/bin/python bench/bench_ray.py [--rows 400] [--repeat 2]

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import workbench  # noqa: E402
from tests.cluster import local_cluster  # noqa: E402
from workbench.engine import engine as engine_module  # noqa: E402

T0 = time.perf_counter()
QUERY = "SELECT /*+ placement(minilm, {where}) */ id, minilm(body) AS e FROM pydoc WHERE id < {rows}"


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def timed(s: workbench.Session, sql: str, repeat: int) -> tuple[float, dict]:
    s.sql(sql, paradigm="dl_centric")  # warm: the model loaded, the actors started
    best, stats = float("inf"), {}
    for _ in range(repeat):
        t = time.perf_counter()
        result = s.sql(sql, paradigm="dl_centric")
        seconds = time.perf_counter() - t
        if seconds < best:
            best, stats = seconds, result.stats[0]
    return best, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400, help="pydoc rows with id < ROWS (all: 3000)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--address", help="an existing cluster's host:port (default: start one of two nodes)")
    args = parser.parse_args()
    local_cluster.use_in_this_process()
    if args.address:
        cluster = None
    else:
        log("starting a two-node Ray cluster on 127.0.0.1")
        cluster = local_cluster.start(attempts=3)
    try:
        s = workbench.connect(cluster=args.address or cluster.address, progress=False)
        s.sql("CALL load_dataset('pydoc')")
        s.sql("ALTER MODEL minilm SET cache = 'off'")
        rows = s.sql(f"SELECT count(DISTINCT body) AS n FROM pydoc WHERE id < {args.rows}").pl()["n"][0]
        results: dict[str, tuple[float, dict]] = {}
        local = QUERY.format(where="local", rows=args.rows)
        log("local dl_centric, default threads")
        results["local dl_centric (default threads)"] = timed(s, local, args.repeat)
        log("local dl_centric, 1 torch thread")
        cores = os.cpu_count
        engine_module.os.cpu_count = lambda: 1  # type: ignore[attr-defined]  # the planner gives torch 1 thread
        try:
            results["local dl_centric (1 torch thread)"] = timed(s, local, args.repeat)
        finally:
            engine_module.os.cpu_count = cores  # type: ignore[attr-defined]
        for actors in (1, 2):
            log(f"dl_centric on ray, {actors} actor(s)")
            sql = QUERY.format(where=f"ray, {actors}", rows=args.rows)
            results[f"ray, {actors} actor(s)"] = timed(s, sql, args.repeat)
        with s.engine.cursor() as cursor:
            profile = s.engine.models.profile("minilm", s.config, s.engine.constants(cursor))
        facts = s.engine.cluster.facts(profile)
        report(results, rows, facts, torch.get_num_threads())
        s.close()
    finally:
        if cluster is not None:
            log("stopping the cluster")
            local_cluster.stop(cluster)


def report(results: dict[str, tuple[float, dict]], rows: int, facts, threads: int) -> None:
    base = results["local dl_centric (1 torch thread)"][0]
    default = results["local dl_centric (default threads)"][0]
    one = results["ray, 1 actor(s)"][0]
    print(f"\nminilm over {rows:,} distinct pydoc paragraphs, cache off, warm; best of the passes\n")
    print("| contender | seconds | rows/s | vs local 1 thread | vs local default | blocks | overhead/block |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (seconds, stats) in results.items():
        blocks, overhead = "", ""
        if stats.get("placement") == "ray":
            node_s = max(n["seconds"] for n in stats["nodes"])
            blocks = str(stats["batches"])
            overhead = f"{max(seconds - node_s, 0.0) / max(stats['batches'], 1) * 1000:.0f} ms"
        print(
            f"| {name} | {seconds:.2f} | {rows / seconds:,.1f} | {base / seconds:.2f}x | {default / seconds:.2f}x "
            f"| {blocks} | {overhead} |"
        )
    two = results["ray, 2 actor(s)"][0]
    print(f"\nray 1 actor / local (1 thread) = {base / one:.2f}x (target >= 0.75x); ", end="")
    print(f"ray 1 actor / local (default {threads} threads) = {default / one:.2f}x")
    print(f"ray 2 actors / ray 1 actor = {one / two:.2f}x (target >= 1.5x)")
    # the model: N nodes of one CPU each, one actor per CPU
    actor_row_s = facts.actor_row_s or 0.0
    per_row_bytes = 2 * 190 + 384 * 4  # a paragraph there (~190 chars), 384 floats back
    print("\nA model of N nodes (one actor per CPU, the measured per-actor and driver figures):")
    print(f"  per-actor: {1 / max(actor_row_s, 1e-9):,.1f} rows/s; per block: {facts.block_s * 1000:.1f} ms; ")
    print(f"  transfer: {facts.byte_s * 1e9:.2f} s/GB ({per_row_bytes:,} bytes per row there and back)")
    print("\n| nodes | actors | rows/s (model) | transfer per 10k rows | driver-bound limit rows/s |")
    print("|---:|---:|---:|---:|---:|")
    block_rows = 64
    driver_row_s = facts.block_s / block_rows + per_row_bytes * facts.byte_s
    for n in (1, 2, 4, 8, 16, 32):
        throughput = 1 / (actor_row_s / n + driver_row_s)
        print(
            f"| {n} | {n} | {throughput:,.0f} | {10_000 * per_row_bytes * facts.byte_s:.2f} s "
            f"| {1 / driver_row_s:,.0f} |"
        )
    print(
        "\nThroughput grows ~linearly with actors while actor_row_s / N dominates the driver's per-row cost "
        "(blocks and bytes); transfer per row is constant (it grows with rows, not nodes), so the curve "
        "flattens at the driver-bound limit."
    )


if __name__ == "__main__":
    main()
