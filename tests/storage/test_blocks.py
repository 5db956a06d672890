"""Blocks end on row boundaries and are keyed by the sha256 of their bytes."""

from __future__ import annotations

import hashlib

import numpy as np

from workbench.storage import blocks


def test_a_matrix_is_cut_into_row_ranges_keyed_by_their_hash():
    w = np.arange(300 * 7, dtype=np.float32).reshape(300, 7)
    data = memoryview(w.tobytes())
    parts = blocks.split(data, w.shape, 4, block_bytes=1000)  # 35 rows of 28 bytes per block
    assert [len(p.data) for p in parts] == [35 * 28] * 8 + [20 * 28]
    assert b"".join(bytes(p.data) for p in parts) == w.tobytes()
    assert all(p.hash == hashlib.sha256(p.data).hexdigest() for p in parts)


def test_equal_bytes_have_equal_hashes_and_a_changed_row_changes_one_block():
    w = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    v = w.copy()
    v[40] += 1e-3  # a fine-tune that touched one row
    a = blocks.split(memoryview(w.tobytes()), w.shape, 4, block_bytes=1024)
    b = blocks.split(memoryview(v.tobytes()), v.shape, 4, block_bytes=1024)
    assert [x.hash == y.hash for x, y in zip(a, b)] == [True, True, True, True, True, False, True, True]


def test_a_row_longer_than_a_block_is_a_block_and_an_empty_tensor_one_empty_block():
    w = np.ones((3, 1000), dtype=np.float32)
    assert [len(p.data) for p in blocks.split(memoryview(w.tobytes()), w.shape, 4, block_bytes=1024)] == [4000] * 3
    assert [len(p.data) for p in blocks.split(memoryview(b""), (0,), 4)] == [0]
