"""Scale out on Ray: the model operator's cache misses run on a Ray cluster's actors.

    connection  one connection per process to a cluster (`ray.init`), shared by sessions
    actors      the actor that loads a model once and answers blocks of inputs as Arrow
    executor    the cluster state a session's engine owns: actor pools, what runs taught
                (per-actor throughput, transfer cost), and the block loop with retries

Ray is an optional extra (`pip install workbench[ray]`): nothing here imports it at module
level, so a session without a cluster never loads it.
"""
