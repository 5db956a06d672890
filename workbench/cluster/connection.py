"""One connection per process to a Ray cluster.

`ray.init` is process-wide: every session of the process that sets a cluster shares the one
connection (counted), and a second, different cluster is refused with a clear error instead of
silently reusing the first. The last session to let go disconnects (`ray.shutdown`).

A cluster on this machine's loopback (`local`, `127.0.0.1:port`, `localhost:port`) keeps all
its traffic on 127.0.0.1: Ray otherwise reports (and binds to) the interface address even when
told 127.0.0.1, so the driver is started with Ray's "single machine" address resolution.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.db import first_line
from workbench.errors import ClusterError, ClusterUnavailable

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Ray resolves "this machine" to 127.0.0.1 (not the interface address) while this is "0"
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class Node:
    """One alive node of the cluster, as placement sees it."""

    node_id: str
    address: str
    cpus: float


class Connection:
    def __init__(self, spec: str, ray: Any):
        self.spec = spec
        self.ray = ray
        self.users = 0
        self.gone = False  # the cluster vanished: this process let go of it

    def answers(self) -> bool:
        """Whether the cluster's head still answers (a TCP connect to its port; always True
        for 'auto' and 'local', whose address this process does not name)."""
        try:
            reachable(self.spec)
        except ClusterError:
            return False
        return True

    def let_go(self) -> None:
        """The cluster vanished: disconnect now (Ray ends a driver whose head stays away for a
        minute), so the session fails with a clear error instead of the process exiting."""
        global _CURRENT
        with _LOCK:
            self.gone = True
            if _CURRENT is self:
                _CURRENT = None
            try:
                self.ray.shutdown()
            except Exception:  # pragma: no cover - nothing left to shut down
                pass

    def nodes(self) -> list[Node]:
        """The alive nodes with at least one CPU, in a stable order."""
        if self.gone:
            raise ClusterUnavailable(f"the Ray cluster {self.spec} is gone; SET cluster = 'none' or connect again")
        try:
            found = self.ray.nodes()
        except Exception as exc:  # the cluster is gone (GCS unreachable)
            raise ClusterUnavailable(f"the Ray cluster {self.spec} is gone: {first_line(exc)}") from None
        nodes = [
            Node(n["NodeID"], n.get("NodeManagerAddress", "?"), float(n.get("Resources", {}).get("CPU", 0)))
            for n in found
            if n.get("Alive")
        ]
        return sorted((n for n in nodes if n.cpus >= 1), key=lambda n: (n.address, n.node_id))


_LOCK = threading.Lock()
_CURRENT: Connection | None = None


def host_of(spec: str) -> str:
    if spec in ("auto", "local"):
        return "127.0.0.1" if spec == "local" else ""
    address = spec.removeprefix("ray://")
    return address.rsplit(":", 1)[0].strip("[]")


def connect(spec: str) -> Connection:
    """The process's connection to `spec` (made on first use; counted per user)."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is not None:
            if _CURRENT.spec != spec:
                raise ClusterError(
                    f"this process is connected to the Ray cluster {_CURRENT.spec}; a process holds one "
                    f"cluster at a time (SET cluster = 'none' in the sessions that use it first)"
                )
            _CURRENT.users += 1
            return _CURRENT
        reachable(spec)  # Ray itself retries an address nobody answers for a minute or more
        loopback = host_of(spec) in LOOPBACK_HOSTS
        if loopback:  # before Ray reads its constants (at its first import)
            os.environ.setdefault(SINGLE_MACHINE_ENV, "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            raise ClusterError("Ray is not installed: pip install 'workbench[ray]'") from None
        kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
        if spec == "local":  # a new cluster of this machine: its workers inherit this process's path
            _export_package_path()
            kwargs.update(address="local", include_dashboard=False)
        else:
            kwargs["address"] = spec
        if loopback and not spec.startswith("ray://"):
            kwargs["_node_ip_address"] = "127.0.0.1"
        try:
            ray.init(**kwargs)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError, TimeoutError...
            raise ClusterError(f"cannot connect to the Ray cluster {spec}: {first_line(exc)}") from None
        _CURRENT = Connection(spec, ray)
        _CURRENT.users = 1
        return _CURRENT


def release(connection: Connection) -> None:
    """One user fewer; the last one disconnects the process."""
    global _CURRENT
    with _LOCK:
        connection.users -= 1
        if connection.users > 0 or _CURRENT is not connection or connection.gone:
            return
        _CURRENT = None
        try:
            connection.ray.shutdown()
        except Exception:  # pragma: no cover - the cluster is gone already
            pass


def reachable(spec: str) -> None:
    """A host:port spec whose port refuses connections fails now, with one clear line."""
    if spec in ("auto", "local"):
        return
    address = spec.removeprefix("ray://")
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot connect to the Ray cluster {spec}: nothing answers there ({exc})") from None


def _export_package_path() -> None:
    """Worker processes of a local cluster find this workbench package (a source checkout
    that is not installed) on PYTHONPATH, as this process does."""
    root = str(Path(__file__).resolve().parents[2])
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [root, *paths] if p)
