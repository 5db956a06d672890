"""Fixed-size, content-addressed blocks of a tensor's raw bytes.

A block is at most `BLOCK_BYTES` long and ends on a row boundary of the tensor (a 2-D
weight's block is a range of output rows), so a block means the same rows in every model
that holds it, and a fine-tuned variant that changed a few rows shares every other block.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BLOCK_BYTES = 1 << 20  # 1 MiB: small enough that a local change rewrites little, big enough to index cheaply


@dataclass(frozen=True)
class Block:
    hash: str  # sha256 of the bytes, hex
    data: memoryview


def row_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes of one row (the first axis) of a tensor; a scalar or 1-D tensor's row is one element."""
    if len(shape) < 2:
        return itemsize
    size = itemsize
    for n in shape[1:]:
        size *= n
    return max(size, 1)


def split(data: memoryview, shape: tuple[int, ...], itemsize: int, block_bytes: int = BLOCK_BYTES) -> list[Block]:
    """`data` cut into blocks of whole rows (a row longer than a block is a block of its own)."""
    row = row_bytes(shape, itemsize)
    step = max(row, block_bytes // row * row)
    if len(data) == 0:
        return [Block(hashlib.sha256(b"").hexdigest(), data)]
    return [
        Block(hashlib.sha256(data[i : i + step]).hexdigest(), data[i : i + step]) for i in range(0, len(data), step)
    ]
