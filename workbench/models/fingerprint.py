"""Model fingerprints: a hash of everything that changes a model's outputs.

Weights (every tensor's bytes, dtype and shape), architecture (module structure and the
source of custom `forward` methods), transformers config, tokenizer, preprocessing options
(max_length, pooling, normalisation, task, labels) and the engine's output format version.
Changing any of them, even one weight by one ulp, gives another fingerprint, so an
inference cache keyed by it cannot return a stale answer.

Hashing ~90 MB of weights takes a fraction of a second, so the digest is remembered against
a cheap stamp (each tensor's storage address and in-place version counter): the bytes are
hashed again only when a tensor was replaced or modified.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Iterable
from typing import Any

import torch

#: bump when the meaning or layout of cached outputs changes
FORMAT = "workbench-outputs-1"


def tensors(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    items: dict[str, torch.Tensor] = dict(module.named_parameters())
    items.update(dict(module.named_buffers()))
    return sorted(items.items())


def stamp(named: Iterable[tuple[str, torch.Tensor]], extra: Any) -> tuple:
    # `_version`: torch's in-place modification counter (no public accessor)
    return (tuple((n, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for n, t in named), repr(extra))  # noqa: SLF001


def digest(named: Iterable[tuple[str, torch.Tensor]], facts: dict[str, Any]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(FORMAT.encode())
    h.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for name, t in named:
        t = t.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def module_source(module: torch.nn.Module) -> str:
    """The architecture as text: the module tree plus the code of user-defined forwards."""
    parts = [repr(module)]
    seen: set[type] = set()
    for sub in module.modules():
        cls: type = type(sub)
        if cls in seen or cls.__module__.startswith(("torch.", "transformers.")):
            continue
        seen.add(cls)
        parts.append(_class_source(cls))
    return "\n".join(parts)


@functools.lru_cache(maxsize=256)
def _class_source(cls: type) -> str:
    """A class's code (read once per class object: a class redefined in a notebook is a new
    object, so it is read again)."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


class Fingerprinter:
    """Remembers one model's digest while its stamp stays the same."""

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._digest = ""

    def __call__(self, named: list[tuple[str, torch.Tensor]], facts: dict[str, Any]) -> str:
        current = stamp(named, facts)
        if current != self._stamp:
            self._digest = digest(named, facts)
            self._stamp = current
        return self._digest
