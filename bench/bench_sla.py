"""Benchmark: SLA violations under each sequencing policy, at three loads, in one run.

Throughput counts completed queries (on time or late); "on time" counts those that met their
deadline. A reproducible mixed workload on pydoc and digits (workbench/scheduler/workload.py) is
replayed against one worker at 0.8, 1.0 and 1.2 times its measured capacity, under fifo,
reorder, drop and hybrid. A drop counts as a violation. Targets: at load 1.2 hybrid has at
least 50% fewer violations than fifo, at 1.0 at least 36% fewer, with completed-query
throughput not lower than fifo's; the estimator's median relative error <= 25%.

    .venv/bin/python bench/bench_sla.py [--queries N]      (about 4 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import sys

import workbench
from workbench.scheduler import POLICIES
from workbench.scheduler import workload as wl

LOADS = (0.8, 1.0, 1.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=80)
    args = parser.parse_args()
    s = workbench.connect(workers=1)
    wl.prepare(s)
    kinds = wl.kinds(s)
    print("measuring service times", file=sys.stderr, flush=True)
    service = wl.measure(s, kinds)
    reports = []
    for load in LOADS:
        arrivals = wl.generate(kinds, service, args.queries, load, workers=1, seed=int(load * 10))
        for policy in POLICIES:
            r = wl.replay(s, arrivals, policy, load)
            print(f"load {load} {policy}: {r.violations} violations", file=sys.stderr, flush=True)
            reports.append(r)

    print("mean service time per kind (ms): " + ", ".join(f"{k} {v * 1000:.0f}" for k, v in service.items()))
    print()
    print(
        "| load | policy | queries | violations | drops | late | throughput (q/s) | on time (q/s) | p50 ms | "
        "p99 ms | est. median err | est. p90 err |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in reports:
        late = r.violations - r.drops
        print(
            f"| {r.load} | {r.policy} | {r.queries} | {r.violations} | {r.drops} | {late} | {r.throughput:.2f} | "
            f"{r.goodput:.2f} | {r.p50_ms:,.0f} | {r.p99_ms:,.0f} | {r.est_median:.0%} | {r.est_p90:.0%} |"
        )
    print()
    by = {(r.load, r.policy): r for r in reports}
    print("| target | value | |")
    print("|---|---:|---|")
    for load, need in ((1.2, 0.50), (1.0, 0.36)):
        fifo, hybrid = by[(load, "fifo")], by[(load, "hybrid")]
        cut = 1 - hybrid.violations / fifo.violations if fifo.violations else 0.0
        print(
            f"| hybrid vs fifo violations at load {load} (>= {need:.0%} fewer) | {cut:.0%} fewer | "
            f"{'PASS' if cut >= need else 'FAIL'} |"
        )
        ok = hybrid.throughput >= fifo.throughput
        print(
            f"| hybrid throughput >= fifo at load {load} | {hybrid.throughput:.2f} vs {fifo.throughput:.2f} | "
            f"{'PASS' if ok else 'FAIL'} |"
        )
    errs = sorted(r.est_median for r in reports)
    median = errs[len(errs) // 2]
    print(f"| estimator median relative error (<= 25%) | {median:.0%} | {'PASS' if median <= 0.25 else 'FAIL'} |")
    s.close()


if __name__ == "__main__":
    main()
