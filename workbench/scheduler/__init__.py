"""Serving queries against deadlines: latency estimation, an SLA-aware sequencer, a worker pool."""

from workbench.scheduler.future import QueryDropped, QueryFuture
from workbench.scheduler.service import POLICIES, Scheduler

__all__ = ["POLICIES", "QueryDropped", "QueryFuture", "Scheduler"]
