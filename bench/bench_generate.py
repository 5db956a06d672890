"""Benchmark: generation bigger than memory, side by side in one run (issue 16).

One Llama-shaped decoder with random weights (~1 GB of float32, 40 layers; a vocabulary of
word pieces of single characters), the same prompts (pydoc paragraphs cut to 40 characters), greedy
decoding of the same number of new tokens, and a budget of 1/16 of the weights:

    (a) transformers' `generate` with the whole model in memory, at its best batch size
    (b) accelerate's disk offload (`device_map='auto'`, `max_memory` = the budget,
        `offload_folder`), transformers' `generate`, the same batch as (c)
    (c) the engine offloaded (`SET memory_budget_cpu`; offload = 'auto' is the default): every
        decoding step reads each layer once for the whole batch; the batch, the prefill chunk
        and the split of the budget are the cost model's (runtime/schedule.py), printed
    (d) the IO bound: weight bytes read per decoding step / measured read bandwidth, times
        the steps (what (c) would take if it only read)

Tokens are the new tokens of (a) (greedy: (b) and (c) give the same texts, which the bench
checks). (b) needs accelerate (not a dependency of workbench): without it the row is left
out and the bench says so; `pip install accelerate`, or put a copy on PYTHONPATH.

    .venv/bin/python bench/bench_generate.py [--prompts 32] [--new 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import string
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, BertTokenizerFast, LlamaConfig  # noqa: E402

import workbench  # noqa: E402
from workbench.runtime import offload  # noqa: E402

LETTERS = string.ascii_lowercase + string.digits
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *LETTERS, *(f"##{c}" for c in LETTERS)]
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def build(directory: Path) -> int:
    config = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=40,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    size = offload.write_random_checkpoint(config, directory, std=0.2, causal_lm=True)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    tok.padding_side = "left"
    tok.save_pretrained(directory)
    return size


def hf_generate(model, tok, prompts: list[str], new: int, batch: int) -> tuple[list[list[int]], float]:
    out: list[list[int]] = []
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i : i + batch], return_tensors="pt", padding=True)
        enc.pop("token_type_ids", None)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=new, do_sample=False, pad_token_id=0)
        for row in ids[:, enc["input_ids"].shape[1] :].tolist():
            out.append([t for t in row if t != 0])
    return out, time.perf_counter() - t0


def read_bandwidth(directory: Path) -> float:
    """Bytes per second of positional reads of the checkpoint (page cache warm, as in (c))."""
    path = next(directory.glob("*.safetensors"))
    size = path.stat().st_size
    buf = bytearray(64 << 20)
    best = 0.0
    for _ in range(3):
        fd = os.open(path, os.O_RDONLY)
        t0 = time.perf_counter()
        pos = 0
        view = memoryview(buf)
        while pos < size:
            n = os.preadv(fd, [view], pos)
            if n <= 0:
                break
            pos += n
        os.close(fd)
        best = max(best, size / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="wb-bench-gen-"))
    try:
        d = work / "decoder"
        size = build(d)
        budget = size // 16
        log(f"decoder: {size / 1e6:,.0f} MB of weights; budget {budget / 1e6:,.0f} MB (1/16)")
        print(f"load average at start: {os.getloadavg()}, torch threads {torch.get_num_threads()}")
        s = workbench.connect()
        s.sql("CALL load_dataset('pydoc')")
        prompts = [
            r[0]
            for r in s.sql(f"SELECT left(body, 40) FROM pydoc WHERE length(body) > 60 LIMIT {args.prompts}")
            .arrow()
            .column(0)
            .to_pylist()
        ]
        tok = BertTokenizerFast.from_pretrained(d)
        tok.padding_side = "left"

        log("(a) in memory")
        model = AutoModelForCausalLM.from_pretrained(d).eval()
        best = None
        for batch in (8, args.prompts):
            ids, seconds = hf_generate(model, tok, prompts, args.new, batch)
            if best is None or seconds < best[1]:
                best = (batch, seconds, ids)
        assert best is not None
        a_batch, a_seconds, reference = best
        tokens = sum(len(r) for r in reference)
        texts = [tok.decode(r, skip_special_tokens=True) for r in reference]
        del model

        rows = [("(a) transformers generate, in memory", a_batch, a_seconds, None)]

        log("(c) the engine, offloaded")
        s.sql(f"CREATE MODEL dec FROM '{d}' WITH (max_new_tokens = {args.new}, cache = 'off')")
        s.sql(f"SET memory_budget_cpu = '{budget}'")
        s.sql("CREATE TABLE prompts AS SELECT unnest(:p::VARCHAR[]) AS prompt", {"p": prompts})
        schedule = s.explain("SELECT prompt, dec(prompt) AS out FROM prompts").operators[0].memory
        print(f"the engine's schedule (EXPLAIN): {schedule}")
        t0 = time.perf_counter()
        result = s.sql("SELECT prompt, dec(prompt) AS out FROM prompts")
        c_seconds = time.perf_counter() - t0
        got = dict(zip(result.arrow().column(0).to_pylist(), result.arrow().column(1).to_pylist()))
        same_c = all(got[p] == t for p, t in zip(prompts, texts))
        c_batch = result.stats[0]["batch_size"]
        rows.append(("(c) the engine, offloaded", c_batch, c_seconds, same_c))

        log("(b) accelerate disk offload")
        b_row = None
        try:
            import accelerate  # noqa: F401

            folder = work / "offload"
            model = AutoModelForCausalLM.from_pretrained(
                d, device_map="auto", max_memory={"cpu": budget}, offload_folder=str(folder)
            ).eval()
            ids, b_seconds = hf_generate(model, tok, prompts, args.new, c_batch or args.prompts)
            same_b = [tok.decode(r, skip_special_tokens=True) for r in ids] == texts
            b_row = ("(b) accelerate disk offload, same budget", c_batch, b_seconds, same_b)
            del model
        except ImportError:
            log("accelerate is not installed: (b) skipped (pip install accelerate)")
        if b_row is not None:
            rows.insert(1, b_row)

        bandwidth = read_bandwidth(d)
        batches = -(-len(prompts) // (c_batch or len(prompts)))
        steps = batches * (1 + args.new)  # a prefill, then one step per new token, per batch
        d_seconds = steps * size / bandwidth
        rows.append(
            (
                f"(d) IO bound ({bandwidth / 1e9:.1f} GB/s, {steps} steps of {size / 1e6:,.0f} MB)",
                c_batch,
                d_seconds,
                None,
            )
        )

        print(
            f"\n{len(prompts)} prompts, {args.new} new tokens each ({tokens} tokens), greedy; "
            f"weights {size / 1e6:,.0f} MB, budget {budget / 1e6:,.0f} MB (model/budget {size / budget:.0f}x)\n"
        )
        print("| contender | batch | seconds | tokens/s | same text as (a) |")
        print("|---|---:|---:|---:|---|")
        for name, batch, seconds, same in rows:
            shown = "" if same is None else ("yes" if same else "NO")
            print(f"| {name} | {batch} | {seconds:,.2f} | {tokens / seconds:,.1f} | {shown} |")
        if b_row is not None:
            print(f"\n(c) vs (b): {b_row[2] / c_seconds:.1f}x (target >= 5x)")
        print(
            f"(c) vs (d), the IO bound: {c_seconds / d_seconds:.2f}x (target within 1.5x at batch >= 32; "
            f"batch here {c_batch})"
        )
        print(f"load average at end: {os.getloadavg()}")
        s.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
