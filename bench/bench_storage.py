"""Benchmark: models stored in the database as deduplicated tensor blocks (issue 18).

Builds five fine-tuned variants of the packaged minilm (each `--steps` AdamW steps on a
different objective over pydoc's training paragraphs, id % 5 != 0; each trains only its top
layers, the embeddings and lower layers stay frozen as in common fine-tuning) and three
variants of the digits MLP (its last layer retrained), saves each as its own safetensors
model, imports them all into one database with `storage = 'database'`, and prints side by
side in one run:
  - physical bytes: the separate safetensors files vs the blocks with exact dedup
    and with accuracy-aware dedup (a second database, max_accuracy_loss = 0.01 validated on
    other held-out rows; per variant its unique bytes, the loss accepted, and its accuracy);
  - each variant's accuracy: cosine of its outputs loaded from blocks to its own float32
    outputs loaded from its file, on held-out pydoc (id % 5 = 0); and how far the
    fine-tune moved it from the base model (cosine to base), so the variants are real;
  - load time from blocks vs from the safetensors file (median of --rounds, interleaved).

    .venv/bin/python bench/bench_storage.py [--steps 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import workbench
from workbench.models import loading, mlp
from workbench.models.builtin import minilm_path
from workbench.models.train_digits import WEIGHTS as DIGITS
from workbench.storage import stats

LR = 1e-4
#: (variant, objective, layers it trains)
MINILM_VARIANTS = [
    ("simcse", "the same paragraph twice under dropout (SimCSE)", (5,)),
    ("topic", "paragraphs of the same pydoc topic as positives", (4, 5)),
    ("halves", "a paragraph's first half retrieves its second half", (3, 4, 5)),
    ("classify", "topic classification through a linear head", (5,)),
    ("uniform", "uniformity of embeddings plus alignment to the base", (4, 5)),
]


def mean_pool(out, mask):
    m = mask.unsqueeze(-1).to(out.dtype)
    return torch.nn.functional.normalize((out * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def info_nce(a, b, temperature=0.05):
    logits = a @ b.T / temperature
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(a)))


def finetune(objective, layers, texts, topics, steps, seed, tok, base):
    import copy

    torch.manual_seed(seed)
    model = copy.deepcopy(base)
    for name, p in model.named_parameters():
        p.requires_grad = any(name.startswith(f"encoder.layer.{i}.") for i in layers)
    topic_ids = {t: i for i, t in enumerate(sorted(set(topics)))}
    head = torch.nn.Linear(384, len(topic_ids))
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LR)
    rng = np.random.default_rng(seed)
    by_topic: dict[str, list[int]] = {}
    for i, t in enumerate(topics):
        by_topic.setdefault(t, []).append(i)
    model.train()

    def embed(batch, m=model):
        enc = tok(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
        return mean_pool(m(**enc).last_hidden_state, enc["attention_mask"])

    for _ in range(steps):
        idx = rng.choice(len(texts), 16, replace=False)
        batch = [texts[i] for i in idx]
        if objective == "simcse":
            loss = info_nce(embed(batch), embed(batch))
        elif objective == "topic":
            pos = [texts[rng.choice(by_topic[topics[i]])] for i in idx]
            loss = info_nce(embed(batch), embed(pos))
        elif objective == "halves":
            firsts = [t[: len(t) // 2] for t in batch]
            seconds = [t[len(t) // 2 :] for t in batch]
            loss = info_nce(embed(firsts), embed(seconds))
        elif objective == "classify":
            labels = torch.tensor([topic_ids[topics[i]] for i in idx])
            loss = torch.nn.functional.cross_entropy(head(embed(batch)), labels)
        else:
            e = embed(batch)
            with torch.no_grad():
                ref = embed(batch, base)
            uniformity = torch.pdist(e).pow(2).mul(-2).exp().mean().log()
            loss = uniformity + (1 - (e * ref).sum(-1)).mean() * 4
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {n: p.detach().contiguous() for n, p in model.named_parameters()}


def save_minilm_variant(trained, target: Path) -> None:
    shutil.copytree(minilm_path(), target, ignore=shutil.ignore_patterns("*.safetensors", ".*"))
    tensors = load_file(os.path.join(minilm_path(), "model.safetensors"))
    for name, value in trained.items():
        if name in tensors and not torch.equal(tensors[name], value):
            tensors[name] = value.clone()
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})


def digits_variant(seed: int, target: Path) -> None:
    from sklearn.datasets import load_digits

    data = load_digits()
    model, saved = mlp.load(DIGITS)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    for p in model.parameters():
        p.requires_grad = False
    last.weight.requires_grad = last.bias.requires_grad = True
    opt = torch.optim.Adam([last.weight, last.bias], lr=1e-3)
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target)
    g = torch.Generator().manual_seed(seed)
    for _ in range(100):
        idx = torch.randint(0, len(x), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.05 * seed)
        opt.zero_grad()
        loss.backward()
        opt.step()
    meta = mlp.metadata(DIGITS)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target), metadata=meta)


def near_store(work: Path, paths: dict[str, Path], held: list[str]) -> dict:
    """The same variants imported into a second database with accuracy-aware dedup
    (max_accuracy_loss = 0.01, validated on other held-out paragraphs / digits): per variant
    (unique bytes, accepted loss, accuracy on the held-out sample), and bytes per family."""
    from workbench.datasets import digits_table

    out: dict = {}
    s = workbench.connect(str(work / "near.duckdb"), progress=False)
    try:
        s.sql("CALL load_dataset('pydoc'); CALL load_dataset('digits')")
        x = np.asarray(digits_table().column("pixels").to_pylist(), np.float32)
        for name, path in paths.items():
            sample = (
                "SELECT body FROM pydoc WHERE id % 5 = 0 ORDER BY id LIMIT 32 OFFSET 64"
                if path.is_dir()
                else "SELECT pixels FROM digits WHERE id % 5 = 0"
            )
            s.sql(
                f"CREATE MODEL {name} FROM '{path}' WITH (storage = 'database', max_accuracy_loss = 0.01, "
                f"validate_on = '{sample}')"
            )
            blocks_model = s.catalog.get(name)
            file_model = loading.from_path(name, str(path), {"task": "embed"} if path.is_dir() else {})
            if path.is_dir():
                a = np.asarray(blocks_model.predict(held).to_pylist(), np.float32)
                acc = cosine(a, np.asarray(file_model.predict(held).to_pylist(), np.float32))
            else:
                a_s, b_s = blocks_model.predict(x), file_model.predict(x)
                acc = float(np.mean(np.equal(a_s.field("label").to_pylist(), b_s.field("label").to_pylist())))
            out[name] = [0, 0.0, acc]
        con = s.cursor()
        for row in stats.table(con).to_pylist():
            out[row["model"]][0:2] = [row["unique_bytes"], row["accuracy_loss"]]
        for family in ("minilm", "digits"):
            names = [n for n in paths if n.startswith(family)]
            out[family] = con.execute(
                "SELECT coalesce(sum(nbytes), 0) FROM workbench_blocks WHERE hash IN "
                "(SELECT hash FROM workbench_tensors WHERE model IN (SELECT unnest($1))) OR hash IN "
                "(SELECT base FROM workbench_blocks WHERE hash IN (SELECT hash FROM workbench_tensors "
                "WHERE model IN (SELECT unnest($1))))",
                [names],
            ).fetchall()[0][0]
        con.close()
    finally:
        s.close()
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"bench_storage: load average {os.getloadavg()}, torch threads {torch.get_num_threads()}, steps {args.steps}")
    work = Path(tempfile.mkdtemp(prefix="bench_storage_"))
    s = workbench.connect(str(work / "store.duckdb"), progress=False)
    try:
        s.sql("CALL load_dataset('pydoc')")
        train = s.sql("SELECT topic, body FROM pydoc WHERE id % 5 <> 0 ORDER BY id").arrow()
        held = s.sql("SELECT body FROM pydoc WHERE id % 5 = 0 ORDER BY id LIMIT 48").arrow().column("body").to_pylist()
        texts, topics = train.column("body").to_pylist(), train.column("topic").to_pylist()
        paths: dict[str, Path] = {}
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(minilm_path())
        base_module = AutoModel.from_pretrained(minilm_path()).eval()
        for i, (name, objective, layers) in enumerate(MINILM_VARIANTS):
            t0 = time.perf_counter()
            trained = finetune(name, layers, texts, topics, args.steps, i, tok, base_module)
            save_minilm_variant(trained, work / name)
            paths[f"minilm_{name}"] = work / name
            print(f"  fine-tuned minilm_{name}: {objective}, layers {layers}, {time.perf_counter() - t0:.0f} s")
        for seed in (1, 2, 3):
            target = work / f"digits_{seed}.safetensors"
            digits_variant(seed, target)
            paths[f"digits_v{seed}"] = target
        rows = []
        base_out = np.asarray(s.catalog.get("minilm").predict(held).to_pylist(), np.float32)
        for name, path in paths.items():
            t0 = time.perf_counter()
            s.sql(f"CREATE MODEL {name} FROM '{path}' WITH (storage = 'database')")
            import_s = time.perf_counter() - t0
            weights = path / "model.safetensors" if path.is_dir() else path
            file_model = loading.from_path(name, str(path), {"task": "embed"} if path.is_dir() else {})
            blocks_model = s.catalog.get(name)
            if path.is_dir():
                a = np.asarray(blocks_model.predict(held).to_pylist(), np.float32)
                b = np.asarray(file_model.predict(held).to_pylist(), np.float32)
                acc, drift, exact = cosine(a, b), cosine(b, base_out), a.tobytes() == b.tobytes()
            else:
                from workbench.datasets import digits_table

                x = np.asarray(digits_table().column("pixels").to_pylist(), np.float32)
                a_s = blocks_model.predict(x)
                b_s = file_model.predict(x)
                acc = float(np.mean(np.equal(a_s.field("label").to_pylist(), b_s.field("label").to_pylist())))
                drift, exact = float("nan"), a_s.equals(b_s)
            file_t, block_t = [], []
            opts = {"task": "embed"} if path.is_dir() else {}
            for _ in range(args.rounds):  # interleaved: both see the same machine load
                t0 = time.perf_counter()
                loading.from_path(name, str(path), opts)
                file_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                s.catalog.from_blocks(name, s.catalog.info(name).options)
                block_t.append(time.perf_counter() - t0)
            rows.append(
                (
                    name,
                    weights.stat().st_size,
                    acc,
                    drift,
                    exact,
                    statistics.median(file_t),
                    statistics.median(block_t),
                    import_s,
                )
            )
        near_rows = near_store(work, paths, held)
        table = stats.table(s.cursor()).to_pylist()
        by = {r["model"]: r for r in table}
        print()
        print(
            f"{'variant':<18}{'file bytes':>13}{'unique blocks':>15}{'shared with':>13}{'accuracy':>10}"
            f"{'vs base':>9}{'bit-exact':>10}{'load file':>11}{'load blocks':>13}{'ratio':>7}{'import':>8}"
            f"{'near: bytes':>13}{'loss':>9}{'accuracy':>10}"
        )
        for name, size, acc, drift, exact, ft, bt, imp in rows:
            print(
                f"{name:<18}{size:>13,}{by[name]['unique_bytes']:>15,}{len(by[name]['shared_with']):>13}"
                f"{acc:>10.6f}{drift:>9.4f}{str(exact):>10}{ft:>10.2f}s{bt:>12.2f}s{bt / ft:>7.2f}{imp:>7.1f}s"
                f"{near_rows[name][0]:>13,}{near_rows[name][1]:>9.5f}{near_rows[name][2]:>10.6f}"
            )
        con = s.cursor()
        for family in ("minilm", "digits"):
            names = [r[0] for r in rows if r[0].startswith(family)]
            one = (
                os.path.getsize(os.path.join(minilm_path(), "model.safetensors"))
                if family == "minilm"
                else DIGITS.stat().st_size
            )
            files = sum(r[1] for r in rows if r[0] in names)
            physical = con.execute(
                "SELECT coalesce(sum(nbytes), 0) FROM workbench_blocks WHERE hash IN "
                "(SELECT hash FROM workbench_tensors WHERE model IN (SELECT unnest($1)))",
                [names],
            ).fetchall()[0][0]
            print(
                f"\n{family}: {len(names)} variants; one model {one:,} B\n"
                f"  {'separate safetensors files':<34}{files:>14,} B  {files / one:5.2f}x one model\n"
                f"  {'blocks, exact dedup':<34}{physical:>14,} B  {physical / one:5.2f}x one model\n"
                f"  {'blocks, accuracy-aware dedup':<34}{near_rows[family]:>14,} B  "
                f"{near_rows[family] / one:5.2f}x one model"
            )
        con.close()
        print(f"\nbench_storage: {time.perf_counter() - started:.0f} s, load average {os.getloadavg()}")
    finally:
        s.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
