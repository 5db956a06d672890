"""The inference cache: fingerprints, hits, policies, persistence, concurrency, crash safety."""

import random
import threading

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench
from tests.kill_points import Forks
from workbench.cache import CacheError
from workbench.models.tensor import TensorModel


def small_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


@pytest.fixture
def digits_session():
    s = workbench.connect()
    s.sql("CALL load_dataset('digits')")
    yield s
    s.close()


def fresh_labels(session, net, ids_sql):
    rows = session.sql(f"SELECT pixels FROM digits WHERE {ids_sql} ORDER BY id").pl()
    x = torch.tensor(np.stack(rows["pixels"].to_list()), dtype=torch.float32)
    with torch.no_grad():
        return net(x).argmax(-1).tolist()


# -- fingerprints ----------------------------------------------------------------------------
def test_fingerprint_changes_with_one_ulp_and_with_options():
    net = small_net()
    model = TensorModel(net, task="classify")
    before = model.fingerprint()
    assert model.fingerprint() == before  # stable while nothing changes
    with torch.no_grad():
        w = net[0].weight
        w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(float("inf")))
    assert model.fingerprint() != before
    embed = TensorModel(small_net(), task="embed")
    assert embed.fingerprint() != TensorModel(small_net(), task="classify").fingerprint()
    assert TensorModel(small_net(), task="classify").fingerprint() == before


def test_text_model_fingerprint_covers_preprocessing(digits_session):
    minilm = digits_session.catalog.get("minilm")
    from workbench.models.text import TextEmbedder

    shorter = TextEmbedder(minilm.model, minilm.tokenizer, max_length=64)
    raw = TextEmbedder(minilm.model, minilm.tokenizer, normalize=False)
    prints = {minilm.fingerprint(), shorter.fingerprint(), raw.fingerprint()}
    assert len(prints) == 3


# -- hits --------------------------------------------------------------------------------------
def test_repeat_is_all_hits_and_overlap_is_partial(digits_session):
    s = digits_session
    cold = s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id < 100 ORDER BY id")
    warm = s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id < 100 ORDER BY id")
    assert cold.stats[0]["cache_misses"] == 100 and cold.stats[0]["cache_hits"] == 0
    assert warm.stats[0]["cache_hits"] == 100 and warm.stats[0]["cache_misses"] == 0
    assert warm.pl().equals(cold.pl())
    half = s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id >= 50 AND id < 150")
    assert (half.stats[0]["cache_hits"], half.stats[0]["cache_misses"]) == (50, 50)
    assert "cache 50 hits / 50 misses" in half.summary()


def test_model_change_invalidates(digits_session):
    s = digits_session
    net = small_net()
    s.register_model("mine", net, task="classify")
    first = s.sql("SELECT mine(pixels).label AS l FROM digits WHERE id < 60 ORDER BY id").pl()["l"].to_list()
    with torch.no_grad():
        net[2].bias += 5 * torch.arange(10.0)  # a different model now
    again = s.sql("SELECT mine(pixels).label AS l FROM digits WHERE id < 60 ORDER BY id")
    assert again.stats[0]["cache_hits"] == 0
    assert again.pl()["l"].to_list() == fresh_labels(s, net, "id < 60") != first


def test_sampling_models_are_never_cached(digits_session):
    s = digits_session
    net = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.Dropout(0.5))
    s.register_model("noisy", net, task="classify")
    net.train()  # queries run it in eval mode (dropout off) and leave it in training mode
    s.sql("SELECT noisy(pixels) FROM digits WHERE id < 20")
    r = s.sql("SELECT noisy(pixels) FROM digits WHERE id < 20")
    assert r.stats[0]["cache_hits"] == 20 and r.stats[0]["cache_policy"] == "exact" and net.training
    s.register_model("declared", small_net(), task="classify", deterministic=False)
    s.sql("SELECT declared(pixels) FROM digits WHERE id < 5")
    assert s.sql("SELECT declared(pixels) FROM digits WHERE id < 5").stats[0]["cache_hits"] == 0


