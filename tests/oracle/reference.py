"""The reference: plain DuckDB, where each model is a row-by-row Python function.

Nothing of the engine runs here but the models' own torch modules (and, for `minilm`, its
adapter's tokenize-and-pool on one text): DuckDB plans and runs every statement itself and
calls the model once per row, with its default NULL handling (NULL in, NULL out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import torch

from tests.oracle.world import FRAME, TABLES, UserModel
from workbench import datasets

RowFunction = Callable[[Any], Any]


def head(module: torch.nn.Module, task: str, labels: list[str] | None, *, ids: bool) -> RowFunction:
    """One row through `module`, then the task's head (what `task` promises the user)."""

    def one(x: Any) -> Any:
        batch = torch.tensor([x], dtype=torch.long if ids else torch.float32)
        with torch.inference_mode():
            out = module(batch).float()
        if out.dim() == 1:
            out = out.unsqueeze(-1)
        if task == "classify":
            score, index = out.softmax(-1).max(-1)
            i = int(index[0])
            return {"label": labels[i] if labels else i, "score": float(score[0])}
        if task == "regress":
            return float(out[0, 0])
        return out[0].tolist()

    return one


def output_type(task: str, labels: Any, width: int) -> str:
    if task == "classify":
        return f"STRUCT(label {'VARCHAR' if labels else 'INTEGER'}, score FLOAT)"
    return "FLOAT" if task == "regress" else f"FLOAT[{width}]"


def connect(digits: torch.nn.Module, minilm: Any, models: list[UserModel]) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB database with the oracle's tables and every model as a row function."""
    con = duckdb.connect()
    con.from_arrow(datasets.digits_table()).create("digits")
    con.execute(TABLES)
    con.register("frame", FRAME.to_arrow())
    con.create_function(
        "digits", head(digits, "classify", None, ids=False), ["FLOAT[64]"], output_type("classify", None, 10)
    )
    con.create_function("minilm", lambda text: minilm.predict([text]).to_pylist()[0], ["VARCHAR"], "FLOAT[384]")
    for m in models:
        fn = head(m.module, m.task, list(m.labels) if m.labels else None, ids=m.input_type == "BIGINT")
        width = m.module[-1].out_features
        con.create_function(m.name, fn, [m.input_type], output_type(m.task, m.labels, width))
    return con
