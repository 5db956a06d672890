"""Pick each operator's batch size and its split of threads between DuckDB and torch.

- dl_centric / hybrid: DuckDB and torch run one after the other, so each gets every core;
  the batch is the user's, else the size the tuner measured best, else tuned at run time.
- udf_centric: DuckDB calls the model from its own threads, one vector (2,048 rows) at a
  time. A tensor model is called from every DuckDB thread at once with one torch thread
  each (no oversubscription); a text model's tokenizer is not thread-safe, so its calls
  take turns and each gets every core. The batch is the same as dl_centric's (a text
  model's best batch is small: padding grows with it), at most a vector.
- relation_centric: all cores to DuckDB, torch idle; no batch (DuckDB pipelines rows).
"""

from __future__ import annotations

from dataclasses import replace

from workbench.optimizer.context import Context
from workbench.optimizer.cost import VECTOR
from workbench.plan.nodes import Plan

NAME = "choose_batch_threads"


def apply(plan: Plan, ctx: Context) -> Plan:
    ops = []
    for op in plan.operators:
        model = ctx.profile(op.model)
        batch = ctx.batch_size(op.model) or model.batch_size or model.tuned_batch_size
        cores = ctx.cores
        if op.paradigm == "relation_centric":
            op = replace(op, batch_size=None, threads=(cores, 0), device="cpu")
        elif op.paradigm == "udf_centric":
            torch_threads = 1 if model.input_kind == "tensor" else cores
            op = replace(op, batch_size=min(batch, VECTOR) if batch else None, threads=(cores, torch_threads))
        else:
            op = replace(op, batch_size=batch, threads=(cores, cores))
        ops.append(op)
    return replace(plan, operators=tuple(ops))
