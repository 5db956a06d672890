"""The model statements (CREATE / DROP / ALTER / SHOW / DESCRIBE MODEL): catalog changes,
each answered with a one-line result; and the Python values statements read (a
`FROM PYTHON var`, DataFrames named as tables, parameters taken when a query is submitted)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from workbench.errors import ModelLoadError, SQLSyntaxError
from workbench.models.catalog import Catalog
from workbench.result import Result
from workbench.sql import params as sql_params
from workbench.sql import statements as st


def message(text: str, statement: str, start: float) -> Result:
    return Result(pa.table({"status": [text]}), statement=statement, elapsed=time.perf_counter() - start, message=text)


def run_model_statement(
    catalog: Catalog, stmt: st.Statement, params: Mapping[str, Any] | None, namespace: Mapping[str, Any]
) -> Result:
    start = time.perf_counter()
    if isinstance(stmt, st.CreateModel):
        catalog.check_name(stmt.name, stmt.replace)
        if stmt.path is not None:
            model = catalog.create(stmt.name, path=stmt.path, options=stmt.options, replace=stmt.replace)
        else:
            obj = lookup_var(stmt.python_var or "", params, namespace)
            model = catalog.create(
                stmt.name, obj=obj, var_name=stmt.python_var, options=stmt.options, replace=stmt.replace
            )
        if model is None:  # may stream from disk: nothing was loaded
            info = catalog.info(stmt.name)
            return message(
                f"model {stmt.name} created ({info.task}: VARCHAR; offload = "
                f"{info.options.get('offload')}, weights stay on disk until needed)",
                stmt.text,
                start,
            )
        return message(
            f"model {stmt.name} created ({model.task}: {model.input_type} -> {model.output_type})", stmt.text, start
        )
    if isinstance(stmt, st.DropModel):
        dropped = catalog.drop(stmt.name, stmt.if_exists)
        return message(f"model {stmt.name} {'dropped' if dropped else 'did not exist'}", stmt.text, start)
    if isinstance(stmt, st.ShowModels):
        return Result(catalog.show(), statement=stmt.text, elapsed=time.perf_counter() - start)
    if isinstance(stmt, st.DescribeModel):
        return Result(catalog.describe(stmt.name), statement=stmt.text, elapsed=time.perf_counter() - start)
    if isinstance(stmt, st.AlterModel):
        catalog.alter(stmt.name, stmt.options)
        return message(f"model {stmt.name} altered", stmt.text, start)
    raise SQLSyntaxError(f"unsupported statement: {stmt.text}")  # pragma: no cover


def lookup_var(name: str, params: Mapping[str, Any] | None, namespace: Mapping[str, Any]) -> Any:
    for scope in (params or {}, namespace):
        if name in scope:
            return scope[name]
    raise ModelLoadError(f"no Python variable '{name}' (define it, or use session.register_model)")


def snapshot_params(
    statements: list[st.Statement], params: Mapping[str, Any] | None, namespace: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The values the statements use, taken now (a notebook variable may change later):
    their parameters (a DataFrame as it is, for `FROM :df`), and the DataFrames they name as
    tables (found in `params`, then in `namespace`)."""
    names: list[str] = []
    values: dict[str, Any] = {}
    for stmt in statements:
        inner = stmt.statement if isinstance(stmt, st.Explain) else stmt
        if not isinstance(inner, st.Sql):
            continue
        for name in sql_params.rewrite(inner.text, inner.start, inner.tokens)[1]:
            value = params.get(name) if params is not None else None
            if sql_params.is_table(value):
                values[name] = value
            else:
                names.append(name)
        values.update(frames_named(inner, [params or {}, namespace]))
    return {**values, **sql_params.bind(list(dict.fromkeys(names)), params)} or None


def frames_of(
    stmt: st.Sql, params: Mapping[str, Any] | None, namespace: Mapping[str, Any], registered: Mapping[str, Any]
) -> tuple[st.Sql, dict[str, Any]]:
    """`stmt` as it runs, and the DataFrames to register on its cursor: its table parameters
    (`FROM :df`, under internal names) and the frames it names (registered ones first, then
    `params`, then `namespace`)."""
    stmt, tables = with_tables_bound(stmt, params)
    return stmt, {**frames_named(stmt, [params or {}, namespace], registered), **tables}


