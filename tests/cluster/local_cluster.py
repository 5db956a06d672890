"""A real two-node Ray cluster on 127.0.0.1 for the tests: `ray start --head` plus a second
`ray start --address ...` node, each with one CPU and a resource of its own (node_a, node_b),
no dashboard, no usage stats, under a temporary directory of its own.

`stop` ends exactly the processes of this cluster (those that name its directory or session,
and everything they started), never another Ray on the machine. `python -m
tests.cluster.local_cluster --stop-leftovers` does the same for any cluster the tests left
(the Makefile runs it after the unit tests, whatever they did).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "wb-ray-test-"  # every test cluster's directory starts so (leftovers are found by it)
START_TIMEOUT_S = 240


@dataclass
class LocalCluster:
    address: str  # host:port of the head's GCS
    temp_dir: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: the cluster's traffic stays on 127.0.0.1, so it runs without Ray's token authentication: Ray
#: 2.60 turns it on for a head node whenever ~/.ray/auth_token exists (a `ray.init()` of a
#: new local cluster writes one), but not for a node that joins, which is then refused
AUTH = {"RAY_AUTH_MODE": "disabled"}


def use_in_this_process() -> None:
    """Let this process (a driver of the tests' cluster) speak to it as its nodes do."""
    for key, value in AUTH.items():
        os.environ.setdefault(key, value)


def _env(single_machine: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AUTH)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    if single_machine:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


#: Ray 2.60's raylet gives its node's dashboard agent (a Python process it starts) a fixed 15 s
#: to write its port files, then aborts ("Check failed ... Timed out waiting for file
#: .../metrics_agent_port_..." or "dashboard_agent_listen_port_..." in raylet.out), and the
#: node never registers. Under load (`stress-ng --cpu 2` beside the tests, load average 7-9)
#: the agent's imports alone take longer. No setting moves that deadline, so the nodes start
#: ahead of the load (this niceness, where the user may raise priority) and are set back to
#: the normal priority once up: the actors they start later compete like any process.
START_NICENESS = -10


def _ahead_of_the_load() -> None:
    with contextlib.suppress(OSError):
        os.nice(START_NICENESS)


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        preexec_fn=_ahead_of_the_load,  # noqa: PLW1509 - (no threads start in between)
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({done.returncode}): {' | '.join(tail)}")


def start(attempts: int = 2) -> LocalCluster:
    """The cluster, started; a start that fails is stopped and tried again. (Ray's fixed
    deadlines that a loaded 2-core machine missed: see START_NICENESS and ray_node.py.)"""
    for attempt in range(1, attempts + 1):
        try:
            return _start()
        except Exception:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start() -> LocalCluster:
    temp_dir = tempfile.mkdtemp(prefix=PREFIX, dir="/tmp")  # short: Ray's socket paths must fit
    port = _free_port()
    common = [
        "--num-cpus=1",
        "--object-store-memory=100000000",
        "--disable-usage-stats",
        "--include-log-monitor=false",  # (one Python process fewer to start: the tests read no logs)
    ]
    try:
        _run(
            [
                sys.executable,
                str(Path(__file__).with_name("ray_node.py")),  # (patient with a raylet's registration)
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--include-dashboard=false",
                f"--temp-dir={temp_dir}",
                "--resources=" + json.dumps({"node_a": 1}),
                *common,
            ],
            _env(single_machine=True),
        )
        _run(
            [
                sys.executable,
                str(Path(__file__).with_name("ray_node.py")),
                "start",
                f"--address=127.0.0.1:{port}",
                "--node-ip-address=127.0.0.1",
                "--resources=" + json.dumps({"node_b": 1}),
                *common,
            ],
            _env(single_machine=False),
        )
    except BaseException:
        stop(LocalCluster(f"127.0.0.1:{port}", temp_dir))
        raise
    for p in processes(temp_dir):  # up: back to the normal priority (so are the actors they start)
        with contextlib.suppress(psutil.Error):
            p.nice(0)
    return LocalCluster(f"127.0.0.1:{port}", temp_dir)


def _sessions(temp_dir: str) -> list[str]:
    return [os.path.basename(p) for p in glob.glob(os.path.join(temp_dir, "session_2*"))]


def processes(temp_dir: str) -> list[psutil.Process]:
    """This cluster's processes: those whose command line names its directory or session, and
    all their descendants (actors rename themselves `ray::...`)."""
    marks = [temp_dir, *_sessions(temp_dir)]
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(p.info["cmdline"] or ())
            if p.pid != os.getpid() and any(m in line for m in marks):
                found[p.pid] = p
                for child in p.children(recursive=True):
                    found[child.pid] = child
    found.pop(os.getpid(), None)
    return list(found.values())


def stop(cluster: LocalCluster) -> int:
    """End this cluster's processes (TERM, then KILL) and remove its directory; how many."""
    procs = processes(cluster.temp_dir)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    return len(procs)


def stop_leftovers() -> int:
    stopped = 0
    for temp_dir in glob.glob(f"/tmp/{PREFIX}*"):
        stopped += stop(LocalCluster("", temp_dir))
    return stopped


if __name__ == "__main__":
    if sys.argv[1:] == ["--stop-leftovers"]:
        n = stop_leftovers()
        print(f"stopped {n} leftover Ray test process(es)" if n else "no Ray test processes left")
    else:
        started = start()
        print(started.address, started.temp_dir)
        time.sleep(0)
