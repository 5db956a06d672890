"""Accuracy-aware dedup: a float32 block close to a stored block is kept as a reference to
that block plus its difference quantized to int8 (a quarter of the bytes).

Candidates come from a sketch index: each stored float32 block's sign pattern under 16 fixed
random projections of an evenly spaced sample of its values (random-projection LSH: two
blocks at a small angle share the pattern with high probability). A candidate is taken when
the block rebuilt from it is within `BLOCK_TOLERANCE` (relative L2 error); the model as a
whole is then accepted only if its outputs on a validation sample stay within the user's
`max_accuracy_loss` (models/catalog.py), else it is stored exactly.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cache

import numpy as np

SKETCH_BITS = 16
SAMPLE = 2048
#: relative L2 error of a rebuilt block above which a candidate is not used
BLOCK_TOLERANCE = 0.01
#: dtypes whose blocks are sketched and may be stored as deltas
NEAR_DTYPES = ("F32",)


@dataclass(frozen=True)
class Delta:
    hash: str
    base: str  # the hash of the raw block it is relative to
    scale: float
    data: bytes  # int8 quantized (block - base) / scale


@cache
def _planes() -> np.ndarray:
    return np.random.default_rng(18).standard_normal((SKETCH_BITS, SAMPLE))


def sketch(values: np.ndarray) -> int:
    """The block's 16-bit sign pattern (an index key: near blocks usually share it)."""
    if len(values) >= SAMPLE:
        sample = values[np.linspace(0, len(values) - 1, SAMPLE).astype(np.int64)]
    else:
        sample = np.zeros(SAMPLE, np.float32)
        sample[: len(values)] = values
    finite = np.nan_to_num(sample.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    bits = (_planes() @ finite) > 0  # (in float64: no overflow on huge values)
    return int(np.packbits(bits).view(">u2")[0])


def encode(values: np.ndarray, base_hash: str, base: np.ndarray) -> Delta | None:
    """`values` as `base` plus an int8 delta, or None when the rebuilt block errs more than
    BLOCK_TOLERANCE (or the values are not finite)."""
    if base.shape != values.shape or not np.isfinite(values).all() or not np.isfinite(base).all():
        return None
    diff = values - base
    top = float(np.abs(diff).max()) if len(diff) else 0.0
    scale = top / 127.0 if top > 0 else 1.0
    q = np.clip(np.rint(diff / scale), -127, 127).astype(np.int8)
    rebuilt = decode(base, q.tobytes(), scale)
    norm = float(np.linalg.norm(values))
    if norm == 0 or float(np.linalg.norm(rebuilt - values)) / norm > BLOCK_TOLERANCE:
        return None
    data = q.tobytes()
    digest = hashlib.sha256(b"delta:" + base_hash.encode() + struct.pack("<d", scale) + data).hexdigest()
    return Delta(digest, base_hash, scale, data)


def decode(base: np.ndarray, data: bytes, scale: float) -> np.ndarray:
    """The float32 block a delta stands for."""
    return (base + np.frombuffer(data, np.int8).astype(np.float32) * np.float32(scale)).astype(np.float32)
