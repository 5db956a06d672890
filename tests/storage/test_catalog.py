"""`storage = 'database'` from SQL: the database file carries its models, outputs equal the
file's bit for bit, shared blocks survive a DROP, `CALL storage_stats()` shows the sharing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

import workbench
from workbench.errors import CatalogError, ModelLoadError
from workbench.models.builtin import minilm_path
from workbench.models.train_digits import WEIGHTS

QUESTIONS = ["how do I open a file", "list comprehension syntax", "what is a decorator"]


def _digits_out(s, model):
    """The model's outputs on the first 200 digits in one fixed batch (a query's batches
    depend on the plan, whose float rounding differs between runs of the same weights)."""
    from workbench.datasets import digits_table

    batch = np.asarray(digits_table().column("pixels").to_pylist()[:200], np.float32)
    return s.catalog.get(model).predict(batch)


def _embeddings(s, model):
    return np.asarray(s.catalog.get(model).predict(QUESTIONS).to_pylist(), np.float32)


_REOPEN = """
import json, sys
import numpy as np
import workbench
from workbench.datasets import digits_table

s = workbench.connect(sys.argv[1])
batch = np.asarray(digits_table().column("pixels").to_pylist()[:200], np.float32)
d = s.catalog.get("d").predict(batch).field("score").to_pylist()
e = s.catalog.get("m").predict(json.loads(sys.argv[2])).to_pylist()
s.sql("CALL load_dataset('digits')")
n = s.sql("SELECT count(*) AS n FROM digits WHERE d(pixels).label = label").arrow().column("n")[0].as_py()
print(json.dumps({"digits": d, "minilm": e, "right": n}))
"""


def test_a_copied_database_file_runs_its_models_without_their_files(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    shutil.copy(WEIGHTS, here / "d.safetensors")
    shutil.copytree(minilm_path(), here / "mini")
    s = workbench.connect(str(here / "w.duckdb"))
    try:
        s.sql("CALL load_dataset('digits')")
        s.sql(f"CREATE MODEL d FROM '{here / 'd.safetensors'}' WITH (storage = 'database')")
        s.sql(f"CREATE MODEL m FROM '{here / 'mini'}' WITH (storage = 'database')")
        s.sql(f"CREATE MODEL d_file FROM '{here / 'd.safetensors'}'")
        from_blocks, from_file = _digits_out(s, "d"), _digits_out(s, "d_file")
        assert from_blocks.equals(from_file)  # bit for bit
        assert s.catalog.get("d").fingerprint() == s.catalog.get("d_file").fingerprint()
        e_blocks, e_file = _embeddings(s, "m"), _embeddings(s, "minilm")
        assert e_blocks.tobytes() == e_file.tobytes()
        s.sql("DROP MODEL d_file")
    finally:
        s.close()
    shutil.copy(here / "w.duckdb", there / "w.duckdb")
    shutil.rmtree(here)  # the weights files are gone: only the copied database is left
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_REOPEN), str(there / "w.duckdb"), json.dumps(QUESTIONS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    scores = np.array(from_file.field("score").to_pylist(), np.float32)
    assert np.array(got["digits"], np.float32).tobytes() == scores.tobytes()
    assert np.array(got["minilm"], np.float32).tobytes() == e_file.tobytes()
    assert got["right"] > 1700  # the copied database's model runs in SQL too


def test_shared_blocks_survive_dropping_one_model_and_stats_show_the_sharing(tmp_path):
    tuned = load_file(str(WEIGHTS))
    last = sorted(tuned)[-1]
    tuned[last] = tuned[last] + 0.25  # a variant: its last tensor changed, the rest shared
    from workbench.models import mlp

    variant = tmp_path / "variant.safetensors"
    save_file(tuned, str(variant), metadata=mlp.metadata(WEIGHTS))
    s = workbench.connect(str(tmp_path / "w.duckdb"))
    try:
        s.sql("CALL load_dataset('digits')")
        s.sql(f"CREATE MODEL base FROM '{WEIGHTS}' WITH (storage = 'database')")
        s.sql(f"CREATE MODEL variant FROM '{variant}' WITH (storage = 'database')")
        s.sql(f"CREATE MODEL variant_file FROM '{variant}'")
        stats = s.sql("CALL storage_stats()").arrow().to_pylist()
        by = {r["model"]: r for r in stats}
        assert by["base"]["shared_with"] == ["variant"] and by["variant"]["shared_with"] == ["base"]
        assert by["variant"]["unique_bytes"] == tuned[last].numel() * 4
        assert by["base"]["logical_bytes"] == by["base"]["physical_bytes"] > by["base"]["unique_bytes"]
        described = dict(zip(*s.sql("DESCRIBE MODEL variant").arrow().to_pydict().values()))
        assert described["storage.shared_with"] == "['base']" and described["storage.accuracy_loss"] == "0.0"
        s.sql("DROP MODEL base")
        assert _digits_out(s, "variant").equals(_digits_out(s, "variant_file"))
        (row,) = s.sql("CALL storage_stats()").arrow().to_pylist()
        assert row["model"] == "variant" and row["shared_with"] == [] and row["unique_bytes"] == row["physical_bytes"]
        total = s.sql("SELECT sum(nbytes) AS n FROM workbench_blocks").arrow().column("n")[0].as_py()
        assert total == row["physical_bytes"]  # the blocks only base held are gone
    finally:
        s.close()


def test_alter_model_moves_a_model_into_the_database_and_back(tmp_path):
    shutil.copy(WEIGHTS, tmp_path / "d.safetensors")
    s = workbench.connect()
    try:
        s.sql("CALL load_dataset('digits')")
        s.sql(f"CREATE MODEL d FROM '{tmp_path / 'd.safetensors'}'")
        before = _digits_out(s, "d")
        s.sql("ALTER MODEL d SET storage = 'database'")
        assert s.sql("CALL storage_stats()").arrow().column("model").to_pylist() == ["d"]
        assert _digits_out(s, "d").equals(before)
        s.sql("ALTER MODEL d SET storage = 'file'")
        assert s.sql("CALL storage_stats()").arrow().num_rows == 0
        assert s.sql("SELECT count(*) AS n FROM workbench_blocks").arrow().column("n")[0].as_py() == 0
        assert _digits_out(s, "d").equals(before)
    finally:
        s.close()


def test_bad_storage_options_are_one_line_errors():
    s = workbench.connect()
    try:
        with pytest.raises(ModelLoadError, match="storage must be 'file' or 'database'"):
            s.sql(f"CREATE MODEL d FROM '{WEIGHTS}' WITH (storage = 'disk')")
        with pytest.raises(CatalogError, match="storage = 'database' takes a model FROM a path"):
            s.sql("CREATE MODEL p FROM PYTHON net WITH (storage = 'database')", namespace={"net": _net()})
        with pytest.raises(CatalogError, match="cannot be changed"):
            s.sql("ALTER MODEL minilm SET storage = 'database'")
        assert "d" not in s.catalog and "p" not in s.catalog
    finally:
        s.close()


def _net():
    import torch

    return torch.nn.Linear(4, 2)
