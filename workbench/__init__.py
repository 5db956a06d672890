"""workbench: SQL and deep-learning models in one notebook engine (DuckDB + PyTorch).

    import workbench
    s = workbench.connect()                 # or workbench.connect("my.duckdb")
    s.sql("CALL load_dataset('pydoc')")
    s.sql("SELECT topic, minilm(body) FROM pydoc LIMIT 3").pl()

In Jupyter: `%load_ext workbench`, then `%%dlsql` cells.
"""

from workbench import datasets
from workbench.errors import (
    CatalogError,
    ExecutionError,
    InputTypeError,
    ModelError,
    ModelLoadError,
    OutOfMemoryBudget,
    ParameterError,
    QueryInterrupted,
    SQLSyntaxError,
    UnknownModelError,
    WorkbenchError,
)
from workbench.plan import ModelOperator, Plan
from workbench.result import Result
from workbench.scheduler import QueryDropped, QueryFuture
from workbench.session import Session, connect

__version__ = "0.1.0"

__all__ = [
    "CatalogError",
    "ExecutionError",
    "InputTypeError",
    "ModelError",
    "ModelLoadError",
    "ModelOperator",
    "OutOfMemoryBudget",
    "ParameterError",
    "Plan",
    "QueryDropped",
    "QueryFuture",
    "QueryInterrupted",
    "Result",
    "SQLSyntaxError",
    "Session",
    "UnknownModelError",
    "WorkbenchError",
    "connect",
    "datasets",
    "load_ipython_extension",
]


def load_ipython_extension(ipython):  # pragma: no cover - exercised through IPython
    from workbench.jupyter.magic import load_ipython_extension as load

    load(ipython)
