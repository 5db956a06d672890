"""One Session used from many threads at once gives what running the same statements one
after another gives, and never an error (in particular never DuckDB's "connection is busy").

Every thread runs its own list of 50 statements mixing model queries (the built-in digits
MLP and a torch module registered from Python), plain queries, writes to a table of its own
read back afterwards, and `CREATE TABLE ... AS SELECT` with a model call. The reference is
the same lists run one statement after another on a fresh session over the same data.
Two variants: every model's inference cache off, and the digits model's cache on (the
registered module's off), so cache lookups and write-backs race too.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import torch

import workbench

THREADS = 8
STATEMENTS = 50
TIMEOUT_S = 120  # a hang is a failure, not a stuck test run


def close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def tm_module() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def make_session(digits_cache: str = "off", tm_cache: str = "off") -> workbench.Session:
    s = workbench.connect(progress=False)
    s.sql("CALL load_dataset('digits')")
    s.register_model("tm", tm_module(), task="classify", cache=tm_cache)
    s.sql(f"ALTER MODEL digits SET cache = '{digits_cache}'")
    return s


def statements(t: int) -> list[str]:
    """Thread `t`'s 50 statements (deterministic, touching only tables of its own)."""
    out = [f"CREATE TABLE t_{t} (i INTEGER, v INTEGER)"]
    j = 0
    while len(out) < STATEMENTS:
        k = (t * 31 + j * 7) % 97
        kind = j % 8
        if kind == 0:
            out.append(f"SELECT id, digits(pixels).label AS l FROM digits WHERE id % 97 = {k} ORDER BY id")
        elif kind == 1:
            out.append(f"SELECT count(*) AS n, sum(label) AS s FROM digits WHERE id % 13 = {k % 13}")
        elif kind == 2:
            out.append(f"INSERT INTO t_{t} VALUES ({j}, {j * (t + 1)})")
        elif kind == 3:
            out.append(f"SELECT i, v FROM t_{t} ORDER BY i")
        elif kind == 4:
            out.append(
                f"CREATE OR REPLACE TABLE m_{t} AS SELECT id, digits(pixels).label AS l, "
                f"tm(pixels).label AS m FROM digits WHERE id % 101 = {k % 101}"
            )
        elif kind == 5:
            out.append(f"SELECT id, l, m FROM m_{t} ORDER BY id")
        elif kind == 6:
            out.append(
                f"SELECT id, tm(pixels).label AS a, tm(pixels).score AS b FROM digits "
                f"WHERE id % 89 = {k % 89} ORDER BY id"
            )
        else:
            out.append(
                f"SELECT id FROM digits WHERE id % 97 = {k} AND digits(pixels).label = tm(pixels).label ORDER BY id"
            )
        j += 1
    return out


def run_list(s: workbench.Session, sqls: list[str], paradigm: str | None = None) -> list:
    """Rows of every statement, or the error it raised (kept, not raised: all are reported)."""
    out = []
    for sql in sqls:
        try:
            out.append(s.sql(sql, paradigm=paradigm).arrow().to_pylist())
        except Exception as exc:  # every error is a finding
            out.append(exc)
    return out


def concurrently(fn, args: list) -> list:
    pool = ThreadPoolExecutor(max_workers=len(args))
    futures = [pool.submit(fn, *a) for a in args]
    done, pending = wait(futures, timeout=TIMEOUT_S)
    pool.shutdown(wait=not pending, cancel_futures=True)
    assert not pending, f"{len(pending)} of {len(futures)} threads still running after {TIMEOUT_S} s (a hang?)"
    return [f.result() for f in futures]


def compare(got: dict, expected: dict) -> None:
    errors = [
        (key, i, repr(r)) for key, results in got.items() for i, r in enumerate(results) if isinstance(r, Exception)
    ]
    assert not errors, f"{len(errors)} statements failed under concurrency, e.g.:\n" + "\n".join(
        f"  {key} #{i}: {e[:300]}" for key, i, e in errors[:8]
    )
    ref_errors = [
        (key, i, repr(r))
        for key, results in expected.items()
        for i, r in enumerate(results)
        if isinstance(r, Exception)
    ]
    assert not ref_errors, f"the sequential reference failed: {ref_errors[:3]}"
    wrong = [(key, i) for key in expected for i, (a, b) in enumerate(zip(got[key], expected[key])) if not close(a, b)]
    assert not wrong, f"{len(wrong)} statements gave other rows than sequentially, e.g. {wrong[:8]}"


@pytest.fixture(scope="module")
def lists() -> dict[int, list[str]]:
    return {t: statements(t) for t in range(THREADS)}


@pytest.fixture(scope="module")
def expected(lists) -> dict[int, list]:
    """Every thread's list run one statement after another on a fresh session (the inference
    cache off: cached or not, the rows are the same)."""
    reference = make_session()
    try:
        return {t: run_list(reference, lists[t]) for t in range(THREADS)}
    finally:
        reference.close()


# the cache costs about 0.2 s per model statement here, so only digits keeps it in the second variant
@pytest.mark.parametrize("caches", [("off", "off"), ("exact", "off")], ids=["cache_off", "digits_cached"])
def test_one_session_from_eight_threads(lists, expected, caches):
    s = make_session(*caches)
    try:
        results = concurrently(lambda t: run_list(s, lists[t]), [(t,) for t in range(THREADS)])
        compare(dict(enumerate(results)), expected)
    finally:
        s.close()


def test_forced_paradigms_from_four_threads():
    s = make_session()
    try:
        queries = [
            "SELECT id, digits(pixels).label AS l, digits(pixels).score AS p FROM digits "
            "WHERE id % 97 = {k} ORDER BY id",
            "SELECT id, tm(pixels).label AS a FROM digits WHERE id % 89 = {k} AND digits(pixels).label < 5 ORDER BY id",
            "SELECT digits(pixels).label AS l, count(*) AS n FROM digits WHERE id % 53 = {k} GROUP BY 1 ORDER BY 1",
        ]
        work = [(t, ("udf_centric", "dl_centric")[t % 2]) for t in range(4)]

        def sqls(t: int) -> list[str]:
            return [q.format(k=(t * 11 + i) % 53) for i in range(8) for q in queries]

        expected = {(t, p): run_list(s, sqls(t), p) for t, p in work}
        # the other paradigm must give the same rows as well
        for t, p in work:
            other = "dl_centric" if p == "udf_centric" else "udf_centric"
            assert all(close(a, b) for a, b in zip(run_list(s, sqls(t), other), expected[(t, p)]))
        results = concurrently(lambda t, p: run_list(s, sqls(t), p), work)
        compare(dict(zip(work, results)), expected)
    finally:
        s.close()
