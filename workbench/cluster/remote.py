"""The engine's cluster as the executor registry's `Remote`: a job's cache misses in, their
outputs (in key order) out, and the stats told where they ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pyarrow as pa

from workbench.cluster.actors import Recipe
from workbench.cluster.client import ClusterClient
from workbench.execution.batching import BatchRun
from workbench.execution.registry import Job
from workbench.models.base import Model
from workbench.plan.stats import NodeShare, OperatorStats


class OnCluster:
    def __init__(self, cluster: ClusterClient, recipe_of: Callable[[str, Model], Recipe]):
        self.cluster = cluster
        self.recipe_of = recipe_of  # how an actor gets the model (the engine asks its catalog)

    def infer(
        self, job: Job, keys: pa.Array, progress: Callable[[int, int], None] | None
    ) -> tuple[BatchRun, Callable[[OperatorStats], OperatorStats]]:
        op, tele = job.op, job.telemetry
        on_node = None
        if tele.active:

            def on_node(share: NodeShare) -> None:
                tele.emit(
                    "node_progress",
                    id=op.id,
                    node=share.address,
                    node_id=share.node_id,
                    rows=share.rows,
                    blocks=share.blocks,
                    actors=share.actors,
                )

        run, report = self.cluster.infer(
            self.recipe_of(op.model, job.model),
            op.call,
            keys,
            actors=op.actors or 1,
            batch_size=op.batch_size,
            output_type=job.model.arrow_output_type(),
            progress=progress,
            on_node=on_node,
        )

        def where(stats: OperatorStats) -> OperatorStats:
            return replace(
                stats,
                placement="ray",
                actors=report.actors,
                nodes=report.nodes,
                retried_blocks=report.retried_blocks,
            )

        return run, where
