"""The cost of running a model operator's cache misses on a Ray cluster ("dl_centric on ray").

    on ray = what dl_centric pays besides the model (fixed, transfer, cache, lookups)
           + starting actors that load the model (0 when a warm pool holds it)
           + misses x seconds per row on one actor / actors
           + blocks x overhead per block (driver: put, submit, collect)
           + bytes shipped (inputs there, outputs back) x seconds per byte

Per-actor throughput, the overhead per block and the transfer cost per byte start from the
priors below and are replaced by what runs on the cluster measured (the cluster state keeps
them, per model fingerprint for the throughput). Actors are chosen by this estimate: more
actors divide the model time but add blocks and startup.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from workbench.optimizer.cost import CostModel, Facts
from workbench.plan.profile import ModelProfile

#: priors, until the cluster has run something: a block's round trip, 100 MB/s, a model's load
PRIOR_BLOCK_S = 0.02
PRIOR_BYTE_S = 1e-8
PRIOR_STARTUP_S = 8.0
#: an actor runs one torch thread; this machine's run uses every core at this efficiency each
THREAD_EFFICIENCY = 0.7
BLOCKS_PER_ACTOR = 4  # so a slow or lost actor's share is small and retried blocks are cheap
MIN_BLOCK_ROWS = 16
MAX_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class ClusterFacts:
    """What the optimizer knows of the connected cluster, for one model."""

    spec: str
    nodes: int  # alive nodes with at least one CPU
    slots: int  # actors the cluster holds at once (one CPU each)
    actor_row_s: float | None = None  # measured seconds per row on one actor (None: not yet)
    block_s: float = PRIOR_BLOCK_S
    byte_s: float = PRIOR_BYTE_S
    startup_s: float = PRIOR_STARTUP_S  # 0 when warm actors hold the model
    warm: int = 0  # actors already holding the model
    measured: bool = False  # block and byte costs come from a run (not the priors)


@dataclass(frozen=True)
class RayEstimate:
    seconds: float
    actors: int
    nodes: int
    block_rows: int


def block_rows(rows: int, actors: int) -> int:
    """Rows per block: a few blocks per actor, within bounds."""
    target = math.ceil(max(rows, 1) / (max(actors, 1) * BLOCKS_PER_ACTOR))
    return max(MIN_BLOCK_ROWS, min(MAX_BLOCK_ROWS, target))


def output_bytes(output_type: str) -> float:
    """Bytes per output value, from its SQL type (a vector FLOAT[n]: 4n)."""
    m = re.search(r"\[(\d+)\]", output_type)
    return 4.0 * int(m.group(1)) if m else 16.0


def estimate(
    cost: CostModel,
    profile: ModelProfile,
    facts: Facts,
    cluster: ClusterFacts,
    *,
    local_seconds: float,
    batch: int,
    cores: int,
    actors: int | None = None,
) -> RayEstimate | None:
    """The cheapest number of actors (or `actors` when given) and its estimate; None when the
    cluster holds no actor."""
    if cluster.slots < 1:
        return None
    misses = facts.rows * (1.0 - facts.hit_ratio)
    local_row = cost.row_seconds(profile, batch, facts)
    actor_row = cluster.actor_row_s or local_row * (1 + THREAD_EFFICIENCY * (max(cores, 1) - 1))
    besides_model = max(local_seconds - misses * local_row, 0.0)
    shipped = misses * (facts.key_bytes + output_bytes(profile.output_type)) * cluster.byte_s
    best: RayEstimate | None = None
    choices = [min(actors, cluster.slots)] if actors else range(1, cluster.slots + 1)
    for n in choices:
        rows = block_rows(int(misses), n)
        blocks = math.ceil(misses / rows) if misses else 0
        startup = cluster.startup_s if n > cluster.warm and misses else 0.0
        seconds = besides_model + startup + misses * actor_row / n + blocks * cluster.block_s + shipped
        if best is None or seconds < best.seconds:
            best = RayEstimate(seconds, n, min(n, cluster.nodes), rows)
    return best
