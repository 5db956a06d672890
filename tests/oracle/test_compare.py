"""The oracle's own comparison: what counts as the same answer."""

import pyarrow as pa

from tests.oracle.compare import Rows, first_difference


def rows(*values, columns=("a", "b")):
    return Rows(columns, ("int64", "double"), tuple(values))


def test_floats_agree_within_the_tolerance_only():
    assert first_difference(rows((1, 0.5)), rows((1, 0.50004)), ordered=True) is None
    assert "row 0" in first_difference(rows((1, 0.5)), rows((1, 0.501)), ordered=True)


def test_null_equals_only_null():
    assert first_difference(rows((1, None)), rows((1, None)), ordered=True) is None
    assert first_difference(rows((1, None)), rows((1, 0.0)), ordered=True) is not None


def test_unordered_answers_compare_as_multisets():
    a = rows((1, 0.5), (2, 0.25), (2, 0.25))
    assert first_difference(a, rows((2, 0.25), (1, 0.5), (2, 0.25)), ordered=False) is None
    assert first_difference(a, rows((2, 0.25), (1, 0.5), (1, 0.5)), ordered=False) is not None
    assert first_difference(a, rows((2, 0.25), (1, 0.5), (2, 0.25)), ordered=True) is not None


def test_rows_near_a_rounding_edge_still_match():
    a = rows((1, 0.12349999), (1, 0.2))
    assert first_difference(a, rows((1, 0.2), (1, 0.12350001)), ordered=False) is None


def test_names_types_and_row_counts_are_part_of_the_answer():
    assert "columns" in first_difference(rows((1, 0.5)), rows((1, 0.5), columns=("a", "c")), ordered=False)
    assert "2 rows instead of 1" in first_difference(rows((1, 0.5)), rows((1, 0.5), (1, 0.5)), ordered=False)
    t = pa.table({"a": pa.array([1], pa.int32()), "b": [{"label": 1, "score": 0.5}]})
    u = pa.table({"a": pa.array([1], pa.int64()), "b": [{"label": 1, "score": 0.5}]})
    assert "types" in first_difference(Rows.of(t), Rows.of(u), ordered=True)


def test_duplicate_column_names_keep_every_column():
    t = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["id", "id"])
    assert Rows.of(t).rows == ((1, 2),)