# -- policies ----------------------------------------------------------------------------------
def test_policies_off_normalized_semantic(session):
    s = session
    s.sql("ALTER MODEL minilm SET cache = 'off'")
    s.sql("SELECT minilm('a cat sat')")
    assert s.sql("SELECT minilm('a cat sat')").stats[0]["cache_hits"] == 0
    s.sql("ALTER MODEL minilm SET cache = 'normalized', cache_normalize = 'trim,case'")
    s.sql("SELECT minilm('A cat sat ')")
    r = s.sql("SELECT minilm('a CAT sat')")
    assert r.stats[0]["cache_hits"] == 1 and "normalized" in r.stats[0]["cache_policy"]
    assert s.sql("SELECT minilm('a  cat sat')").stats[0]["cache_hits"] == 0  # whitespace not folded
    s.register_model("twin", _text_pair(s), task="embed", cache="semantic", cache_threshold=0.9)
    s.sql("SELECT twin('How do I open a file in Python?')")
    near = s.sql("SELECT twin('How can I open a file in Python?')")
    assert near.stats[0]["cache_hits"] == 1 and near.stats[0]["cache_semantic_hits"] == 1
    assert "0.9" in near.stats[0]["cache_policy"]
    far = s.sql("SELECT twin('The sky is blue today')")
    assert far.stats[0]["cache_hits"] == 0
    with pytest.raises(CacheError, match="cache must be one of"):
        s.sql("ALTER MODEL minilm SET cache = 'sometimes'")


def _text_pair(s):
    m = s.catalog.get("minilm")
    return (m.model, m.tokenizer)


def test_size_bound_evicts_least_recently_used(digits_session):
    s = digits_session
    s.register_model("tiny", small_net(), task="classify", cache_max_mb=0.02)  # ~60 entries of ~330 bytes
    s.sql("SELECT tiny(pixels) FROM digits WHERE id < 40")
    s.sql("SELECT tiny(pixels) FROM digits WHERE id >= 40 AND id < 80")
    stats = s.sql("CALL cache_stats()").pl().filter(model="tiny")
    assert stats["bytes"][0] <= 0.02 * 2**20 and stats["entries"][0] < 80
    newest = s.sql("SELECT tiny(pixels) FROM digits WHERE id >= 40 AND id < 80").stats[0]
    assert newest["cache_hits"] == 40  # the most recent entries were kept


def test_stats_clear_and_explain(digits_session):
    s = digits_session
    s.sql("SELECT digits(pixels) FROM digits WHERE id < 30")
    plan = s.explain("SELECT digits(pixels) FROM digits WHERE id < 60")
    assert plan.operators[0].expected_hit_ratio == pytest.approx(0.5)
    assert "expected hits 50%" in plan.text()
    analyzed = s.explain("SELECT digits(pixels) FROM digits WHERE id < 60", analyze=True)
    assert analyzed.operators[0].actual_cache_hits == 30 and "actual hits 50%" in analyzed.text()
    assert s.sql("CALL cache_stats()").pl().filter(model="digits")["entries"][0] == 60
    assert "60 entries removed" in s.sql("CALL clear_cache('digits')").message
    assert s.sql("SELECT digits(pixels) FROM digits WHERE id < 30").stats[0]["cache_hits"] == 0


# -- persistence and concurrency -----------------------------------------------------------------
def test_cache_persists_in_a_file_database(tmp_path):
    db = str(tmp_path / "c.duckdb")
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('digits')")
        cold = s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id < 50 ORDER BY id")
    with workbench.connect(db) as s:
        warm = s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id < 50 ORDER BY id")
        assert warm.stats[0]["cache_hits"] == 50 and warm.pl().equals(cold.pl())


