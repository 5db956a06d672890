"""The split of a memory budget between weights in flight, activations and the KV cache.

An offloaded model reads all its weights once per forward, whatever the batch: the batch is
what amortises the reads. FlexGen's lesson is that the batch should be as large as memory
allows, and that the memory should be split for it: fewer weights in flight (big tensors
streamed in small pieces: `piece_limit`), prefill in chunks of tokens so that a long
prompt's activations do not dictate the batch, and the KV cache sized for the batch.

`choose` tries each split (piece limit, prefetch or not, prefill chunk, the KV cache in
memory or spilled to disk: runtime/kv_store.py), takes the largest
batch that fits the window beside it, estimates tokens/s with a roofline (each forward costs
the larger of reading the weights and computing, when the next unit is read while this one
computes; their sum otherwise) and keeps the best. An encoder is the same with one forward
per batch and no KV cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

#: bytes/s the cost model assumes for reading weights (page cache or NVMe) and float32
#: multiply-adds/s for compute on the CPU: the ratio is what matters, both are rough
READ_BYTES_S = 2e9
FLOPS = 2e10
MAX_BATCH = 256
CHUNKS = (None, 64, 32, 16, 8)  # prefill tokens per forward (None: the whole prompt at once)


@dataclass(frozen=True)
class Shape:
    """What the cost model needs of a model (from its config and checkpoint headers)."""

    weight_bytes: int
    params: int
    hidden: int
    inner: int
    heads: int
    vocab: int
    context: int  # tokens a sequence may hold
    kv_bytes_per_row: int  # a sequence's KV cache at the full context (0: an encoder)
    new_tokens: int = 0  # decoding steps per batch (0: an encoder)
    layers: int = 1


@dataclass(frozen=True)
class InFlight:
    """Weights in memory at once for a piece limit: `single` the largest unit plus a
    streamed block pair; `paired` with the next unit prefetched."""

    piece_limit: int
    single: int
    paired: int


@dataclass(frozen=True)
class Schedule:
    batch: int
    prefill_chunk: int | None
    piece_limit: int
    prefetch: bool
    weights_bytes: int  # weights in flight
    activation_bytes: int
    kv_bytes: int  # the KV cache of a full batch at the full context
    tokens_s: float  # the estimate it was chosen by
    kv_spilled: bool = False  # the KV cache on disk, one layer's in memory at a time (runtime/kv_store.py)

    @property
    def kv_in_memory(self) -> int:
        return kv_resident(self.kv_bytes, self.kv_spilled, self.layers)

    layers: int = 1

    def text(self) -> str:
        chunk = f", prefill in chunks of {self.prefill_chunk} tokens" if self.prefill_chunk else ""
        kv = f", KV cache {self.kv_bytes / 1e6:,.1f} MB" if self.kv_bytes else ""
        if self.kv_spilled:
            kv += " spilled to disk (one layer's in memory)"
        return (
            f"batch {self.batch}{kv}{chunk}, weights in flight {self.weights_bytes / 1e6:,.1f} MB "
            f"({'next unit prefetched' if self.prefetch else 'one unit at a time'}; tensors over "
            f"{self.piece_limit / 1e6:,.1f} MB streamed in pieces), activations {self.activation_bytes / 1e6:,.1f} MB"
        )


def activation_bytes(shape: Shape, batch: int, tokens: int, keys: int) -> int:
    """One layer's activations for `tokens` new tokens per row attending to `keys` positions
    (hidden states, q/k/v, attention output, feed-forward, scores and probabilities, with
    slack for temporaries), and the logits of one position per row."""
    per_token = 8 * shape.hidden + 2 * shape.inner + 2 * shape.heads * keys
    return 4 * batch * (tokens * per_token + shape.vocab)


def kv_resident(kv_bytes: int, spilled: bool, layers: int) -> int:
    """KV cache bytes in memory: all of it, or (spilled) a layer's read back, the step's
    concatenation and its copy on the way to the file."""
    return 3 * -(-kv_bytes // max(layers, 1)) if spilled else kv_bytes


def _fits(
    shape: Shape, batch: int, chunk: int | None, weights: int, window: int, spilled: bool = False
) -> tuple[bool, int]:
    if shape.new_tokens:  # prefill a chunk (or the whole prompt) against the full context
        tokens = chunk or shape.context
        acts = activation_bytes(shape, batch, tokens, shape.context)
    else:
        acts = activation_bytes(shape, batch, shape.context, shape.context)
    kv = kv_resident(batch * shape.kv_bytes_per_row, spilled, shape.layers)
    return weights + acts + kv <= window, acts


def _fits_batch(shape: Shape, chunk: int | None, weights: int, window: int, spilled: bool, batch: int) -> bool:
    return _fits(shape, batch, chunk, weights, window, spilled)[0]


def tokens_per_s(shape: Shape, batch: int, chunk: int | None, prefetch: bool, spilled: bool = False) -> float:
    """Rows (encoder) or new tokens (decoder) per second by the roofline (a spilled KV cache
    is read and written back at every forward: at half the context on average)."""
    kv_io = batch * shape.kv_bytes_per_row if spilled else 0

    def forward(tokens: int) -> float:
        io = (shape.weight_bytes + kv_io) / READ_BYTES_S
        compute = 2 * shape.params * batch * tokens / FLOPS
        return max(io, compute) if prefetch else io + compute

    if not shape.new_tokens:
        return batch / forward(shape.context)
    prompt = max(1, shape.context - shape.new_tokens) // 2  # a prompt of half the room, as a guess
    step = chunk or prompt
    passes = -(-prompt // step)
    seconds = passes * forward(min(step, prompt)) + shape.new_tokens * forward(1)
    return batch * shape.new_tokens / seconds


def choose(
    shape: Shape, window: int, in_flight: Callable[[int], InFlight], *, batch_cap: int | None = None
) -> Schedule | None:
    """The best split of `window` bytes, or None when nothing fits (not even one row)."""
    cap = min(MAX_BATCH, batch_cap or MAX_BATCH)
    best: Schedule | None = None
    chunks = CHUNKS if shape.new_tokens else (None,)
    kv = (False, True) if shape.kv_bytes_per_row else (False,)
    for divisor in (4, 8, 16, 32):
        flight = in_flight(max(window // divisor, 1))
        options = [(p, w, c, k) for p, w in ((True, flight.paired), (False, flight.single)) for c in chunks for k in kv]
        for prefetch, weights, chunk, spilled in options:
            if chunk is not None and chunk >= shape.context:
                continue
            batch = _largest(partial(_fits_batch, shape, chunk, weights, window, spilled), cap)
            if batch == 0:
                continue
            found = Schedule(
                batch=batch,
                prefill_chunk=chunk,
                piece_limit=flight.piece_limit,
                prefetch=prefetch,
                weights_bytes=weights,
                activation_bytes=_fits(shape, batch, chunk, weights, window, spilled)[1],
                kv_bytes=batch * shape.kv_bytes_per_row,
                tokens_s=tokens_per_s(shape, batch, chunk, prefetch, spilled),
                kv_spilled=spilled,
                layers=shape.layers,
            )
            # ties (a compute-bound batch) go to the larger piece limit and fewer chunks: fewer reads
            if best is None or found.tokens_s > best.tokens_s * 1.001:
                best = found
    return best


def _largest(fits: Callable[[int], bool], cap: int) -> int:
    """The largest batch in 1..cap that fits (memory grows with the batch), 0 if none."""
    if not fits(1):
        return 0
    lo, hi = 1, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
