"""`ray start ...` with this machine seen as 127.0.0.1 (the tests' cluster stays on loopback),
and with patience for a loaded machine.

Ray resolves a node's address as the machine's interface address even when told
`--node-ip-address=127.0.0.1` (it turns loopback addresses into "the reachable one"). The head
node keeps 127.0.0.1 under RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, but `ray start --address`
refuses to add a node in that mode; so the nodes run Ray's own CLI with the address lookup
answering 127.0.0.1.

`ray start` gives a new raylet a fixed 30 s to register with the GCS (a constant inside
`ray._private.node.Node.__init__`, which asks `services.get_node` in a loop). On this 2-core
machine under load (`stress-ng --cpu 2` beside the tests) registration takes longer, and the
node start failed with "The current node timed out during startup" though the raylet was
fine. Here `get_node` itself waits for the registration, polling, up to REGISTER_TIMEOUT_S.
Usage: python tests/cluster/ray_node.py start --address=... (the arguments of `ray`).
"""

import sys
import time

import psutil
import ray._private.services as services
from ray.scripts.scripts import main

REGISTER_TIMEOUT_S = 120.0
POLL_S = 0.25

_get_node = services.get_node


def _patient_get_node(*args, **kwargs):
    """`services.get_node`, polled until the node is registered (or REGISTER_TIMEOUT_S)."""
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while True:
        try:
            return _get_node(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline or _raylet_died():
                raise
            time.sleep(POLL_S)


def _raylet_died() -> bool:
    """The raylet this `ray start` launched has exited (it aborts on its own deadlines): no
    registration is coming, so the start fails now instead of at the ceiling."""
    for child in psutil.Process().children():
        try:
            if child.name() == "raylet" and child.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return True
        except psutil.Error:
            continue
    return False


if __name__ == "__main__":
    services.node_ip_address_from_perspective = lambda address=None: "127.0.0.1"
    services.get_node = _patient_get_node
    sys.argv = ["ray", *sys.argv[1:]]
    main()
