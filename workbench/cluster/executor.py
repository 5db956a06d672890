"""The cluster state an engine owns, and the block loop that runs cache misses on it.

The dl_centric frame (workbench/execution/dl_centric.py) looks the inputs up in the inference
cache and calls `Cluster.infer` with the misses only; this module cuts them into Arrow blocks,
each with its index, sends them to a pool of actors that hold the model (at most two blocks in
flight per actor), and puts the outputs back in key order whatever order they finish in. The
frame writes the cache back only after every block arrived, so a failed query leaves nothing.

Faults: a block whose actor died (process killed, node removed) goes to another actor, and a
replacement actor is started; a block counts once, however often it was sent. A cluster that
vanishes, or loses every actor and cannot start another, is one `ClusterError`. Ctrl-C kills
the pool's actors at once (their running tasks with them) and the query is interrupted.

What runs measured (per-actor seconds per row, per model; overhead per block; transfer seconds
per byte; actor startup) is kept here and handed to the optimizer as `ClusterFacts`.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from workbench.cluster.actors import Block, Recipe, actor_class
from workbench.cluster.connection import Connection, Node, release
from workbench.db import first_line
from workbench.errors import ClusterError, ClusterUnavailable, ModelError, WorkbenchError
from workbench.execution.batching import BatchRun
from workbench.optimizer.cluster_cost import PRIOR_BLOCK_S, PRIOR_BYTE_S, PRIOR_STARTUP_S, ClusterFacts, block_rows
from workbench.plan.stats import NodeShare

IN_FLIGHT = 2  # blocks per actor: one running, one waiting, so an actor never idles
START_TIMEOUT_S = 180.0  # an actor that has not loaded its model by then is not coming
POLL_S = 0.1  # how often the loop looks up (Ctrl-C is noticed within this)
ALIVE_CHECK_S = 1.0  # how often it checks that the cluster's head still answers


@dataclass
class _Actor:
    handle: Any
    node_id: str = ""
    address: str = ""
    pid: int = 0


@dataclass
class Report:
    """Where one operator's blocks ran."""

    actors: int
    nodes: tuple[NodeShare, ...]
    retried_blocks: int
    seconds: float


@dataclass
class _Learned:
    actor_row_s: dict[str, float] = field(default_factory=dict)  # per model fingerprint
    startup_s: dict[str, float] = field(default_factory=dict)
    block_s: float = PRIOR_BLOCK_S
    byte_s: float = PRIOR_BYTE_S
    measured: bool = False


def _smooth(old: float | None, new: float) -> float:
    return new if old is None else math.exp(0.5 * math.log(max(old, 1e-12)) + 0.5 * math.log(max(new, 1e-12)))


