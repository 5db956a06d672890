"""Scale out on Ray: the model operator's cache misses run on a Ray cluster's actors.

    client      the session's side: starts its Ray driver process, sends it cache misses
                (Arrow IPC), and turns the driver's death into one ClusterUnavailable
    driver      that process (`python -m workbench.cluster.driver`): the only Ray driver
    messages    what the two say to each other over their socket
    connection  the driver's connection to a cluster (`ray.init`)
    actors      the actor that loads a model once and answers blocks of inputs as Arrow
    executor    in the driver: actor pools, what runs taught (per-actor throughput,
                transfer cost), and the block loop with retries

Ray is an optional extra (`pip install workbench[ray]`): only the driver process imports it
(Ray ends the process holding a driver whose node vanished: never the user's kernel).
"""
