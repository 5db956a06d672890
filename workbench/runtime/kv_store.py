"""A KV cache spilled to disk: each layer's keys and values live in a file between its forwards.

When the KV cache of a large batch does not fit the budget beside the weights in flight, the
FlexGen schedule keeps it out of memory: a decoder layer needs only its own keys and values,
and only while it computes. Each layer of `SpilledCache` reads its keys and values back with
positional reads when the layer runs, appends the step's new ones, writes them back and
drops them: one layer's cache is in memory at a time. The files are anonymous temporary
files (unlinked at creation), so nothing is left behind if the process dies; reads and writes
are plain `preadv`/`pwrite` (no mapping), so the page cache they fill never counts against
the process.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer


class SpilledLayer(DynamicLayer):
    """One decoder layer's keys and values, in a temporary file between forwards."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._file: Any = None
        self._shape: tuple[int, ...] | None = None  # (batch, heads, tokens, head_dim) of keys (values alike)
        self._dtype = torch.float32

    # -- the file --------------------------------------------------------------------------
    def _read(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self._shape is None or self._file is None:
            return None
        keys = torch.empty(self._shape, dtype=self._dtype)
        values = torch.empty(self._shape, dtype=self._dtype)
        fd, at = self._file.fileno(), 0
        for t in (keys, values):
            view = t.numpy().data.cast("B")
            done = 0
            while done < len(view):
                got = os.preadv(fd, [view[done:]], at + done)
                if got <= 0:
                    raise OSError("the spilled KV cache ends early")
                done += got
            at += len(view)
        return keys, values

    def _write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="workbench-kv-")
        fd, at = self._file.fileno(), 0
        for t in (keys, values):
            data = t.contiguous().numpy().data.cast("B")
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], at + done)
            at += len(data)
        self._shape, self._dtype = tuple(keys.shape), keys.dtype

    # -- the layer's API -------------------------------------------------------------------
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.keys = self.values = None
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old = self._read()
        if old is not None:
            key_states = torch.cat([old[0].to(key_states.device), key_states], dim=-2)
            value_states = torch.cat([old[1].to(value_states.device), value_states], dim=-2)
            del old
        self._write(key_states.cpu(), value_states.cpu())
        return key_states, value_states

    def get_seq_length(self) -> int:
        return 0 if self._shape is None else self._shape[-2]

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a spilled KV cache is not cropped")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("a spilled KV cache is not repeated")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Finished sequences leave the batch: their rows leave the file."""
        found = self._read()
        if found is not None:
            index = indices.cpu()
            self._write(found[0][index], found[1][index])

    def reset(self) -> None:
        self.close()
        self.is_initialized = False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._shape = None, None


class SpilledCache(DynamicCache):
    """A DynamicCache whose layers are `SpilledLayer`s."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=SpilledLayer)

    def close(self) -> None:
        for layer in self.layers:
            if isinstance(layer, SpilledLayer):
                layer.close()
