"""Accuracy-aware dedup: near blocks found by their sketch, stored as base + int8 delta,
kept only within the model's max_accuracy_loss on its validation sample."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import torch
from safetensors.torch import load_file, save_file

import workbench
from workbench.models import mlp
from workbench.models.builtin import minilm_path
from workbench.models.train_digits import WEIGHTS
from workbench.storage import near, source, store


def test_a_slightly_changed_block_keeps_its_sketch_and_rebuilds_within_tolerance():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(100_000).astype(np.float32)
    tuned = base + rng.standard_normal(base.size).astype(np.float32) * 1e-3
    assert near.sketch(base) == near.sketch(tuned)
    delta = near.encode(tuned, "h", base)
    assert delta is not None and len(delta.data) == base.size  # a quarter of the float32 bytes
    rebuilt = near.decode(base, delta.data, delta.scale)
    assert np.linalg.norm(rebuilt - tuned) / np.linalg.norm(tuned) < 1e-4
    unrelated = rng.standard_normal(base.size).astype(np.float32)
    assert near.encode(unrelated, "h", base) is None  # the rebuilt block would err too much


def _write(con, name, path, near_dedup):
    src = source.read(name, str(path), is_mlp=True)
    try:
        con.execute("BEGIN TRANSACTION")
        store.write(con, name, src, near_dedup=near_dedup)
        con.execute("COMMIT")
    finally:
        src.close()


def test_near_blocks_are_stored_as_deltas_and_survive_dropping_their_base(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(512, 512, generator=g), "b": torch.randn(512, generator=g)}
    tuned = {k: v + torch.randn(v.shape, generator=g) * 1e-3 for k, v in base.items()}
    save_file(base, str(tmp_path / "base.safetensors"))
    save_file(tuned, str(tmp_path / "tuned.safetensors"))
    con = duckdb.connect()
    store.ensure(con)
    _write(con, "base", tmp_path / "base.safetensors", False)
    _write(con, "tuned", tmp_path / "tuned.safetensors", True)
    total = con.execute(f"SELECT sum(nbytes) FROM {store.BLOCKS}").fetchall()[0][0]
    assert total == (512 * 512 + 512) * 4 + (512 * 512 + 512)  # the tuned model: int8 deltas only
    con.execute("BEGIN TRANSACTION")
    store.drop(con, "base")
    con.execute("COMMIT")
    (got,) = store.load(con, "tuned").tensors.values()
    for k, v in tuned.items():
        assert got[k].shape == v.shape and float((got[k] - v).norm() / v.norm()) < 1e-3
    con.execute("BEGIN TRANSACTION")
    store.drop(con, "tuned")
    con.execute("COMMIT")
    assert con.execute(f"SELECT count(*) FROM {store.BLOCKS}").fetchall()[0][0] == 0
    assert con.execute(f"SELECT count(*) FROM {store.SKETCHES}").fetchall()[0][0] == 0


def test_a_digits_variant_is_stored_as_deltas_within_its_accuracy_loss(tmp_path):
    tuned = {
        k: v + torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) * v.std() * 1e-2
        for k, v in load_file(str(WEIGHTS)).items()
    }
    variant = tmp_path / "variant.safetensors"
    save_file(tuned, str(variant), metadata=mlp.metadata(WEIGHTS))
    s = workbench.connect()
    try:
        s.sql("CALL load_dataset('digits')")
        s.sql(f"CREATE MODEL base FROM '{WEIGHTS}' WITH (storage = 'database')")
        s.sql(
            f"CREATE MODEL variant FROM '{variant}' WITH (storage = 'database', max_accuracy_loss = 0.01, "
            "validate_on = 'SELECT pixels FROM digits WHERE id % 5 = 0')"
        )
        by = {r["model"]: r for r in s.sql("CALL storage_stats()").arrow().to_pylist()}
        assert by["variant"]["unique_bytes"] * 3 < by["base"]["physical_bytes"]  # int8 deltas
        assert 0 <= by["variant"]["accuracy_loss"] <= 0.01
        described = dict(zip(*s.sql("DESCRIBE MODEL variant").arrow().to_pydict().values()))
        assert float(described["storage.accuracy_loss"]) == by["variant"]["accuracy_loss"]
        right = s.sql("SELECT count(*) AS n FROM digits WHERE variant(pixels).label = label").arrow()
        assert right.column("n")[0].as_py() > 1700
    finally:
        s.close()


def test_an_embedder_over_its_loss_is_stored_exactly_and_within_it_as_deltas(tmp_path):
    shutil.copytree(minilm_path(), tmp_path / "tuned")
    weights = load_file(str(tmp_path / "tuned" / "model.safetensors"))
    g = torch.Generator().manual_seed(2)
    for k in [k for k in weights if k.startswith("encoder.layer.5.") and k.endswith("weight")]:
        weights[k] = weights[k] + torch.randn(weights[k].shape, generator=g) * 1e-3
    save_file(weights, str(tmp_path / "tuned" / "model.safetensors"), metadata={"format": "pt"})
    s = workbench.connect()
    try:
        s.sql("CALL load_dataset('pydoc')")
        s.sql("CREATE MODEL base FROM 'minilm' WITH (storage = 'database')")
        sample = "validate_on = 'SELECT body FROM pydoc WHERE id % 5 = 0 LIMIT 16'"
        tuned = tmp_path / "tuned"
        s.sql(f"CREATE MODEL loose FROM '{tuned}' WITH (storage = 'database', max_accuracy_loss = 0.01, {sample})")
        s.sql(f"CREATE MODEL strict FROM '{tuned}' WITH (storage = 'database', max_accuracy_loss = 0, {sample})")
        by = {r["model"]: r for r in s.sql("CALL storage_stats()").arrow().to_pylist()}
        assert by["strict"]["accuracy_loss"] == 0.0  # a delta changes the outputs: refused, stored exactly
        assert 0 < by["loose"]["accuracy_loss"] <= 0.01
        assert by["loose"]["unique_bytes"] * 3 < by["strict"]["unique_bytes"]
        texts = ["how do I open a file", "what is a decorator"]
        file_model = s.catalog.get("strict")
        from workbench.models import loading

        exact = loading.from_path("t", str(tmp_path / "tuned"), {"task": "embed"}).predict(texts)
        assert file_model.predict(texts).equals(exact)
    finally:
        s.close()
