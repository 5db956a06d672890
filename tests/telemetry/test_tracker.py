"""The tracker folds a cluster run's per-node events into the snapshot the live widget and the
text summary show."""

from workbench.telemetry.stream import Event
from workbench.telemetry.summary import facts
from workbench.telemetry.tracker import Tracker


def test_each_cluster_node_shows_its_rows_blocks_and_actors():
    t = Tracker()
    t(Event("query_start", 0.0, {"sql": "SELECT minilm(body) FROM pydoc", "operators": [{"id": 1}]}))
    node = {"id": 1, "node": "127.0.0.1", "node_id": "abcdef123456", "actors": 1}
    t(Event("node_progress", 0.5, {**node, "rows": 16, "blocks": 1}))
    t(Event("node_progress", 0.9, {**node, "rows": 32, "blocks": 2}))
    t(Event("node_progress", 1.0, {**node, "node_id": "99990000ffff", "rows": 16, "blocks": 1}))
    assert t.snapshot.to_dict()["nodes"]["127.0.0.1 abcdef12"] == {"rows": 32, "blocks": 2, "actors": 1}
    shown = dict(facts(t.snapshot))
    assert shown["node 127.0.0.1 abcdef12"] == "32 rows, 2 blocks, 1 actor"
    assert shown["node 127.0.0.1 99990000"] == "16 rows, 1 block, 1 actor"
