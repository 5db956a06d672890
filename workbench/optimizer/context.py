"""What optimizer rules may consult: the cost model, hints, input facts and model profiles.

Everything here is a record or a pure function of records: rules never touch DuckDB, torch
or a session, so tests run them on a fake catalog (tests/optimizer/fake.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.optimizer.cluster_cost import ClusterFacts
from workbench.optimizer.cost import CostModel, Facts
from workbench.optimizer.hints import Hints
from workbench.plan.nodes import ModelOperator
from workbench.plan.profile import ModelProfile, RuntimeOption


@dataclass
class Context:
    cost: CostModel
    facts: Callable[[ModelOperator], Facts]  # counted by DuckDB (or a fake), once per operator
    profile: Callable[[str], ModelProfile]
    hints: Hints = field(default_factory=Hints)
    batch_size: Callable[[str], int | None] = lambda name: None  # the user's batch size for a model
    precision: Callable[[str], str] = lambda name: "float32"  # the variant a model's options ask for
    memory: Callable[[str], str] = lambda name: "resident"  # how the model's weights are held
    #: paradigms that cannot run a model (profile, precision) -> {paradigm: why}: the executors' answer
    unavailable: Callable[[ModelProfile, str], dict[str, str]] = lambda profile, precision: {}
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: the connected Ray cluster's facts for a model (None: no cluster; nothing is placed there)
    cluster: Callable[[ModelProfile], ClusterFacts] | None = None
    #: runtimes a model could run in besides eager torch (ONNX Runtime forms); none: torch only
    runtimes: Callable[[str], tuple[RuntimeOption, ...]] = lambda name: ()

    def row_seconds(self, op: ModelOperator) -> float:
        """Estimated model seconds per input row (for ordering predicates)."""
        profile = self.profile(op.model)
        return self.cost.row_seconds(profile, profile.default_batch(self.batch_size(op.model)), self.facts(op))

    def dedup_pays(self, op: ModelOperator) -> bool:
        """Whether running the model once per distinct input beats running it on every row."""
        profile = self.profile(op.model)
        facts = self.facts(op)
        blocked = set(self.unavailable(profile, self.precision(op.model)))
        if facts.cache_on:  # choose_paradigm keeps a cached operator materialized (no LIMIT is known yet)
            blocked.add("udf_centric")
        return self.cost.dedup_pays(profile, facts, batch=self.batch_size(op.model), blocked=frozenset(blocked))
