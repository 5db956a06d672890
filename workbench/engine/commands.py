"""The model statements (CREATE / DROP / ALTER / SHOW / DESCRIBE MODEL): catalog changes,
each answered with a one-line result; and the Python values statements read (a
`FROM PYTHON var`, parameters taken when a query is submitted)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

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


def snapshot_params(statements: list[st.Statement], params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The values the statements use, taken now (a notebook variable may change later)."""
    names: list[str] = []
    for stmt in statements:
        inner = stmt.statement if isinstance(stmt, st.Explain) else stmt
        if isinstance(inner, st.Sql):
            names += sql_params.rewrite(inner.text, inner.start, inner.tokens)[1]
    return sql_params.bind(list(dict.fromkeys(names)), params) or None


class FrameNamespace(Mapping):
    """The caller's locals then globals, read only when a statement needs a variable."""

    def __init__(self, frame: Any):
        self.frame = frame

    def __getitem__(self, name: str) -> Any:
        for scope in (self.frame.f_locals, self.frame.f_globals):
            if name in scope:
                return scope[name]
        raise KeyError(name)

    def __iter__(self) -> Any:
        return iter({**self.frame.f_globals, **self.frame.f_locals})

    def __len__(self) -> int:
        return len({**self.frame.f_globals, **self.frame.f_locals})