def with_tables_bound(stmt: st.Sql, params: Mapping[str, Any] | None) -> tuple[st.Sql, dict[str, Any]]:
    """`stmt` with its table parameters (`FROM :df`) swapped for internal names, and the
    DataFrames to register under those names (the statement itself when it has none)."""
    text, tables = sql_params.tables_in_from(stmt.text, stmt.start, stmt.tokens, params)
    if not tables:
        return stmt, {}
    return st.Sql(text, 0, tuple(st.tokenize(text))), tables


def frames_named(
    stmt: st.Sql, scopes: Sequence[Mapping[str, Any]], registered: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The DataFrames / Arrow tables `stmt` reads by name: each unqualified table name of
    the statement (not a CTE, not the table it creates or writes) that is `registered`
    (keyed by lower-case name: SQL names ignore case), or else whose value in the first of
    the `scopes` (Python names) that has the name is a table (`sql_params.is_table`).

    Cheap when nothing matches: the statement is parsed only when one of its words names a
    table in a scope."""
    found: dict[str, Any] = {}
    for tok in stmt.tokens:
        if tok.token_type not in (TokenType.VAR, TokenType.IDENTIFIER) or tok.text in found:
            continue
        if registered and tok.text.lower() in registered:
            found[tok.text] = registered[tok.text.lower()]
            continue
        for scope in scopes:
            if tok.text in scope:
                if sql_params.is_table(scope[tok.text]):
                    found[tok.text] = scope[tok.text]
                break
    if not found:
        return {}
    tables = table_names(stmt)
    return {name: value for name, value in found.items() if name in tables}


_WRITTEN = (exp.Create, exp.Insert, exp.Update, exp.Delete, exp.Alter, exp.Drop)


def table_names(stmt: st.Sql) -> set[str]:
    """The tables `stmt` reads, by their unqualified names (a statement sqlglot cannot parse:
    the names right after FROM or JOIN)."""
    try:
        tree = sqlglot.parse_one(stmt.text, read="duckdb")
    except (sqlglot.errors.SqlglotError, RecursionError):
        toks = stmt.tokens
        return {
            toks[i].text
            for i in range(1, len(toks))
            if toks[i - 1].token_type in (TokenType.FROM, TokenType.JOIN)
            and toks[i].token_type in (TokenType.VAR, TokenType.IDENTIFIER)
        }
    if tree is None:
        return set()
    ctes = {cte.alias.lower() for cte in tree.find_all(exp.CTE)}
    names = set()
    for table in tree.find_all(exp.Table):
        if table.db or table.catalog or not isinstance(table.this, exp.Identifier) or table.name.lower() in ctes:
            continue
        parent = table.parent.parent if isinstance(table.parent, exp.Schema) else table.parent
        if isinstance(parent, _WRITTEN) and table.arg_key in ("this", "tables"):  # the table it writes
            continue
        names.add(table.name)
    return names


class FrameNamespace(Mapping):
    """The caller's locals then globals, read only when a statement needs a variable (and
    then read once: the caller waits for the call, so they cannot change meanwhile)."""

    def __init__(self, frame: Any):
        self.frame = frame
        self._scopes: tuple[Mapping[str, Any], ...] | None = None

    @property
    def scopes(self) -> tuple[Mapping[str, Any], ...]:
        if self._scopes is None:  # f_locals copies a function's locals into a dict each time
            self._scopes = () if self.frame is None else (self.frame.f_locals, self.frame.f_globals)
        return self._scopes

    def __getitem__(self, name: str) -> Any:
        for scope in self.scopes:
            if name in scope:
                return scope[name]
        raise KeyError(name)

    def __iter__(self) -> Any:
        return iter({k: None for scope in reversed(self.scopes) for k in scope})

    def __len__(self) -> int:
        return len({k: None for scope in self.scopes for k in scope})
