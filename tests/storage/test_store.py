"""The block tables: exact round trips, dedup across models, GC on drop, and a kill -9 in the
middle of an import leaving nothing behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import torch
from safetensors.torch import save_file

from workbench.models import mlp
from workbench.storage import source, store


def _write(con, name, path):
    src = source.read(name, str(path), is_mlp=True)
    try:
        con.execute("BEGIN TRANSACTION")
        store.write(con, name, src)
        con.execute("COMMIT")
    finally:
        src.close()


def _tensors(tmp_path, name, tensors):
    f = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(f), metadata={"note": name})
    return f


def _orphans(con):
    return con.execute(
        f"SELECT count(*) FROM {store.BLOCKS} b WHERE NOT EXISTS "
        f"(SELECT 1 FROM {store.TENSORS} t WHERE t.hash = b.hash)"
    ).fetchall()[0][0]


def test_tensors_come_back_bit_for_bit_in_every_dtype(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "big": torch.randn(700, 1000, generator=g),  # 2.8 MB: several blocks of whole rows
        "bf16": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "odd": torch.arange(7, dtype=torch.int8),  # leaves the next tensor misaligned in Arrow's buffer
        "after_odd": torch.randn(33, generator=g, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
        "nan": torch.tensor([float("nan"), -0.0, float("inf")]),
    }
    con = duckdb.connect()
    store.ensure(con)
    _write(con, "m", _tensors(tmp_path, "m", tensors))
    loaded = store.load(con, "m")
    (got,) = loaded.tensors.values()
    assert loaded.layout == "mlp" and loaded.metadata == {"m.safetensors": {"note": "m"}}
    assert set(got) == set(tensors)
    for name, t in tensors.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape
        assert got[name].contiguous().view(torch.uint8).numpy().tobytes() == t.view(torch.uint8).numpy().tobytes()


def test_identical_blocks_are_stored_once_and_dropping_one_model_keeps_the_others(tmp_path):
    g = torch.Generator().manual_seed(1)
    base = {"emb": torch.randn(2000, 256, generator=g), "head": torch.randn(10, 256, generator=g)}
    tuned = {"emb": base["emb"].clone(), "head": base["head"] + 0.01}
    tuned["emb"][1500] += 0.5  # one row changed: one block of the embedding differs
    con = duckdb.connect()
    store.ensure(con)
    _write(con, "base", _tensors(tmp_path, "base", base))
    one = con.execute(f"SELECT sum(nbytes) FROM {store.BLOCKS}").fetchall()[0][0]
    _write(con, "tuned", _tensors(tmp_path, "tuned", tuned))
    both = con.execute(f"SELECT sum(nbytes) FROM {store.BLOCKS}").fetchall()[0][0]
    emb_block = (2000 - 1024) * 256 * 4  # the second block: rows 1024.. (a block is 1 MiB of rows)
    assert both == one + emb_block + 10 * 256 * 4  # the changed block and the new head only
    con.execute("BEGIN TRANSACTION")
    store.drop(con, "base")
    con.execute("COMMIT")
    assert _orphans(con) == 0
    assert con.execute(f"SELECT sum(nbytes) FROM {store.BLOCKS}").fetchall()[0][0] == 2000 * 256 * 4 + 10 * 256 * 4
    (got,) = store.load(con, "tuned").tensors.values()
    assert torch.equal(got["emb"], tuned["emb"]) and torch.equal(got["head"], tuned["head"])
    con.execute("BEGIN TRANSACTION")
    store.drop(con, "tuned")
    con.execute("COMMIT")
    assert con.execute(f"SELECT count(*) FROM {store.BLOCKS}").fetchall()[0][0] == 0


_VICTIM = """
import sys
import workbench

s = workbench.connect(sys.argv[1])
s.sql("CREATE MODEL small_mlp FROM '" + sys.argv[2] + "' WITH (storage = 'database')")
print("committed small_mlp", flush=True)

def blocked(written):  # mid-import: tell the parent, then wait for the kill
    print("wrote", written, flush=True)
    sys.stdin.readline()

s.catalog.on_import_progress = blocked
s.sql("CREATE MODEL big FROM '" + sys.argv[3] + "' WITH (storage = 'database')")
print("committed big", flush=True)
"""


def test_kill_9_during_an_import_leaves_no_half_model_and_no_orphan_block(tmp_path):
    import workbench

    small = tmp_path / "small.safetensors"
    mlp.save(mlp.MLP([64, 32, 10]), small, task="classify")
    big = tmp_path / "big.safetensors"
    mlp.save(mlp.MLP([64, 2048, 4096, 10]), big, task="classify")  # 34 MB: several insert batches
    db = tmp_path / "k.duckdb"
    victim = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_VICTIM), str(db), str(small), str(big)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "committed small_mlp"
        assert victim.stdout.readline().startswith("wrote ")  # blocks of `big` written, not committed
        victim.kill()  # SIGKILL
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -9
    s = workbench.connect(str(db))
    try:
        assert "small_mlp" in s.catalog and "big" not in s.catalog
        con = s.cursor()
        assert con.execute(f"SELECT DISTINCT model FROM {store.TENSORS}").fetchall() == [("small_mlp",)]
        assert con.execute(f"SELECT model FROM {store.STORED}").fetchall() == [("small_mlp",)]
        assert _orphans(con) == 0
        con.close()
        s.sql("CALL load_dataset('digits')")
        assert s.sql("SELECT small_mlp(pixels).label AS p FROM digits WHERE id < 3").arrow().num_rows == 3
    finally:
        s.close()
