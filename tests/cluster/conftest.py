"""The tests' Ray cluster: two nodes on 127.0.0.1, started once per test session and stopped
at its end (also when tests fail). A cluster that cannot start fails the tests that need it,
with the reason: it never skips them (the test install includes Ray)."""

from __future__ import annotations

import pytest

from tests.cluster import local_cluster


@pytest.fixture(scope="session")
def ray_cluster():
    local_cluster.use_in_this_process()
    try:
        cluster = local_cluster.start()
    except Exception as exc:
        pytest.fail(f"cannot start the local two-node Ray cluster for tests/cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        local_cluster.stop(cluster)
