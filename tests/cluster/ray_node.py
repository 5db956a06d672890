"""`ray start ...` with this machine seen as 127.0.0.1 (the tests' cluster stays on loopback).

Ray resolves a node's address as the machine's interface address even when told
`--node-ip-address=127.0.0.1` (it turns loopback addresses into "the reachable one"). The head
node keeps 127.0.0.1 under RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, but `ray start --address`
refuses to add a node in that mode; so the second node runs Ray's own CLI with the address
lookup answering 127.0.0.1. Usage: python tests/cluster/ray_node.py start --address=... (the
arguments of `ray`).
"""

import sys

import ray._private.services as services
from ray.scripts.scripts import main

if __name__ == "__main__":
    services.node_ip_address_from_perspective = lambda address=None: "127.0.0.1"
    sys.argv = ["ray", *sys.argv[1:]]
    main()
