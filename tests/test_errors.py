"""Errors are one line of at most 300 characters, and Ctrl-C anywhere is QueryInterrupted."""

import os
import signal
import time

import pytest

from tests.conftest import run
from workbench.errors import (
    MAX_MESSAGE,
    CatalogError,
    ExecutionError,
    ModelError,
    QueryInterrupted,
    SQLSyntaxError,
    WorkbenchError,
    shorten,
)
from workbench.models import builtin

LONG = "a" * 5000


def assert_bounded(message: str) -> None:
    assert len(message) <= MAX_MESSAGE and "\n" not in message, message


@pytest.mark.parametrize(
    "sql, error, fragment",
    [
        (f"SELECT * FROM {LONG}", CatalogError, "Table with name " + "a" * 40 + "…" + "a" * 10 + " does not exist"),
        (f'SELECT "{LONG}" FROM digits', CatalogError, "a" * 40 + "…"),
        (f"SELECT {LONG}(pixels) FROM digits", CatalogError, "models: digits, minilm"),
        (f"SELECT '{LONG}'::INT", ExecutionError, "Could not convert string"),
        (f"SELECT 1 AS x FROM digits WHERE {' AND '.join(f'x{i} = {i}' for i in range(400))}", CatalogError, "x0"),
        (f"SELEC {LONG}", SQLSyntaxError, "syntax error"),
    ],
)
def test_every_error_is_one_bounded_line(digits_session, sql, error, fragment):
    with pytest.raises(error) as info:
        digits_session.sql(sql)
    assert_bounded(str(info.value))
    assert fragment in str(info.value)


def test_the_bound_holds_for_errors_raised_anywhere():
    for cls in (WorkbenchError, ModelError, CatalogError):
        message = str(cls(f"model 'm' failed on '{LONG}'\nsecond line\n" + "word " * 200))
        assert_bounded(message)
        assert message.startswith("model 'm' failed on '" + "a" * 39) and "…" in message
    assert str(WorkbenchError("short\nmessage")) == "short message"
    # under the limit nothing is abbreviated (a path stays whole)
    path = "/home/someone/projects/a/rather/long/path/to/the/model.safetensors"
    assert shorten(f"cannot load {path}: bad header") == f"cannot load {path}: bad header"


@pytest.mark.parametrize(
    "sql, where",
    [
        ("SELEC 1", '"SELEC" (line 1, column 1)'),
        ("SELECT 1,\n  2 FROM\n  (SELECT 1", '"1" (line 3, column 11)'),
        (f"SELECT * FROM t WHERE {' AND '.join(f'c{i} = {i}' for i in range(30))} AND )", '")" (line 1)'),
    ],
)
def test_syntax_errors_are_one_line_with_the_position(session, sql, where):
    with pytest.raises(SQLSyntaxError) as info:
        session.sql(sql)
    assert str(info.value) == f"syntax error at or near {where}"


def test_the_magic_shows_one_bounded_line(shell):
    for cell in ("%%dlsql\nSELECT 1,\n  2 FROM\n  (SELECT 1", f"%%dlsql\nSELECT * FROM {LONG}"):
        ok, error = run(shell, cell)
        assert not ok
        (shown,) = error._render_traceback_()
        assert_bounded(shown)


def _loader_interrupted_by_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # as Jupyter's "Interrupt kernel" sends it
    time.sleep(5)  # the load under way when the signal lands
    raise AssertionError("the interrupt did not arrive")


CALLS = {
    "sql": lambda s, q: s.sql(q),
    "explain analyze": lambda s, q: s.explain(q, analyze=True),
}


@pytest.mark.parametrize("call", CALLS)
def test_ctrl_c_during_a_lazy_model_load_is_query_interrupted(digits_session, monkeypatch, call):
    info = builtin.BUILTINS["digits"][0]
    with monkeypatch.context() as m:
        m.setitem(builtin.BUILTINS, "digits", (info, _loader_interrupted_by_ctrl_c))
        with pytest.raises(QueryInterrupted, match="query interrupted; nothing was saved"):
            CALLS[call](digits_session, "CREATE TABLE labels AS SELECT digits(pixels).label AS l FROM digits")
    assert digits_session.sql("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'labels'").pl()["n"][0] == 0
    assert digits_session.sql("SELECT digits(pixels).label AS l FROM digits WHERE id = 0").pl()["l"][0] == 0
