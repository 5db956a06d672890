"""The workbench's own `SET` settings (other SETs go to DuckDB), and safe mode.

    SET memory_budget_cpu = '512MB' | 'none'
    SET sla_policy = 'fifo' | 'reorder' | 'drop' | 'hybrid'
    SET disabled_rules = 'push_filters,dedup_inputs' | ''   (optimizer rules to skip)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb

from workbench.db import run
from workbench.errors import ParameterError
from workbench.runtime.memory import DUCKDB_SHARE, parse_size
from workbench.scheduler import POLICIES

if TYPE_CHECKING:
    from workbench.session import Session

SETTINGS = frozenset({"memory_budget_cpu", "memory_budget_cuda", "sla_policy", "disabled_rules"})


def apply(session: Session, name: str, value: Any) -> str:
    """Apply a setting; returns the line the user sees."""
    if name == "memory_budget_cpu":
        set_memory_budget(session, value)
        shown = "none" if session.memory_budget is None else f"{session.memory_budget / 2**20:,.0f} MB"
        return f"{name} = {shown}"
    if name == "memory_budget_cuda":
        none = value is None or str(value).lower() in ("none", "off", "default")
        session.memory_budget_cuda = None if none else parse_size(value)
        shown = "none" if none else f"{session.memory_budget_cuda / 2**20:,.0f} MB"
        return f"{name} = {shown}"
    if name == "sla_policy":
        policy = str(value).lower()
        if policy not in POLICIES:
            raise ParameterError(f"sla_policy must be one of {', '.join(POLICIES)}, not {value!r}")
        session.sla_policy = policy
        if session._scheduler is not None:
            session._scheduler.policy = policy
        return f"sla_policy = {policy}"
    if name == "disabled_rules":
        from workbench.optimizer.optimize import check_disabled

        session.disabled_rules = check_disabled(str(value or "").split(","))
        return f"disabled_rules = {','.join(sorted(session.disabled_rules)) or 'none'}"
    raise ParameterError(f"unknown setting {name}")  # pragma: no cover - SETTINGS guards it


def set_memory_budget(session: Session, value: Any) -> None:
    """DuckDB gets a share of the budget as its own memory_limit and spills beyond it; model
    batches are watched by a MemoryGuard. 'none' removes the budget."""
    if value is None or str(value).lower() in ("none", "off", "default"):
        session.memory_budget = None
        run(session.con, "RESET memory_limit")
        return
    budget = parse_size(value)
    run(session.con, f"SET memory_limit = '{int(budget * DUCKDB_SHARE) // 2**20}MiB'")
    session.memory_budget = budget


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Safe mode for shared deployments: no file, network or extension access from SQL,
    and the configuration cannot be changed back by a query."""
    for setting in ("enable_external_access = false", "autoinstall_known_extensions = false",
                    "autoload_known_extensions = false", "allow_community_extensions = false",
                    "lock_configuration = true"):
        run(con, f"SET {setting}")
