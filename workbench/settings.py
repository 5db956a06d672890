"""The workbench's own `SET` settings (other SETs go to DuckDB), and safe mode.

    SET memory_budget_cpu = '512MB' | 'none'
    SET memory_budget_cuda = '8GB' | 'none'
    SET sla_policy = 'fifo' | 'reorder' | 'drop' | 'hybrid'
    SET disabled_rules = 'push_filters,dedup_inputs' | ''   (optimizer rules to skip)

A setting makes a new `Config` (workbench/engine/config.py); this module applies the part
that lives in DuckDB (its memory limit) and knows the optimizer's rule names.
"""

from __future__ import annotations

from typing import Any

import duckdb

from workbench.db import run
from workbench.engine.config import SETTINGS, Config
from workbench.optimizer.optimize import REQUIRED
from workbench.optimizer.rules import NAMES
from workbench.runtime.memory import DUCKDB_SHARE

__all__ = ["SETTINGS", "apply", "apply_to_database", "lock_down"]


def apply(config: Config, name: str, value: Any) -> tuple[Config, str]:
    """The config with one setting applied, and the line the user sees."""
    return config.with_setting(name, value, rule_names=NAMES, required_rules=REQUIRED)


def apply_to_database(con: duckdb.DuckDBPyConnection, old: Config, new: Config) -> None:
    """DuckDB gets a share of the memory budget as its own memory_limit and spills beyond
    it; model batches are watched by a MemoryGuard. No budget: DuckDB's default."""
    if new.memory_budget == old.memory_budget:
        return
    if new.memory_budget is None:
        run(con, "RESET memory_limit")
    else:
        run(con, f"SET memory_limit = '{int(new.memory_budget * DUCKDB_SHARE) // 2**20}MiB'")


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Safe mode for shared deployments: no file, network or extension access from SQL,
    and the configuration cannot be changed back by a query."""
    for setting in (
        "enable_external_access = false",
        "autoinstall_known_extensions = false",
        "autoload_known_extensions = false",
        "allow_community_extensions = false",
        "lock_configuration = true",
    ):
        run(con, f"SET {setting}")
