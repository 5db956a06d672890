"""A fully-cached query in a fresh process plans and answers without loading the model
(workbench/models/deferred.py); the first miss loads it, and the answers are the model's."""

import json
import subprocess
import sys

import pyarrow as pa

import workbench
from workbench.models.deferred import Deferred

QUERY = "SELECT body, minilm(body) AS e FROM pydoc WHERE id < 40 ORDER BY id"

FRESH = """
import json, sys
import workbench
from workbench.models.deferred import Deferred
s = workbench.connect(sys.argv[1], progress=False)
cached = s.sql(sys.argv[2]).arrow()
m = s.engine.models.base("minilm", s.config)
deferred = isinstance(m, Deferred) and not m.loaded
stats = s.sql(sys.argv[2]).stats[0]
miss = s.sql("SELECT minilm('a sentence that no pydoc paragraph holds') AS e").arrow()
print(json.dumps({"deferred": deferred, "hits": stats["cache_hits"], "rows": cached.num_rows,
                  "first": cached.column("e")[0].as_py(), "loaded_after_miss": m.loaded,
                  "miss": miss.column("e")[0].as_py()}))
"""


def test_fully_cached_query_in_a_fresh_process_does_not_load_the_model(tmp_path):
    db = str(tmp_path / "cached.db")
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('pydoc')")
        want = s.sql(QUERY).arrow()
        miss_want = s.model("minilm").predict(["a sentence that no pydoc paragraph holds"])
    out = subprocess.run([sys.executable, "-c", FRESH, db, QUERY], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["deferred"], "the fully-cached query loaded the model"
    assert got["rows"] == want.num_rows and got["hits"] == want.num_rows
    assert got["first"] == want.column("e")[0].as_py()  # the cached values, exactly
    assert got["loaded_after_miss"]
    assert got["miss"] == miss_want[0].as_py()


def test_a_changed_model_file_is_not_answered_from_the_record(tmp_path):
    """The record is keyed by the files: touching them (new weights) makes the engine load."""
    import torch

    from workbench.models import mlp

    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    mlp.save(mlp.MLP([4, 3]), str(path), task="embed")
    db = str(tmp_path / "d.db")
    with workbench.connect(db) as s:
        s.sql(f"CREATE MODEL m FROM '{path}' WITH (task = 'embed')")
        s.sql("CREATE TABLE xs AS SELECT [1.0, 2.0, 3.0, 4.0]::FLOAT[4] AS x")
        first = s.sql("SELECT m(x) AS e FROM xs", paradigm="dl_centric").arrow()
    with workbench.connect(db) as s:
        assert isinstance(s.engine.models.base("m", s.config), Deferred)
    torch.manual_seed(1)
    mlp.save(mlp.MLP([4, 3]), str(path), task="embed")
    with workbench.connect(db) as s:
        assert not isinstance(s.engine.models.base("m", s.config), Deferred)
        second = s.sql("SELECT m(x) AS e FROM xs", paradigm="dl_centric").arrow()
    assert isinstance(first.column("e").type, pa.DataType)
    assert first.column("e").to_pylist() != second.column("e").to_pylist()
