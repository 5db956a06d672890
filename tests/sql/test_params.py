import pytest

from workbench.errors import ParameterError
from workbench.sql import params, statements


def rewrite(text):
    (stmt,) = statements.split(text)
    return params.rewrite(stmt.text, stmt.start, stmt.tokens)


@pytest.mark.parametrize(
    "text, expected, names",
    [
        ("SELECT :q", "SELECT $q", ["q"]),
        ("SELECT minilm(:q), x::INT FROM t WHERE a = :a", "SELECT minilm($q), x::INT FROM t WHERE a = $a", ["q", "a"]),
        ("SELECT {'a': b} FROM t", "SELECT {'a': b} FROM t", []),
        ("SELECT x[1:n] FROM t", "SELECT x[1:n] FROM t", []),
        ("SELECT ':q' AS s", "SELECT ':q' AS s", []),
        ("SELECT $q, :q", "SELECT $q, $q", ["q"]),
    ],
)
def test_colon_parameters_become_duckdb_parameters(text, expected, names):
    assert rewrite(text) == (expected, names)


def test_bind_takes_only_used_names_and_reports_missing():
    assert params.bind(["a"], {"a": 1, "b": 2}) == {"a": 1}
    with pytest.raises(ParameterError, match=":zz"):
        params.bind(["zz"], {"a": 1})


def test_bind_refuses_objects():
    with pytest.raises(ParameterError, match="cannot be bound"):
        params.bind(["f"], {"f": object()})
