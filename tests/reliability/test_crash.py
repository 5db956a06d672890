"""SIGKILL at random moments while a file database is being written: nothing committed is lost."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import workbench
from workbench.models import mlp

WRITER = textwrap.dedent("""
    import sys, workbench
    db, weights, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = workbench.connect(db)
    print("ready", flush=True)
    for i in range(start, start + 1000):
        s.sql(f"CREATE TABLE res_{i} AS SELECT id, digits(pixels).label AS l FROM digits "
              f"WHERE id >= {i * 37 % 1500} AND id < {i * 37 % 1500 + 120}")
        print(f"table res_{i}", flush=True)
        s.sql(f"CREATE MODEL m_{i} FROM '{weights}'")
        print(f"model m_{i}", flush=True)
""")


def test_sigkill_while_writing(tmp_path, figures):
    db = str(tmp_path / "crash.duckdb")
    weights = tmp_path / "w.safetensors"
    mlp.save(mlp.MLP([64, 10]), weights)
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('digits')")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(11)
    committed: list[str] = []
    failures, trials, start = 0, 30, 0
    for _ in range(trials):
        proc = subprocess.Popen([sys.executable, str(script), db, str(weights), str(start)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        committed += out.split("\n")
        committed = [c for c in committed if c]
        start += 1000
        try:
            with workbench.connect(db) as s:  # every reopen succeeds
                tables = {r[0]: r[1] for r in s.con.sql(
                    "SELECT table_name, estimated_size FROM duckdb_tables() WHERE table_name LIKE 'res_%'").fetchall()}
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
        except workbench.WorkbenchError:
            failures += 1
    figures["SIGKILL while writing"] = (trials, failures, f"{len(committed)} committed writes checked")
    assert failures == 0 and len(committed) > 0
