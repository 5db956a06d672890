"""A session's cluster, seen from the session's process: a Ray driver process of its own
(workbench/cluster/driver.py) that it starts, asks and lets go. Ray is never imported here.

The driver holds the Ray connection, the warm actor pools and what runs measured; this side
sends it a job's cache misses as Arrow IPC and gets their outputs back the same way, with
progress on the way. When the cluster vanishes, Ray ends the process holding its driver: that
is the driver process, not the kernel. The query then raises one `ClusterUnavailable` (nothing
of it was written: the cache is written back only after the last block), the session goes on
(the optimizer sees a cluster with no CPU and keeps models here), and the next use starts a
new driver once the cluster answers again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.cluster import messages as m
from workbench.cluster.actors import Recipe
from workbench.cluster.connection import Node, reachable
from workbench.cluster.executor import Report
from workbench.errors import ClusterError, ClusterUnavailable
from workbench.execution.batching import BatchRun
from workbench.models.base import Model
from workbench.optimizer.cluster_cost import ClusterFacts
from workbench.plan.profile import ModelProfile
from workbench.plan.stats import NodeShare

POLL_S = 0.1  # how often a wait looks whether the driver is still alive
CONNECT_TIMEOUT_S = 300.0  # the driver imports Ray and torch, then joins the cluster
CANCEL_TIMEOUT_S = 10.0  # a driver that has not stopped its actors by then is ended itself
RETRY_S = 10.0  # after a failed reconnect, the optimizer does not try again for this long
CLOSE_TIMEOUT_S = 20.0


@dataclass
class _Driver:
    process: subprocess.Popen[bytes]
    link: Connection
    log: str
    shipped: set[str] = field(default_factory=set)  # fingerprints of models shipped to it


class ClusterClient:
    """The engine's cluster: the spec it was set to, and the driver process that serves it."""

    def __init__(self, spec: str):
        self.spec = spec
        self._lock = threading.RLock()  # one request at a time per session
        self._retry_at = 0.0
        self._known: dict[str, ClusterFacts] = {}  # the driver's last facts per model
        self._driver: _Driver | None = self._start()

    # -- what the optimizer and the tests read ---------------------------------------------
    def facts(self, profile: ModelProfile) -> ClusterFacts:
        """The cluster's facts for this model; a cluster that vanished has no CPU (so the
        optimizer keeps every model here) until a new driver reaches it."""
        known = self._known.get(profile.fingerprint)
        if known is not None and not self._lock.acquire(blocking=False):
            return known  # another thread's query holds the driver: plan with what it said last
        try:
            facts: ClusterFacts = self._ask(m.Facts(profile.fingerprint), reconnect=True)
        except ClusterError:
            return ClusterFacts(spec=self.spec, nodes=0, slots=0)
        finally:
            if known is not None:
                self._lock.release()
        self._known[profile.fingerprint] = facts
        return facts

    def nodes(self) -> list[Node]:
        nodes: list[Node] = self._ask(m.Nodes())
        return nodes

    def pids(self) -> list[int]:
        """The process ids of the warm actors (tests kill one mid-query)."""
        if self._driver is None:
            return []
        pids: list[int] = self._ask(m.Pids())
        return pids

    def driver_address(self) -> str:
        """The driver's own address as Ray resolves it (127.0.0.1 for a loopback cluster)."""
        address: str = self._ask(m.Where())
        return address

    def driver_pid(self) -> int | None:
        return None if self._driver is None else self._driver.process.pid

    # -- running ----------------------------------------------------------------------------
    def ship(self, recipe: Recipe, model: Model) -> Recipe:
        """`recipe` for a model registered from Python: the model goes to the driver once
        (pickled by value, as Ray would), which puts it in the object store for the actors."""
        import cloudpickle  # type: ignore[import-untyped]

        with self._lock:
            driver = self._live(reconnect=True)
            if recipe.key not in driver.shipped:
                self._ask(m.Ship(recipe.key, cloudpickle.dumps(model)))
                driver.shipped.add(recipe.key)
        return replace(recipe, shipped=recipe.key)

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
    ) -> tuple[BatchRun, Report]:
        """The outputs of `keys` (in their order) computed on the cluster by `actors` actors."""
        if len(keys) == 0:
            return BatchRun(pa.array([], type=output_type), batch_size or 0, 0, 0.0), Report(0, (), 0, 0.0)
        request = m.Infer(recipe, call, m.to_ipc(keys), actors, batch_size, output_type, on_node is not None)
        with self._lock:
            driver = self._live(reconnect=True)
            driver.link.send(request)
            try:
                while True:
                    reply = self._receive(driver, call)
                    if isinstance(reply, m.Progress):
                        if reply.share is not None:
                            if on_node is not None:
                                on_node(reply.share)
                        elif progress is not None:
                            progress(reply.done_rows, reply.total_rows)
                        continue
                    if isinstance(reply, m.Inferred):
                        run = BatchRun(m.from_ipc(reply.outputs), reply.batch_size, reply.batches, reply.seconds)
                        return run, reply.report
                    self._raise(reply, driver)
            except KeyboardInterrupt:
                self._cancel(driver)
                raise

    def close(self) -> None:
        """Let the driver go: it shuts its Ray connection down (and Ray the actors) and exits."""
        with self._lock:
            driver, self._driver = self._driver, None
            if driver is not None:
                _end(driver, CLOSE_TIMEOUT_S)

    # -- the driver process -------------------------------------------------------------------
    def _start(self) -> _Driver:
        """A new driver connected to the cluster (one clear ClusterError if it cannot)."""
        reachable(self.spec)  # a host:port nobody answers fails now, before a process starts
        ours, theirs = socket.socketpair()
        log = tempfile.NamedTemporaryFile(prefix="wb-ray-driver-", suffix=".log", delete=False)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # this workbench, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench.cluster.driver", str(theirs.fileno()), self.spec],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,  # a Ctrl-C of the terminal or kernel reaches the session only
            )
        finally:
            theirs.close()
            log.close()
        driver = _Driver(process, Connection(ours.detach()), log.name)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        try:
            while not driver.link.poll(POLL_S):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ClusterError(
                        f"cannot connect to the Ray cluster {self.spec}: its driver process "
                        + ("exited" if process.poll() is not None else f"did not connect in {CONNECT_TIMEOUT_S:.0f} s")
                        + f" (log: {log.name})"
                    )
            reply = driver.link.recv()
        except BaseException:
            _end(driver, 0)
            raise
        if not isinstance(reply, m.Ready):
            _end(driver, CLOSE_TIMEOUT_S)
            self._raise(reply, None)
        with contextlib.suppress(OSError):
            os.unlink(log.name)  # (the driver keeps writing to its open file; nothing is left)
        return driver

    def _live(self, reconnect: bool = False) -> _Driver:
        """The running driver; after the cluster vanished, a new one when `reconnect` and the
        cluster answers again (not more often than every RETRY_S)."""
        if self._driver is not None and self._driver.process.poll() is None:
            return self._driver
        self._forget()
        if not reconnect or time.monotonic() < self._retry_at:
            raise ClusterUnavailable(
                f"the Ray cluster {self.spec} is gone; SET cluster = 'none', or run again once it is back"
            )
        try:
            self._driver = self._start()
        except ClusterError:
            self._retry_at = time.monotonic() + RETRY_S
            raise
        return self._driver

    def _ask(self, request: Any, reconnect: bool = False) -> Any:
        with self._lock:
            driver = self._live(reconnect)
            try:
                driver.link.send(request)
            except OSError:
                self._forget()
                raise ClusterUnavailable(f"the Ray cluster {self.spec} vanished; SET cluster again") from None
            reply = self._receive(driver, type(request).__name__.lower())
            if isinstance(reply, m.Answer):
                return reply.value
            self._raise(reply, driver)

    def _receive(self, driver: _Driver, what: str) -> Any:
        """The driver's next message; its death is one ClusterUnavailable."""
        while True:
            try:
                if driver.link.poll(POLL_S):
                    return driver.link.recv()
            except (EOFError, OSError):
                pass
            else:
                if driver.process.poll() is None:
                    continue
            code = _exit_code(driver)
            self._forget()
            raise ClusterUnavailable(
                f"the Ray cluster {self.spec} vanished while {what} ran (its driver process ended, code {code}); "
                "nothing of this query was written, and the next query reconnects once the cluster is back"
            )

    def _raise(self, reply: Any, driver: _Driver | None) -> None:
        if isinstance(reply, m.Failed):
            if reply.gone and driver is not None:
                self._forget()
            if reply.interrupted:
                raise KeyboardInterrupt
            if reply.error is not None:
                raise reply.error
            raise ClusterError(reply.message)
        raise ClusterError(f"the Ray driver answered {type(reply).__name__} out of turn")

    def _cancel(self, driver: _Driver) -> None:
        """Ctrl-C: the driver kills the running query's actors; one that does not answer in
        CANCEL_TIMEOUT_S (or a second Ctrl-C) is ended itself, and its actors with it."""
        try:
            driver.link.send(m.Cancel())
            deadline = time.monotonic() + CANCEL_TIMEOUT_S
            while time.monotonic() < deadline:
                if driver.link.poll(POLL_S):
                    if isinstance(driver.link.recv(), (m.Failed, m.Inferred)):
                        return
                elif driver.process.poll() is not None:
                    break
        except BaseException:
            pass
        self._forget()

    def _forget(self) -> None:
        """The driver is gone (or must go): end what is left of it."""
        driver, self._driver = self._driver, None
        if driver is not None:
            _end(driver, 0)


def _exit_code(driver: _Driver) -> int | None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        return driver.process.wait(timeout=1)
    return None


def _end(driver: _Driver, timeout: float) -> None:
    """Close the socket (the driver exits on its own), then wait, then kill."""
    with contextlib.suppress(OSError):
        driver.link.close()
    try:
        driver.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        driver.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            driver.process.wait(timeout=5)
    with contextlib.suppress(OSError):
        os.unlink(driver.log)
