import pytest

from workbench.errors import SQLSyntaxError
from workbench.sql import statements as st

PROCS = frozenset({"load_dataset"})


def one(text):
    (stmt,) = st.split(text, PROCS)
    return stmt


def test_split_respects_strings_and_comments():
    stmts = st.split("SELECT 'a;b' -- c;\n; SELECT 2;; ", PROCS)
    assert [s.text for s in stmts] == ["SELECT 'a;b'", "SELECT 2"]
    assert all(isinstance(s, st.Sql) for s in stmts)


def test_create_model_from_path_with_options():
    s = one("CREATE MODEL m FROM '/tmp/x.safetensors' WITH (task = 'classify', batch_size = 32, normalize = false)")
    assert isinstance(s, st.CreateModel)
    assert (s.name, s.path, s.python_var, s.replace) == ("m", "/tmp/x.safetensors", None, False)
    assert s.options == {"task": "classify", "batch_size": 32, "normalize": False}


def test_create_or_replace_model_from_python():
    s = one("create or replace model net from python my_net")
    assert isinstance(s, st.CreateModel) and s.replace and s.python_var == "my_net" and s.path is None


@pytest.mark.parametrize(
    "text, kind, fields",
    [
        ("DROP MODEL m", st.DropModel, {"name": "m", "if_exists": False}),
        ("DROP MODEL IF EXISTS m", st.DropModel, {"name": "m", "if_exists": True}),
        ("SHOW MODELS", st.ShowModels, {}),
        ("DESCRIBE MODEL minilm", st.DescribeModel, {"name": "minilm"}),
        ("ALTER MODEL m SET batch_size = 8", st.AlterModel, {"name": "m", "options": {"batch_size": 8}}),
        ("CALL load_dataset('pydoc')", st.Call, {"procedure": "load_dataset", "args": ("pydoc",)}),
        ("CALL pragma_version()", st.Sql, {}),
    ],
)
def test_model_statements(text, kind, fields):
    s = one(text)
    assert isinstance(s, kind)
    for key, value in fields.items():
        assert getattr(s, key) == value


def test_explain_analyze_wraps_inner_statement():
    s = one("EXPLAIN ANALYZE SELECT minilm('x')")
    assert isinstance(s, st.Explain) and s.analyze
    assert isinstance(s.statement, st.Sql) and s.statement.text == "SELECT minilm('x')"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("CREATE MODEL m FROM", "expected a quoted path"),
        ("CREATE MODEL m FROM 'p' WITH (task 'x')", "expected '='"),
        ("DROP MODEL", "expected model name"),
        ("SHOW MODELS extra", "end of the statement"),
        ("SELECT 'unterminated", "cannot read the SQL text"),
    ],
)
def test_bad_model_statements_give_short_errors(text, fragment):
    with pytest.raises(SQLSyntaxError, match=fragment):
        st.split(text, PROCS)