def test_two_sessions_writing_one_cache_leave_no_duplicates(tmp_path):
    db = str(tmp_path / "shared.duckdb")
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('digits')")
    sessions = [workbench.connect(db) for _ in range(2)]
    errors = []

    def work(sess, offset):
        try:
            for i in range(4):
                lo = (offset + i * 37) % 1500
                sess.sql(f"SELECT digits(pixels) FROM digits WHERE id >= {lo} AND id < {lo + 200}")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(x, k * 100)) for k, x in enumerate(sessions)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    n, distinct = (
        sessions[0].con.sql("SELECT count(*), count(DISTINCT (fp, h)) FROM workbench_cache_digits").fetchall()[0]
    )
    assert n == distinct > 0
    for x in sessions:
        x.close()


# -- property: never a stale hit ----------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 1700), st.integers(1, 80), st.booleans()), min_size=1, max_size=6))
def test_cached_results_always_equal_fresh_computation(digits_session, steps):
    s = digits_session
    net = small_net()
    s.register_model("prop", net, task="classify")
    for lo, width, change in steps:
        if change:
            with torch.no_grad():
                net[0].weight.mul_(1.01)
        where = f"id >= {lo} AND id < {lo + width}"
        first = s.sql(f"SELECT prop(pixels).label AS l FROM digits WHERE {where} ORDER BY id")
        assert first.pl()["l"].to_list() == fresh_labels(s, net, where)
        repeat = s.sql(f"SELECT prop(pixels).label AS l FROM digits WHERE {where} ORDER BY id")
        assert repeat.stats[0]["cache_misses"] == 0 and repeat.pl().equals(first.pl())


# -- crash safety --------------------------------------------------------------------------------
WRITER = """
def write(db, start):
    s = workbench.connect(db)
    for i in range(int(start), int(start) + 100_000):
        lo = (i * 53) % 1700
        s.sql(f"SELECT digits(pixels) FROM digits WHERE id >= {lo} AND id < {lo + 90}")
        print(f"query {i} {lo}", flush=True)  # its cache entries are committed
"""


def test_sigkill_during_cache_writes_leaves_committed_entries_intact(tmp_path):
    db = str(tmp_path / "kill.duckdb")
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('digits')")
    rng = random.Random(7)
    committed, queries = 0, 0
    with Forks(tmp_path / "writer.py", WRITER) as forks:
        for _ in range(20):
            # the kill lands at a random point after the k-th query's write-back: in the next
            # query's lookup, inference or write, or between two queries
            done = forks.kill_after([db, queries], commits=rng.randint(1, 3), delay=rng.uniform(0.0, 0.25))
            queries += len(done)
            windows = [int(line.split()[2]) for line in done]
            with workbench.connect(db) as s:  # reopens: no corruption
                n, distinct = s.con.sql(
                    "SELECT count(*), count(DISTINCT (fp, h)) FROM workbench_cache_digits WHERE fp IS NOT NULL"
                ).fetchall()[0]
                assert n == distinct and n >= committed  # whole entries, none lost since the last check
                where = " OR ".join(f"(d.id >= {lo} AND d.id < {lo + 90})" for lo in windows)
                lost = s.con.sql(
                    f"SELECT count(*) FROM digits d WHERE ({where}) AND NOT EXISTS "
                    "(SELECT 1 FROM workbench_cache_digits c WHERE c.k = d.pixels)"
                ).fetchall()[0][0]
                assert lost == 0, f"{lost} entries of queries that returned before the kill are missing"
                committed = n
    assert committed > 0 and queries >= 20  # every kill landed after real cache writes
    with workbench.connect(db) as s:
        cached = s.sql("SELECT id, digits(pixels).label AS l FROM digits ORDER BY id")
        assert cached.stats[0]["cache_hits"] == committed
        s.sql("ALTER MODEL digits SET cache = 'off'")
        fresh = s.sql("SELECT id, digits(pixels).label AS l FROM digits ORDER BY id")
        assert cached.pl().equals(fresh.pl())  # every stored entry is a correct output
