"""A session's settings as one frozen record. `SET` returns a new one; per-call overrides
(`batch_size`, `paradigm`) are arguments of the call, never changes to the session.

    SET memory_budget_cpu = '512MB' | 'none'
    SET memory_budget_cuda = '8GB' | 'none'
    SET sla_policy = 'fifo' | 'reorder' | 'drop' | 'hybrid'
    SET disabled_rules = 'push_filters,dedup_inputs' | ''
    SET cluster = 'ray://host:port' | 'host:port' | 'auto' | 'local' | 'none'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from workbench.errors import ParameterError
from workbench.runtime.memory import parse_size

POLICIES = ("fifo", "reorder", "drop", "hybrid")
SETTINGS = frozenset({"memory_budget_cpu", "memory_budget_cuda", "sla_policy", "disabled_rules", "cluster"})
#: how a cluster is named: a Ray Client address, a GCS address, the running one, or a new local one
CLUSTER_SPEC = re.compile(r"(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d+|auto|local")


@dataclass(frozen=True)
class Config:
    batch_size: int | None = None  # the session's batch size for every model (None: measured)
    memory_budget: int | None = None  # bytes a query may add on the CPU (None: no budget)
    memory_budget_cuda: int | None = None  # for models placed on a GPU (offloading's window)
    sla_policy: str = "fifo"
    disabled_rules: frozenset[str] = frozenset()
    workers: int = 2  # the scheduler's worker threads
    cluster: str | None = None  # the Ray cluster's spec (the engine owns the connection); None: this machine

    def budget_for(self, device: str) -> int | None:
        return self.memory_budget_cuda if device.startswith("cuda") else self.memory_budget

    def with_setting(
        self, name: str, value: Any, *, rule_names: tuple[str, ...] = (), required_rules: frozenset[str] = frozenset()
    ) -> tuple[Config, str]:
        """A new config with one `SET` applied, and the line the user sees."""
        if name in ("memory_budget_cpu", "memory_budget_cuda"):
            size = None if _none(value) else parse_size(value)
            shown = "none" if size is None else f"{size / 1e6:,.0f} MB"
            if name == "memory_budget_cpu":
                return replace(self, memory_budget=size), f"{name} = {shown}"
            return replace(self, memory_budget_cuda=size), f"{name} = {shown}"
        if name == "sla_policy":
            policy = str(value).lower()
            if policy not in POLICIES:
                raise ParameterError(f"sla_policy must be one of {', '.join(POLICIES)}, not {value!r}")
            return replace(self, sla_policy=policy), f"sla_policy = {policy}"
        if name == "disabled_rules":
            rules = check_disabled(str(value or "").split(","), rule_names, required_rules)
            return replace(self, disabled_rules=rules), f"disabled_rules = {','.join(sorted(rules)) or 'none'}"
        if name == "cluster":
            spec = cluster_spec(value)
            return replace(self, cluster=spec), f"cluster = {spec or 'none'}"
        raise ParameterError(f"unknown setting {name}")


def check_disabled(names: Any, rule_names: tuple[str, ...], required: frozenset[str]) -> frozenset[str]:
    disabled = frozenset(n.strip().lower() for n in names if n.strip())
    unknown = disabled - set(rule_names)
    if unknown:
        raise ParameterError(f"unknown optimizer rule(s) {', '.join(sorted(unknown))}; rules: {', '.join(rule_names)}")
    if disabled & required:
        raise ParameterError(f"{', '.join(sorted(disabled & required))} cannot be disabled (they pick how to run)")
    return disabled


def effective_batch_size(
    *, call: int | None = None, model_option: int | None = None, session: int | None = None
) -> int | None:
    """The batch size the user asked for, most specific first: this call (`--batch-size`,
    `sql(batch_size=)`), the model's option (`WITH`/`ALTER MODEL ... batch_size`), the
    session's. None: the model's own or the tuner's choice (the optimizer fills it in)."""
    return call or model_option or session or None


def cluster_spec(value: Any) -> str | None:
    """A checked cluster spec ('ray://host:port', 'host:port', 'auto', 'local'), None for 'none'."""
    if _none(value) or str(value).strip() == "":
        return None
    spec = str(value).strip()
    if not CLUSTER_SPEC.fullmatch(spec.lower() if spec.lower() in ("auto", "local") else spec):
        raise ParameterError(
            f"cluster must be 'ray://host:port', 'host:port', 'auto', 'local' or 'none', not {value!r}"
        )
    return spec.lower() if spec.lower() in ("auto", "local") else spec


def _none(value: Any) -> bool:
    return value is None or str(value).lower() in ("none", "off", "default")
