"""SIGKILL at random moments while a file database is being written: nothing committed is lost."""

import os
import random

import workbench
from tests.kill_points import Forks
from workbench.engine import calibration
from workbench.models import mlp

WRITER = """
def write(db, weights, start):
    s = workbench.connect(db)
    for i in range(int(start), int(start) + 1000):
        s.sql(f"CREATE TABLE res_{i} AS SELECT id, digits(pixels).label AS l FROM digits "
              f"WHERE id >= {i * 37 % 1500} AND id < {i * 37 % 1500 + 120}")
        print(f"table res_{i}", flush=True)
        s.sql(f"CREATE MODEL m_{i} FROM '{weights}'")
        print(f"model m_{i}", flush=True)
"""


def test_sigkill_while_writing(tmp_path, figures):
    db = str(tmp_path / "crash.duckdb")
    weights = tmp_path / "w.safetensors"
    mlp.save(mlp.MLP([64, 10]), weights)
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('digits')")
    rng = random.Random(11)
    committed: list[str] = []
    failures, trials, start = 0, 30, 0
    with Forks(tmp_path / "writer.py", WRITER) as forks:
        for _ in range(trials):
            # the kill lands at a random point of the writing: after the k-th reported commit
            # (a table or a model), somewhere within the next write or two
            committed += forks.kill_after([db, weights, start], commits=rng.randint(1, 4), delay=rng.uniform(0.0, 0.3))
            start += 1000
            failures += check(db, committed)
    figures["SIGKILL while writing"] = (trials, failures, f"{len(committed)} committed writes checked")
    assert failures == 0 and len(committed) >= trials


def check(db, committed):
    """Failures found in the database after a kill (every reopen succeeds)."""
    failures = 0
    try:
        with workbench.connect(db) as s:
            tables = {
                r[0]
                for r in s.con.sql("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'res_%'").fetchall()
            }
            models = s.sql("SHOW MODELS").pl()
            for line in committed:  # nothing committed is lost
                kind, name = line.split()
                if kind == "table" and name not in tables:
                    failures += 1
                if kind == "model" and name not in set(models["name"]):
                    failures += 1
            for name in tables:  # no half-written result: a table is whole or absent
                n = s.sql(f"SELECT count(*) AS n FROM {name}").pl()["n"][0]
                if n != 120:
                    failures += 1
            for source in models["source"]:  # no catalog entry points at something missing
                if source.startswith("/") and not os.path.exists(source):
                    failures += 1
            if calibration.load(s.con) is None:  # stored by the first writer before its first write
                failures += 1
    except workbench.WorkbenchError:
        failures += 1
    return failures
