import pytest

from workbench.jupyter.command import UsageError, parse


def test_options_then_sql():
    c = parse("-o out --limit 5 --db /tmp/x.duckdb --batch-size 16", "SELECT 1")
    assert (c.output, c.limit, c.database, c.batch_size, c.sql) == ("out", 5, "/tmp/x.duckdb", 16, "SELECT 1")


def test_line_magic_keeps_sql_exactly():
    assert parse("SELECT '{x}', $y, :z").sql == "SELECT '{x}', $y, :z"
    assert parse("-o r SELECT 1").sql == "SELECT 1"


@pytest.mark.parametrize("line", ["--nope", "-o", "-o 1x", "--limit zero"])
def test_bad_options(line):
    with pytest.raises(UsageError):
        parse(line, "SELECT 1")


def test_paradigm_option():
    assert parse("--paradigm UDF_centric", "SELECT 1").paradigm == "udf_centric"
    with pytest.raises(UsageError, match="unknown paradigm"):
        parse("--paradigm gpu", "SELECT 1")
