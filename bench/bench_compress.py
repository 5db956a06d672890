"""Benchmark: quantization and low-rank decomposition of minilm on the CPU, side by side.

Variants: float32; int8 as the engine chooses it within max_accuracy_loss = 0.01 (validated
on 64 paragraphs); int8 on every linear layer; int4 weight-only; low-rank keeping 50% of the
linear layers' parameters. Each is timed embedding the same held-out pydoc paragraphs
(rounds interleaved, median), and compared with float32 on them (mean cosine similarity).
Targets: int8 size ratio <= 0.45, speed-up >= 1.5x, cosine >= 0.99.

    .venv/bin/python bench/bench_compress.py [--rows 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import workbench
from workbench.models import compress, variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    s = workbench.connect(progress=False)
    s.sql("CALL load_dataset('pydoc')")
    texts = s.sql(f"SELECT body FROM pydoc WHERE id % 5 = 1 ORDER BY id LIMIT {args.rows}").pl()["body"].to_list()
    sample = s.sql("SELECT body FROM pydoc WHERE id % 5 = 0 ORDER BY id LIMIT 64").pl()["body"].to_list()
    base = s.catalog.get("minilm")
    module = base.model
    names = [n for n in compress.linear_layers(module) if not n.endswith("pooler.dense")]
    t0 = time.perf_counter()
    chosen, report = variants.build(base, variants.Spec("int8", False, 0.01), sample)
    build_s = time.perf_counter() - t0
    candidates = {
        "float32": module,
        f"int8 within 1% ({report.applied})": chosen.model,
        "int8, every linear layer": variants.dynamic_int8(module, names),
        "int4 weight-only": compress.quantize_embeddings(compress.quantize(module, "int4")),
        "low-rank, 50% of linear params": compress.low_rank(module, compress.ranks_for_fraction(module, 0.5, names)),
    }

    def embed(m):
        base.model = m
        try:
            return base.embed(texts).numpy()
        finally:
            base.model = module

    ref = embed(module)
    outputs = {k: embed(m) for k, m in candidates.items()}  # also the warm-up
    times: dict[str, list[float]] = {k: [] for k in candidates}
    keys = list(candidates)
    for r in range(args.rounds):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t = time.perf_counter()
            embed(candidates[k])
            times[k].append(time.perf_counter() - t)
    fp32_bytes, fp32_s = compress.size_bytes(module), statistics.median(times["float32"])
    print(
        f"minilm on {len(texts)} held-out pydoc paragraphs, {args.rounds} interleaved rounds; "
        f"int8 variant built and validated on 64 other paragraphs in {build_s:.1f} s"
    )
    print()
    print("| variant | size MB | size ratio | median s | speed-up | cosine to fp32 |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = {}
    for k, m in candidates.items():
        size = compress.size_bytes(m)
        med = statistics.median(times[k])
        cos = compress.accuracy(ref, outputs[k], "embed")
        rows[k] = (size / fp32_bytes, fp32_s / med, cos)
        print(f"| {k} | {size / 1e6:.1f} | {size / fp32_bytes:.2f} | {med:.3f} | {fp32_s / med:.2f}x | {cos:.4f} |")
    ratio, speed, cos = rows[keys[1]]
    print()
    print("| target (int8 within 1%) | value | |")
    print("|---|---:|---|")
    print(f"| size ratio <= 0.45 | {ratio:.2f} | {'PASS' if ratio <= 0.45 else 'FAIL'} |")
    print(f"| speed-up >= 1.5x | {speed:.2f}x | {'PASS' if speed >= 1.5 else 'FAIL'} |")
    print(f"| cosine >= 0.99 | {cos:.4f} | {'PASS' if cos >= 0.99 else 'FAIL'} |")
    s.close()


if __name__ == "__main__":
    main()
