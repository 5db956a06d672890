"""What optimizer rules may consult: the cost model, hints, input facts and the models."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.models.base import Model
from workbench.optimizer.cost import CostModel, Facts
from workbench.optimizer.hints import Hints
from workbench.plan.nodes import ModelOperator


@dataclass
class Context:
    cost: CostModel
    facts: Callable[[ModelOperator], Facts]  # counted by DuckDB, cached per input query
    model: Callable[[str], Model]
    hints: Hints = field(default_factory=Hints)
    batch_size: Callable[[str], int | None] = lambda name: None  # the user's batch size for a model
    precision: Callable[[str], str] = lambda name: "float32"  # the variant a model's options ask for
    memory: Callable[[str], str] = lambda name: "resident"  # how the model's weights are held
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def row_seconds(self, op: ModelOperator) -> float:
        """Estimated model seconds per input row (for ordering predicates)."""
        model = self.model(op.model)
        batch = self.batch_size(op.model) or model.batch_size or model.tuned_batch_size or max(model.batch_candidates)
        return self.cost.row_seconds(model, batch, self.facts(op))
