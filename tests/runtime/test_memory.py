"""The memory guard counts what a query holds, not what the allocator keeps after a free."""

import ctypes
import ctypes.util

import pytest

from workbench.errors import OutOfMemoryBudget
from workbench.runtime import memory

MB = 2**20

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
pytestmark = pytest.mark.skipif(not hasattr(libc, "malloc_trim"), reason="needs glibc's malloc_trim")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]


def _touch(size: int) -> list[int]:
    """Small blocks, each written, so their pages are resident."""
    blocks = []
    for _ in range(size // 4096):
        p = libc.malloc(4000)
        ctypes.memset(p, 1, 4000)
        blocks.append(p)
    return blocks


def test_memory_freed_but_retained_by_the_allocator_does_not_stop_a_query():
    guard = memory.MemoryGuard(32 * MB)
    blocks = _touch(96 * MB)
    for p in blocks[:-1]:  # the last block pins the heap's top: free pages stay resident
        libc.free(p)
    try:
        guard.check("test")  # would count 96 MB without handing the free pages back
    finally:
        libc.free(blocks[-1])


def test_memory_in_use_still_stops_a_query():
    memory.release_free_memory()  # start from a trimmed heap: earlier frees are not reused
    guard = memory.MemoryGuard(32 * MB)
    blocks = _touch(96 * MB)
    try:
        with pytest.raises(OutOfMemoryBudget, match="grew memory by"):
            guard.check("test")
    finally:
        for p in blocks:
            libc.free(p)
