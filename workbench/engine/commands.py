"""The model statements (CREATE / DROP / ALTER / SHOW / DESCRIBE MODEL): catalog changes,
each answered with a one-line result."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from workbench.errors import ModelLoadError, SQLSyntaxError
from workbench.models.catalog import Catalog
from workbench.result import Result
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
