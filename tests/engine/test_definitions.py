"""Views, macros and prepared statements over model calls (workbench/engine/definitions.py):
stored by the engine, written out before planning, kept by a file database."""

import pytest

import workbench
from workbench.errors import CatalogError, WorkbenchError

LABELS = "SELECT id, digits(pixels).label AS p FROM digits WHERE id < 5 ORDER BY id"


@pytest.fixture
def s(tmp_path):
    s = workbench.connect(str(tmp_path / "defs.db"))
    s.sql("CALL load_dataset('digits')")
    yield s
    s.close()


def rows(s, sql, params=None, **kw):
    return s.sql(sql, params, **kw).arrow().to_pylist()


def test_view_over_a_model_runs_the_model_when_read(s):
    want = rows(s, LABELS)
    assert "created" in s.sql("CREATE VIEW v AS SELECT id, digits(pixels).label AS p FROM digits").message
    assert rows(s, "SELECT * FROM v WHERE id < 5 ORDER BY id") == want
    # the planner and the cache see through the view: its call is an operator over digits
    # whose outputs the first query cached
    plan = s.explain("SELECT * FROM v WHERE id < 5")
    assert [op.call for op in plan.operators] == ["digits(pixels)"]
    assert plan.operators[0].expected_hit_ratio == 1.0


def test_views_over_views_and_column_names(s):
    s.sql("CREATE VIEW v(i, label_guess) AS SELECT id, digits(pixels).label FROM digits")
    s.sql("CREATE VIEW counts AS SELECT label_guess, count(*) AS n FROM v GROUP BY label_guess")
    got = rows(s, "SELECT * FROM counts ORDER BY label_guess")
    want = rows(s, "SELECT digits(pixels).label AS label_guess, count(*) AS n FROM digits GROUP BY 1 ORDER BY 1")
    assert got == want


@pytest.mark.parametrize("paradigm", ["dl_centric", "udf_centric", "relation_centric", "hybrid"])
def test_view_in_every_paradigm(s, paradigm):
    s.sql("CREATE OR REPLACE VIEW v AS SELECT id, digits(pixels).label AS p FROM digits")
    assert rows(s, "SELECT * FROM v WHERE id < 5 ORDER BY id", paradigm=paradigm) == rows(s, LABELS)


def test_replace_drop_and_errors(s):
    s.sql("CREATE VIEW v AS SELECT id, digits(pixels).label AS p FROM digits")
    with pytest.raises(CatalogError, match="already exists"):
        s.sql("CREATE VIEW v AS SELECT 1 AS x")
    s.sql("CREATE OR REPLACE VIEW v AS SELECT id, digits(pixels).score AS p FROM digits")
    assert isinstance(rows(s, "SELECT p FROM v WHERE id = 1")[0]["p"], float)
    with pytest.raises(WorkbenchError, match="can be read, not changed"):
        s.sql("INSERT INTO v VALUES (1, 2.0)")
    assert "dropped" in s.sql("DROP VIEW v").message
    with pytest.raises(CatalogError):
        s.sql("SELECT * FROM v")
    # a view without model calls is DuckDB's own
    s.sql("CREATE VIEW plain AS SELECT 1 AS x")
    assert rows(s, "SELECT view_name FROM duckdb_views() WHERE view_name = 'plain'") == [{"view_name": "plain"}]
    assert rows(s, "SELECT x FROM plain") == [{"x": 1}]


def test_a_cte_of_the_same_name_hides_the_view(s):
    s.sql("CREATE VIEW v AS SELECT id, digits(pixels).label AS p FROM digits")
    assert rows(s, "WITH v AS (SELECT 42 AS p) SELECT p FROM v") == [{"p": 42}]


def test_definitions_persist_in_a_file_database(tmp_path):
    path = str(tmp_path / "kept.db")
    with workbench.connect(path) as s:
        s.sql("CALL load_dataset('digits')")
        s.sql("CREATE VIEW v AS SELECT id, digits(pixels).label AS p FROM digits")
        s.sql("CREATE MACRO guess(x) AS digits(x).label")
        s.sql("CREATE TEMP VIEW gone AS SELECT digits(pixels).label AS p FROM digits")
        want = rows(s, LABELS)
    with workbench.connect(path) as s:
        assert rows(s, "SELECT * FROM v WHERE id < 5 ORDER BY id") == want
        assert rows(s, "SELECT id, guess(pixels) AS p FROM digits WHERE id < 5 ORDER BY id") == want
        with pytest.raises(CatalogError):
            s.sql("SELECT * FROM gone")


def test_scalar_and_table_macros(s):
    s.sql("CREATE MACRO guess(x) AS digits(x).label")
    s.sql("CREATE MACRO first_n(n) AS TABLE SELECT id, digits(pixels).label AS p FROM digits WHERE id < n")
    assert rows(s, "SELECT id, guess(pixels) AS p FROM digits WHERE id < 5 ORDER BY id") == rows(s, LABELS)
    assert rows(s, "SELECT * FROM first_n(5) ORDER BY id") == rows(s, LABELS)
    with pytest.raises(WorkbenchError, match="takes 1 argument"):
        s.sql("SELECT guess(pixels, pixels) FROM digits")
    assert "dropped" in s.sql("DROP MACRO guess").message


def test_prepared_statements(s):
    s.sql("PREPARE top AS SELECT id, digits(pixels).label AS p FROM digits WHERE id < $1 ORDER BY id")
    assert rows(s, "EXECUTE top(5)") == rows(s, LABELS)
    assert rows(s, "EXECUTE top(:n)", {"n": 5}) == rows(s, LABELS)
    s.sql("PREPARE named AS SELECT id, digits(pixels).label AS p FROM digits WHERE id BETWEEN $lo AND $hi ORDER BY id")
    assert rows(s, "EXECUTE named(lo := 0, hi := 4)") == rows(s, LABELS)
    s.sql("PREPARE plain AS SELECT 40 + ? AS x")  # kept by the session, not by one cursor
    assert rows(s, "EXECUTE plain(2)") == [{"x": 42}]
    s.sql("DEALLOCATE plain")
    with pytest.raises(WorkbenchError):
        s.sql("EXECUTE plain(2)")
