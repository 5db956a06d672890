"""Benchmark: what observing a query costs (telemetry off vs on), side by side in one run.

The query embeds pydoc paragraphs with minilm (cache off, so every run does the same work).
"on" means a `Tracker` and the live widget's driver (`LiveDisplay`, without a front end)
subscribed, and the memory sampler running; "off" means nobody listens, so executors get no
callbacks at all. Rounds alternate on/off (first in each round alternates too); the table
gives the median of each and the overhead, target < 2%. It also reports how many widget
updates per second the driver sent.

    .venv/bin/python bench/bench_telemetry.py [--rows 400] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import workbench
import workbench.jupyter.live as live
from workbench.telemetry import Tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    live.display = lambda *a, **k: _Handle()  # no front end here: the widget's state is still built and set
    s = workbench.connect(progress=False)
    s.sql("CALL load_dataset('pydoc'); ALTER MODEL minilm SET cache = 'off'")
    query = f"SELECT count(minilm(body)) AS n FROM pydoc WHERE id < {args.rows}"
    s.sql(query)  # warm-up: model load, batch size tuning
    times: dict[str, list[float]] = {"off": [], "on": []}
    rates = []
    for r in range(args.rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            if mode == "on":
                tracker = Tracker()
                unsubscribe = s.telemetry.subscribe(tracker)
                t0 = time.perf_counter()
                with live.LiveDisplay(s.telemetry) as display:
                    s.sql(query)
                elapsed = time.perf_counter() - t0
                unsubscribe()
                rates.append(display.pushes / elapsed)
            else:
                t0 = time.perf_counter()
                s.sql(query)
                elapsed = time.perf_counter() - t0
            times[mode].append(elapsed)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    overhead = on / off - 1
    print(f"query: {query} ({args.rounds} rounds each, interleaved)")
    print()
    print("| telemetry | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for mode in ("off", "on"):
        t = times[mode]
        print(f"| {mode} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |")
    print()
    print("| target | value | |")
    print("|---|---:|---|")
    print(f"| telemetry overhead (< 2%) | {overhead:+.1%} | {'PASS' if overhead < 0.02 else 'FAIL'} |")
    print(f"| widget updates per second sent | {statistics.median(rates):.1f} | |")
    s.close()


class _Handle:
    def update(self, *a, **k) -> None:
        pass


if __name__ == "__main__":
    main()
