"""The Ray driver process: `python -m workbench.cluster.driver FD SPEC`, started by a session's
`ClusterClient` (workbench/cluster/client.py), answering it over the socket FD.

Why a process of its own: Ray's core worker ends the whole process it lives in when its node's
raylet dies (the cluster vanished). In the user's process that would kill the Jupyter kernel;
here it ends only this driver, and the session raises one `ClusterUnavailable` and goes on.
The driver also exits when the session's end of the socket closes (the session closed or its
process died), and Ray then ends the actors it started. It ignores SIGINT: a kernel interrupt
reaches the session, which sends `Cancel`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from workbench.cluster import messages as m
from workbench.cluster.connection import connect
from workbench.cluster.executor import Cluster
from workbench.db import first_line
from workbench.errors import ClusterError, WorkbenchError


class Driver:
    def __init__(self, link: Connection, cluster: Cluster):
        self.link = link
        self.cluster = cluster
        self.shipped: dict[str, Any] = {}  # fingerprint -> object ref of a shipped model
        self.cancel_seen = False

    def serve(self) -> None:
        while True:
            try:
                request = self.link.recv()
            except (EOFError, OSError):  # the session let go (or its process ended)
                return
            try:
                answer = self.answer(request)
            except KeyboardInterrupt:
                answer = m.Failed(None, "interrupted", interrupted=True)
            except WorkbenchError as exc:
                answer = m.Failed(exc, str(exc), gone=self.cluster.connection.gone)
            except Exception as exc:  # Ray's own failures
                message = f"the Ray cluster {self.cluster.spec} failed: {first_line(exc)}"
                answer = m.Failed(ClusterError(message), message)
            self.link.send(answer)
            if isinstance(answer, m.Failed) and answer.gone:
                return

    def answer(self, request: Any) -> Any:
        cluster = self.cluster
        if isinstance(request, m.Nodes):
            return m.Answer(cluster.nodes())
        if isinstance(request, m.Facts):
            return m.Answer(cluster.facts(request.fingerprint))
        if isinstance(request, m.Pids):
            return m.Answer(cluster.pids())
        if isinstance(request, m.Where):
            return m.Answer(cluster.ray.util.get_node_ip_address())
        if isinstance(request, m.Ship):
            import pickle  # (cloudpickle's output: pickled by value in the session, as Ray would)

            if request.fingerprint not in self.shipped:
                self.shipped[request.fingerprint] = cluster.ray.put(pickle.loads(request.model))
            return m.Answer(None)
        if isinstance(request, m.Infer):
            return self.infer(request)
        if isinstance(request, m.Cancel):  # arrived after its Infer ended: nothing to stop
            return m.Answer(None)
        raise ClusterError(f"the Ray driver got an unknown request {type(request).__name__}")

    def infer(self, request: m.Infer) -> m.Inferred:
        recipe = request.recipe
        if recipe.shipped is not None:
            recipe = dataclasses.replace(recipe, shipped=self.shipped[recipe.shipped])
        link = self.link
        on_node = None
        if request.per_node:

            def on_node(share: Any) -> None:
                link.send(m.Progress(-1, -1, share))

        self.cancel_seen = False
        run, report = self.cluster.infer(
            recipe,
            request.call,
            m.from_ipc(request.keys),
            actors=request.actors,
            batch_size=request.batch_size,
            output_type=request.output_type,
            progress=lambda done, total: link.send(m.Progress(done, total, None)),
            on_node=on_node,
            cancelled=self.cancelled,
        )
        return m.Inferred(m.to_ipc(run.outputs), run.batch_size, run.batches, run.seconds, report)

    def cancelled(self) -> bool:
        """Whether the session sent `Cancel` (read between blocks, every POLL_S at most)."""
        while not self.cancel_seen and self.link.poll(0):
            if isinstance(self.link.recv(), m.Cancel):
                self.cancel_seen = True
        return self.cancel_seen


def main(fd: int, spec: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    link = Connection(fd)
    try:
        cluster = Cluster(connect(spec))
    except WorkbenchError as exc:
        link.send(m.Failed(exc, str(exc), gone=True))
        return
    except Exception as exc:
        message = f"cannot connect to the Ray cluster {spec}: {first_line(exc)}"
        link.send(m.Failed(ClusterError(message), message, gone=True))
        return
    link.send(m.Ready(os.getpid()))
    try:
        Driver(link, cluster).serve()
    finally:
        cluster.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
