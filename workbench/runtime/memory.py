"""Memory budgets: keep a query's memory growth under the user's budget, or stop it clearly.

`SET memory_budget_cpu = '512MB'` gives a session a budget. DuckDB gets part of it as its
own `memory_limit` (it spills to disk beyond that), and a `MemoryGuard` samples the
process's resident memory between model batches and DuckDB steps: when the growth since the
query began passes the budget, the query stops with `OutOfMemoryBudget` instead of letting
the operating system kill the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from functools import cache

import psutil

from workbench.errors import OutOfMemoryBudget

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
#: share of the budget DuckDB may use for its own operators before spilling
DUCKDB_SHARE = 0.5


def parse_size(value: object) -> int:
    """'512MB', '1.5GB', '800MiB' or a number of bytes -> bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = int(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).upper() not in _UNITS:
            raise OutOfMemoryBudget(f"cannot read memory size {value!r} (examples: '512MB', '2GB')")
        size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size < 16 * 10**6:  # 16 MB, as the message and the budget are written (10^6 bytes)
        raise OutOfMemoryBudget(f"a memory budget below 16 MB cannot hold a query: {value!r}")
    return size


def rss() -> int:
    return psutil.Process().memory_info().rss


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc's malloc_trim; a no-op
    elsewhere). Each torch thread allocates from its own malloc arena, and freed arena
    memory stays resident: on a machine with many cores that retained memory alone can
    pass a small budget although nothing is in use."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class MemoryGuard:
    """Measures growth of resident memory from the start of a query against a budget."""

    def __init__(self, budget: int):
        self.budget = budget
        self.baseline = rss()
        self.peak = self.baseline

    def check(self, where: str) -> None:
        now = rss()
        if now - self.baseline > self.budget:
            release_free_memory()  # free but retained memory is not the query's
            now = rss()
        self.peak = max(self.peak, now)
        grown = now - self.baseline
        if grown > self.budget:
            raise OutOfMemoryBudget(
                f"out of memory budget at {where}: the query grew memory by {grown / 1e6:,.0f} MB, "
                f"over the budget of {self.budget / 1e6:,.0f} MB (SET memory_budget_cpu = ... to "
                "raise it, or select fewer rows or a smaller model output)"
            )
