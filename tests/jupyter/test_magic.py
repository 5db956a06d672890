"""The magic through a real IPython shell with the extension loaded (no mocks)."""

import random
import time

import polars as pl
import pytest
import torch

from tests.conftest import run
from tests.kill_points import Interrupt


def test_every_statement_through_the_magic(shell, tmp_path):
    shell.user_ns["net"] = torch.nn.Sequential(torch.nn.Linear(64, 10))
    shell.user_ns["question"] = "how do I loop over a list"
    path = tmp_path / "m.safetensors"
    from workbench.models import mlp

    mlp.save(mlp.MLP([64, 10]), path)
    for cell in [
        "%%dlsql\nCREATE MODEL mine FROM PYTHON net WITH (task = 'classify')",
        f"%%dlsql\nCREATE MODEL from_file FROM '{path}'",
        "%%dlsql\nSHOW MODELS",
        "%%dlsql\nDESCRIBE MODEL mine",
        "%%dlsql\nALTER MODEL mine SET batch_size = 32",
        "%%dlsql\nSELECT mine(pixels).label AS a, from_file(pixels).label AS b FROM digits WHERE id < 5",
        "%%dlsql\nEXPLAIN SELECT topic FROM pydoc WHERE list_cosine_similarity(minilm(body), minilm(:question)) > 0.5",
        "%%dlsql\nEXPLAIN ANALYZE SELECT digits(pixels) FROM digits WHERE id < 3",
        "%%dlsql\nDROP MODEL mine",
        "%%dlsql\nDROP MODEL IF EXISTS mine",
    ]:
        ok, value = run(shell, cell)
        assert ok, (cell, value)
    ok, value = run(shell, "%%dlsql\nSHOW MODELS")
    assert set(value.pl()["name"]) == {"digits", "from_file", "minilm"}


def test_output_variable_params_and_summary(shell):
    shell.user_ns["q"] = "file objects"
    ok, value = run(
        shell,
        "%%dlsql -o hits\nSELECT id, list_cosine_similarity(minilm(body), minilm(:q)) AS sim "
        "FROM pydoc WHERE id < 30 ORDER BY sim DESC LIMIT 3",
    )
    assert ok
    hits = shell.user_ns["hits"]
    assert isinstance(hits, pl.DataFrame) and hits.height == 3
    text = repr(value)
    assert "3 rows" in text and "minilm(body): dl_centric, 30 inputs" in text
    assert "minilm($q)" in value._repr_html_() or "minilm(:q)" in value._repr_html_()


def test_ipython_expansion_does_not_touch_sql(shell):
    shell.user_ns["x"] = "SHOULD NOT APPEAR"
    ok, value = run(shell, "%%dlsql\nSELECT '{x}' AS a, '$x' AS b")
    assert ok and value.pl().row(0) == ("{x}", "$x")
    ok, value = run(shell, "%dlsql SELECT :x AS bound")
    assert ok and value.pl()["bound"][0] == "SHOULD NOT APPEAR"


def test_config_display_limit_and_batch_size(shell):
    run(shell, "%config DlsqlMagic.display_limit = 3")
    run(shell, "%config DlsqlMagic.batch_size = 7")
    ok, value = run(shell, "%%dlsql\nSELECT digits(pixels).label FROM digits WHERE id < 50")
    assert ok and "47 more rows" in repr(value) and value.stats[0]["batch_size"] == 7


@pytest.mark.parametrize(
    "cell, fragment",
    [
        ("%%dlsql\nSELEC 1", "SQLSyntaxError"),
        ("%%dlsql\nSELECT nosuchmodel(body) FROM pydoc", "nosuchmodel"),
        ("%%dlsql\nSELECT nope FROM pydoc", "nope"),
        ("%%dlsql\nSELECT minilm(42)", "expects VARCHAR input, got INTEGER"),
        ("%%dlsql\nCREATE MODEL m FROM '/missing/model.safetensors'", "/missing/model.safetensors"),
        ("%%dlsql\nCREATE MODEL m FROM PYTHON undefined_variable", "undefined_variable"),
        ("%%dlsql\nSELECT :undefined_param", ":undefined_param"),
        ("%%dlsql --bogus\nSELECT 1", "unknown option"),
        ("%%dlsql\nSELECT broken_model([1.0, 2.0])", "failed on batch 1"),
    ],
)
def test_errors_are_one_short_line_and_the_shell_survives(shell, capsys, cell, fragment):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("model bug")

    shell.user_ns["broken"] = Broken()
    run(
        shell,
        "%%dlsql\nCREATE OR REPLACE MODEL broken_model FROM PYTHON broken WITH (task='regress', input_dim=2, "
        "output_dim=1)",
    )
    capsys.readouterr()
    ok, err = run(shell, cell)
    out = capsys.readouterr()
    shown = out.out + out.err
    assert not ok and fragment in shown, shown
    assert "Traceback" not in shown and len(shown) < 800
    ok, value = run(shell, "%%dlsql\nSELECT 42 AS answer")
    assert ok and value.pl()["answer"][0] == 42


@pytest.mark.parametrize(
    "cell",
    [
        "%%dlsql\nSELECT count(*) FROM range(100000000000) a",  # long relational query
        "%%dlsql\nCREATE TABLE emb AS SELECT minilm(body || id::VARCHAR) FROM pydoc",  # long inference
    ],
)
def test_interrupt_stops_quickly_and_nothing_partial_is_left(shell, capsys, cell):
    run(shell, "%%dlsql\nSELECT minilm('warm up')")
    session = shell.magics_manager.registry["DlsqlMagic"].session()  # the one the cells run on
    # interrupt a random moment after the statement is under way (DuckDB running it, or the
    # model's first batch done), never timed from the start of the cell
    interrupt = Interrupt(random.Random(cell).uniform(0.0, 0.5), on_duckdb="minilm" not in cell)
    with interrupt.armed(session.telemetry):
        ok, err = run(shell, cell)
        end = time.perf_counter()
    assert interrupt.sent_at is not None, "the cell ended before it showed progress"
    stopped = end - interrupt.sent_at
    assert not ok and "interrupted" in (capsys.readouterr().out + str(err)).lower()
    assert stopped < 1.5, f"took {stopped:.2f} s to stop"
    ok, value = run(shell, "%%dlsql\nSELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'emb'")
    assert ok and value.pl()["n"][0] == 0


def test_file_database_persists_across_sessions(shell, tmp_path):
    db = tmp_path / "notebook.duckdb"
    assert run(shell, f"%%dlsql --db {db}\nCREATE TABLE kept AS SELECT 7 AS x")[0]
    ok, value = run(shell, "%%dlsql\nSELECT x FROM kept")  # --db switches: later cells stay there
    assert ok and value.pl()["x"][0] == 7
    run(shell, "%%dlsql --db :memory:\nSELECT 1")
    assert not run(shell, "%%dlsql\nSELECT x FROM kept")[0]
    ok, value = run(shell, f"%%dlsql --db {db}\nSELECT x FROM kept")
    assert ok and value.pl()["x"][0] == 7
