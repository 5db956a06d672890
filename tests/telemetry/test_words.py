"""Counts read as English: one row, two rows, one miss, three misses."""

from __future__ import annotations

from workbench.telemetry.summary import count


def test_count() -> None:
    assert count(1, "result row") == "1 result row"
    assert count(2, "result row") == "2 result rows"
    assert count(0, "model row") == "0 model rows"
    assert count(1, "miss", "misses") == "1 miss"
    assert count(3, "miss", "misses") == "3 misses"
    assert count(1_234, "hit") == "1,234 hits"
