"""Fuzz the %%dlsql magic in a real IPython shell; run as a subprocess by test_fuzz.py.

    python fuzz_driver.py N SEED   -> prints one JSON line of outcome counts

Statements come from a hypothesis grammar strategy (half) and a mutator over a corpus of
valid dlsql (half): dropped / duplicated / swapped tokens, random bytes, deep nesting, 10 KB
identifiers, unknown models and columns, wrong argument types, model calls in odd places.
Each statement's outcome is one of: ok, short (a one-line workbench error), internal (an
InternalError or a Python traceback), duckdb_internal (DuckDB "INTERNAL Error").
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.testing.globalipapp import start_ipython

CORPUS = [
    "SELECT id, digits(pixels).label AS p FROM digits WHERE id < 20",
    "SELECT topic FROM pydoc WHERE list_cosine_similarity(minilm(body), minilm(:q)) > 0.3 ORDER BY 1 LIMIT 3",
    "SELECT digits(pixels).label AS l, count(*) FROM digits WHERE id < 30 GROUP BY l ORDER BY l",
    "SELECT count(*) FROM digits a JOIN digits b ON digits(a.pixels).label = b.label WHERE a.id < 3 AND b.id < 9",
    "WITH d AS (SELECT * FROM digits WHERE id < 5) SELECT digits(pixels).score FROM d",
    "SELECT minilm(topic) FROM pydoc WHERE id < 4",
    "EXPLAIN SELECT digits(pixels) FROM digits WHERE id < 4",
    "SHOW MODELS",
    "DESCRIBE MODEL digits",
    "CREATE OR REPLACE TABLE t AS SELECT id, digits(pixels).label AS l FROM digits WHERE id < 8",
    "SELECT * FROM t ORDER BY id",
    "SELECT upper(topic), length(body) FROM pydoc WHERE id BETWEEN 1 AND 5",
    "SELECT id FROM digits WHERE EXISTS (SELECT 1 FROM pydoc p WHERE minilm(p.topic) IS NOT NULL AND p.id < 2)",
    "SELECT {'a': id, 'b': [1, 2, 3][1:2]} FROM digits WHERE id < 2",
    "CALL cache_stats()",
]
ODD = [
    "minilm(42)",
    "digits(body)",
    "nosuch(1)",
    "digits(pixels, pixels)",
    "minilm(NULL)",
    "minilm(minilm(body))",
    "digits([1.0, 2.0])",
    "minilm(:missing)",
    "digits(pixels).nope",
    "count(minilm(body))",
]
KEYWORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "(",
    ")",
    ",",
    "'",
    ";",
    "::",
    "ORDER BY",
    "GROUP BY",
    "JOIN",
    "ON",
    "MODEL",
    "CREATE",
    "DROP",
    "EXPLAIN",
    "ANALYZE",
    "CALL",
    "WITH",
    "SET",
    "LIMIT",
    "*",
    "--",
    "/*",
]


def tokens(text: str) -> list[str]:
    return text.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split()


def mutate(rng: random.Random) -> str:
    toks = tokens(rng.choice(CORPUS))
    kind = rng.randrange(9)
    if kind == 0 and toks:
        del toks[rng.randrange(len(toks))]
    elif kind == 1 and toks:
        i = rng.randrange(len(toks))
        toks.insert(i, toks[i])
    elif kind == 2 and len(toks) > 1:
        i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
        toks[i], toks[j] = toks[j], toks[i]
    elif kind == 3:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        return " ".join(toks) + " " + raw.decode("latin-1")
    elif kind == 4:
        depth = rng.choice([50, 200, 1000, 5000])
        return "SELECT " + "(" * depth + "1" + ")" * depth
    elif kind == 5:
        name = "x" * 10_000
        return rng.choice(
            [
                f"SELECT {name} FROM digits",
                f"SELECT {name}(pixels) FROM digits",
                f"CREATE MODEL {name} FROM PYTHON net",
                f"SELECT 1 AS {name}",
            ]
        )
    elif kind == 6:
        return f"SELECT {rng.choice(ODD)} FROM {rng.choice(['digits', 'pydoc'])} WHERE id < 3"
    elif kind == 7 and toks:
        toks.insert(rng.randrange(len(toks)), rng.choice(KEYWORDS + ODD))
    else:
        return "SELECT " + "minilm(" * rng.randrange(1, 40) + "'x'" + ")" * rng.randrange(0, 40)
    return " ".join(toks)


SQL_ATOMS = st.sampled_from(
    [
        "id",
        "pixels",
        "body",
        "topic",
        "label",
        "1",
        "'a'",
        "NULL",
        "[1.0, 2.0]",
        "digits(pixels)",
        "minilm(body)",
        "minilm(topic)",
        ":q",
        "*",
    ]
)


@st.composite
def grammar(draw) -> str:
    expr = draw(
        st.recursive(
            SQL_ATOMS,
            lambda inner: st.one_of(
                st.tuples(inner, st.sampled_from(["+", "=", "<>", "AND", "||", "<"]), inner).map(lambda t: " ".join(t)),
                st.tuples(
                    st.sampled_from(["minilm", "digits", "abs", "upper", "nosuch", "list_cosine_similarity"]),
                    st.lists(inner, max_size=3),
                ).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
                inner.map(lambda e: f"({e})"),
                inner.map(lambda e: f"({e}).label"),
            ),
            max_leaves=6,
        )
    )
    table = draw(st.sampled_from(["digits", "pydoc", "nosuch_table", "(SELECT * FROM digits WHERE id < 3)"]))
    where = draw(st.sampled_from(["", " WHERE id < 3", f" WHERE {expr}", " WHERE id < 3 AND "]))
    tail = draw(st.sampled_from(["", " LIMIT 2", f" ORDER BY {expr}", " GROUP BY 1", ";", "; SELECT 1"]))
    return f"SELECT {expr} FROM {table}{where}{tail}" + draw(st.text(max_size=3))


def classify(shell, stmt: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = shell.run_cell("%%dlsql --limit 2\n" + stmt, store_history=False)
    shown = out.getvalue() + err.getvalue()
    if result.success:
        return "ok"
    if "INTERNAL Error" in shown or "INTERNAL Error" in str(result.error_in_exec):
        return "duckdb_internal"
    error = result.error_in_exec
    if type(error).__name__ != "DlsqlError" or error.kind == "InternalError" or "Traceback" in shown:
        print(f"INTERNAL: {stmt[:200]!r} -> {type(error).__name__}: {str(error)[:300]}", file=sys.stderr)
        return "internal"
    if len(str(error)) > 2000:
        print(f"LONG: {stmt[:200]!r} -> {str(error)[:200]}", file=sys.stderr)
        return "internal"
    return "short"


def main() -> None:
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    shell = start_ipython()
    shell.run_line_magic("load_ext", "workbench")
    shell.run_cell("import torch; net = torch.nn.Linear(64, 10); q = 'files'")
    setup = (
        "%%dlsql\nCALL load_dataset('digits'); CALL load_dataset('pydoc');"
        "CREATE OR REPLACE TABLE pydoc AS SELECT * FROM pydoc WHERE id < 40"
    )
    assert shell.run_cell(setup).success
    counts = {"ok": 0, "short": 0, "internal": 0, "duckdb_internal": 0, "health_checks": 0, "health_failures": 0}
    rng = random.Random(seed)
    statements = [mutate(rng) for _ in range(n // 2)]

    @settings(
        max_examples=n - n // 2, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(grammar())
    def collect(stmt: str) -> None:
        statements.append(stmt)

    collect()
    for i, stmt in enumerate(statements, 1):
        counts[classify(shell, stmt)] += 1
        if i % 250 == 0:  # the session still answers a simple query
            counts["health_checks"] += 1
            r = shell.run_cell("%%dlsql\nSELECT 41 + 1 AS answer", store_history=False)
            if not (r.success and r.result.pl()["answer"][0] == 42):
                counts["health_failures"] += 1
    counts["statements"] = len(statements)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
