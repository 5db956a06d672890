"""Hostile values bound from Python never act as SQL; safe mode shuts SQL out of files and the network."""

import pytest

import workbench
from tests.conftest import run
from workbench.errors import CatalogError, ExecutionError, ModelLoadError


def hostile_values(tmp_path):
    target = tmp_path / "leak"
    base = [
        "'",
        "''",
        '"',
        "'; DROP TABLE t; --",
        f"'; COPY (SELECT 42) TO '{target}.csv'; --",
        f"'); ATTACH '{target}.db' AS x; --",
        "'; INSTALL httpfs; LOAD httpfs; --",
        "' || (SELECT string_agg(content, '') FROM read_text('/etc/passwd')) || '",
        "read_csv('/etc/passwd')",
        "\u2019; DROP TABLE t; --",
        "\u02bc OR 1=1 --",
        "$q",
        ":q",
        "?",
        "\\'; DROP TABLE t; --",
        "/* */ DROP TABLE t",
        "\x00'; DROP TABLE t; --",
        "%(x)s",
        "{x}",
        "SELECT * FROM duckdb_settings()",
        "1; PRAGMA enable_profiling",
        "'; SET enable_external_access=true; --",
    ]
    values = []
    for i in range(200):
        v = base[i % len(base)]
        values.append(v if i < len(base) else f"{v} #{i}")
    return values, target


def test_200_hostile_values_have_no_side_effect(session, tmp_path, figures, shell):
    values, target = hostile_values(tmp_path)
    session.sql("CREATE TABLE t AS SELECT 'alice' AS name")
    before = session.sql("SELECT count(*) AS n FROM duckdb_databases()").pl()["n"][0]
    failures = 0
    for i, v in enumerate(values):
        got = session.sql("SELECT :v AS v, (SELECT count(*) FROM t WHERE name = :v) AS n", {"v": v}).pl().row(0)
        failures += got != (v, 0)
        if i % 20 == 0:  # through a model, and through the magic's notebook variables
            emb = session.sql("SELECT len(minilm(:v)) AS d", {"v": v}).pl()["d"][0]
            failures += emb != 384
            shell.user_ns["hostile"] = v
            ok, res = run(shell, "%%dlsql\nSELECT :hostile AS v")
            failures += not ok or res.pl()["v"][0] != v
    failures += session.sql("SELECT count(*) AS n FROM t").pl()["n"][0] != 1
    failures += session.sql("SELECT count(*) AS n FROM duckdb_databases()").pl()["n"][0] != before
    failures += any(tmp_path.glob("leak*"))
    figures["injection: hostile bound values"] = (len(values), failures, "no file, attach, install or drop")
    assert failures == 0


@pytest.mark.parametrize("name", ['"x; DROP TABLE t"', "x-y", "'x'"])
def test_identifiers_pass_an_allow_list(session, name):
    with pytest.raises(workbench.WorkbenchError):
        session.sql(f"CREATE MODEL {name} FROM PYTHON net", {"net": None})
    with pytest.raises(workbench.WorkbenchError):
        session.sql("CALL clear_cache('x\"; DROP TABLE t; --')")
    with pytest.raises(CatalogError, match="unknown dataset"):
        session.sql("CALL load_dataset('../../etc/passwd')")


def test_safe_mode_blocks_files_network_and_extensions(tmp_path, figures):
    s = workbench.connect(safe=True)
    s.sql("CALL load_dataset('digits')")  # the engine itself still works
    assert s.sql("SELECT count(digits(pixels)) AS n FROM digits WHERE id < 10").pl()["n"][0] == 10
    blocked = [
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT content FROM read_text('/etc/hostname')",
        f"ATTACH '{tmp_path / 'other.db'}' AS other",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ]
    for sql in blocked:
        with pytest.raises((ExecutionError, CatalogError, ModelLoadError)):
            s.sql(sql)
    assert not list(tmp_path.iterdir())
    figures["safe mode"] = (len(blocked), 0, "COPY, read_*, ATTACH, INSTALL, SET all refused")
    s.close()