class Cluster:
    """A session engine's view of its Ray cluster: the connection, warm actor pools (one
    model's at a time: each actor holds a CPU), and what runs measured."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.spec = connection.spec
        self.ray = connection.ray
        self._pool_key = ""
        self._pool: list[_Actor] = []
        self._learned = _Learned()
        self._lock = threading.Lock()  # one operator on the cluster at a time per session
        self._cancelled: Callable[[], bool] = lambda: False

    # -- what the optimizer reads ---------------------------------------------------------
    def nodes(self) -> list[Node]:
        return self.connection.nodes()

    def facts(self, fingerprint: str) -> ClusterFacts:
        """What the optimizer knows of this cluster for the model of `fingerprint`."""
        nodes = self.nodes()
        learned = self._learned
        warm = len(self._pool) if self._pool_key == fingerprint else 0
        return ClusterFacts(
            spec=self.spec,
            nodes=len(nodes),
            slots=sum(int(n.cpus) for n in nodes),
            actor_row_s=learned.actor_row_s.get(fingerprint),
            block_s=learned.block_s,
            byte_s=learned.byte_s,
            startup_s=learned.startup_s.get(fingerprint, PRIOR_STARTUP_S),
            warm=warm,
            measured=learned.measured,
        )

    def close(self) -> None:
        """Let the actors go and drop this session's use of the connection."""
        with self._lock:
            self._drop_pool()
        release(self.connection)

    # -- running --------------------------------------------------------------------------
    def infer(
        self,
        recipe: Recipe,
        call: str,
        keys: pa.Array,
        *,
        actors: int,
        batch_size: int | None,
        output_type: pa.DataType,
        progress: Callable[[int, int], None] | None = None,
        on_node: Callable[[NodeShare], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> tuple[BatchRun, Report]:
        """The outputs of `keys` (in their order) computed by `actors` actors holding the model.
        `cancelled` is asked every POLL_S at most: True stops the query (KeyboardInterrupt)."""
        self._cancelled = cancelled
        start = time.perf_counter()
        n = len(keys)
        if n == 0:
            return BatchRun(pa.array([], type=output_type), batch_size or 0, 0, 0.0), Report(0, (), 0, 0.0)
        with self._lock:
            try:
                return self._infer(recipe, call, keys, actors, batch_size, progress, on_node, start)
            except KeyboardInterrupt:
                self._drop_pool()  # kills the actors: their running blocks stop now
                raise
            except ClusterError:
                if self.connection.gone:
                    self._pool, self._pool_key = [], ""  # (their cluster went with them)
                else:
                    self._drop_pool()
                raise
            except WorkbenchError:
                raise
            except Exception as exc:  # Ray's own failures (the cluster went away mid-call)
                self._drop_pool()
                raise ClusterError(f"the Ray cluster {self.spec} failed: {first_line(exc)}") from None

    def _infer(
        self,
        recipe: Recipe,
        call: str,
        keys: pa.Array,
        actors: int,
        batch_size: int | None,
        progress: Callable[[int, int], None] | None,
        on_node: Callable[[NodeShare], None] | None,
        start: float,
    ) -> tuple[BatchRun, Report]:
        ray = self.ray
        n = len(keys)
        pool = self._ensure_pool(recipe, call, actors)
        rows = block_rows(n, len(pool))
        t0 = time.perf_counter()
        blocks = [ray.put(keys.slice(i, rows).take(pa.array(range(min(rows, n - i))))) for i in range(0, n, rows)]
        sizes = [min(rows, n - i) for i in range(0, n, rows)]
        shipped_s = time.perf_counter() - t0
        shipped_bytes = keys.nbytes
        queue = collections.deque(range(len(blocks)))
        pending: dict[Any, tuple[int, _Actor]] = {}
        starting: dict[Any, _Actor] = {}
        results: dict[int, Block] = {}
        retried = 0
        replacements = 2 * len(pool)
        done_rows = 0
        checked = time.monotonic()
        try:
            while len(results) < len(blocks):
                if self._cancelled():
                    raise KeyboardInterrupt
                if time.monotonic() - checked > ALIVE_CHECK_S:
                    checked = time.monotonic()
                    if not self.connection.answers():
                        self.connection.let_go()
                        raise ClusterUnavailable(
                            f"the Ray cluster {self.spec} vanished while {call} ran; nothing of this query was written"
                        )
                busy = collections.Counter(id(a) for _, a in pending.values())
                for _ in range(IN_FLIGHT):  # round-robin: every actor gets a block before any gets two
                    for actor in pool:
                        while queue and queue[0] in results:  # answered meanwhile: never sent again
                            queue.popleft()
                        if queue and busy[id(actor)] < IN_FLIGHT:
                            index = queue.popleft()
                            pending[actor.handle.infer.remote(index, blocks[index], batch_size)] = (index, actor)
                            busy[id(actor)] += 1
                if not pending and not starting:
                    raise ClusterError(f"the Ray cluster {self.spec} has no actor left for {call} (workers kept dying)")
                ready, _ = ray.wait([*pending, *starting], num_returns=1, timeout=POLL_S)
                for ref in ready:
                    if ref in starting:
                        actor = starting.pop(ref)
                        try:
                            actor.node_id, actor.address, actor.pid = ray.get(ref)
                            pool.append(actor)
                        except Exception:  # it died before it held the model: try on with the others
                            pass
                        continue
                    index, actor = pending.pop(ref)
                    t1 = time.perf_counter()
                    try:
                        block: Block = ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                        # its process or node is gone: every block it held goes to another actor
                        if actor in pool:
                            pool.remove(actor)
                            with contextlib.suppress(Exception):
                                ray.kill(actor.handle, no_restart=True)
                            if replacements > 0:
                                replacements -= 1
                                fresh = self._start(recipe, call, 1, pool)[0]
                                starting[fresh.handle.where.remote()] = fresh
                        if index not in results:
                            queue.appendleft(index)
                            retried += 1
                        continue
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, WorkbenchError):
                            raise cause from None
                        raise ModelError(f"{call}: {first_line(cause or exc)}") from None
                    shipped_s += time.perf_counter() - t1
                    if index in results:  # answered twice (sent again before the first answer came)
                        continue
                    results[index] = block
                    shipped_bytes += block.outputs.nbytes
                    done_rows += sizes[index]
                    if progress is not None:
                        progress(done_rows, n)
                    if on_node is not None:
                        on_node(_share([b for b in results.values() if b.node_id == block.node_id], pool))
        finally:  # replacements not needed after all (or the query failed): their CPUs go back
            for actor in starting.values():
                with contextlib.suppress(Exception):
                    ray.kill(actor.handle, no_restart=True)
        ordered = [results[i] for i in range(len(blocks))]
        outputs = pa.concat_arrays([b.outputs for b in ordered]) if len(ordered) > 1 else ordered[0].outputs
        seconds = time.perf_counter() - start
        model_s = sum(b.seconds for b in ordered)
        self._learn(recipe.key, n, len(blocks), model_s, seconds, len(pool) or 1, shipped_s, shipped_bytes)
        by_node: dict[str, list[Block]] = collections.defaultdict(list)
        for b in ordered:
            by_node[b.node_id].append(b)
        shares = tuple(_share(bs, pool) for bs in by_node.values())
        report = Report(len({b.pid for b in ordered}), shares, retried, seconds)
        return BatchRun(outputs, batch_size or rows, len(blocks), seconds), report

    # -- the pool -------------------------------------------------------------------------
    def _ensure_pool(self, recipe: Recipe, call: str, actors: int) -> list[_Actor]:
        """`actors` live actors holding the model (a warm pool is reused, grown or trimmed).
        The pool itself is returned: the block loop removes dead actors from it and adds their
        replacements, so the next query finds only live ones."""
        if self._pool_key != recipe.key:
            self._drop_pool()
            self._pool_key = recipe.key
        pool = self._pool
        while len(pool) > actors:
            extra = pool.pop()
            with contextlib.suppress(Exception):
                self.ray.kill(extra.handle, no_restart=True)
        if len(pool) < actors:
            t0 = time.perf_counter()
            fresh = self._start(recipe, call, actors - len(pool), pool)
            refs = {a.handle.where.remote(): a for a in fresh}
            try:
                ready, waiting = [], list(refs)
                deadline = time.monotonic() + START_TIMEOUT_S
                while waiting and time.monotonic() < deadline:  # (a cancel is noticed while they load)
                    if self._cancelled():
                        raise KeyboardInterrupt
                    done, waiting = self.ray.wait(waiting, num_returns=len(waiting), timeout=POLL_S)
                    ready.extend(done)
                if waiting:
                    raise ClusterError(
                        f"the Ray cluster {self.spec} did not start {len(fresh)} actor(s) for {call} within "
                        f"{START_TIMEOUT_S:.0f} s (free CPUs: {self._free_cpus()})"
                    )
                for ref in ready:
                    refs[ref].node_id, refs[ref].address, refs[ref].pid = self.ray.get(ref)
            except BaseException as exc:
                for a in fresh:
                    with contextlib.suppress(Exception):
                        self.ray.kill(a.handle, no_restart=True)
                cause = getattr(exc, "cause", None)
                if isinstance(cause, WorkbenchError):  # the model did not load on the node
                    raise cause from None
                raise
            pool.extend(fresh)
            key = recipe.key
            self._learned.startup_s[key] = _smooth(self._learned.startup_s.get(key), time.perf_counter() - t0)
        return pool

    def _start(self, recipe: Recipe, call: str, count: int, pool: list[_Actor]) -> list[_Actor]:
        """`count` new actors, each on the alive node that holds the fewest of the pool's
        (Ray's node affinity waits for a busy node: it must be one with a CPU to spare)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = self.nodes()
        if not nodes:
            raise ClusterError(f"the Ray cluster {self.spec} has no alive node with a CPU")
        held = collections.Counter(a.node_id for a in pool)
        made = []
        for _ in range(count):
            node = min(nodes, key=lambda n: held[n.node_id] / n.cpus)
            held[node.node_id] += 1
            strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=True)
            handle = actor_class().options(scheduling_strategy=strategy).remote(recipe, call, 1)
            made.append(_Actor(handle))
        return made

    def _drop_pool(self) -> None:
        for actor in self._pool:
            with contextlib.suppress(Exception):
                self.ray.kill(actor.handle, no_restart=True)
        self._pool = []
        self._pool_key = ""

    def _free_cpus(self) -> str:
        try:
            return str(self.ray.available_resources().get("CPU", 0))
        except Exception:
            return "unknown"

    def pids(self) -> list[int]:
        """The process ids of the warm actors (tests kill one mid-query)."""
        return [a.pid for a in self._pool]

    def _learn(
        self,
        key: str,
        rows: int,
        blocks: int,
        model_s: float,
        wall_s: float,
        actors: int,
        shipped_s: float,
        shipped_bytes: int,
    ) -> None:
        learned = self._learned
        learned.actor_row_s[key] = _smooth(learned.actor_row_s.get(key), model_s / max(rows, 1))
        learned.byte_s = _smooth(learned.byte_s if learned.measured else None, shipped_s / max(shipped_bytes, 1))
        overhead = max(wall_s - model_s / actors - shipped_s, 0.0)
        learned.block_s = _smooth(learned.block_s if learned.measured else None, max(overhead / blocks, 1e-5))
        learned.measured = True


def _share(blocks: list[Block], pool: list[_Actor]) -> NodeShare:
    first = blocks[0]
    return NodeShare(
        node_id=first.node_id,
        address=first.address,
        actors=len({b.pid for b in blocks}),
        rows=sum(len(b.outputs) for b in blocks),
        blocks=len(blocks),
        seconds=round(sum(b.seconds for b in blocks), 6),
    )
