"""Torch's share of the cores while one model operator runs.

torch's thread count is process-wide, so it is set for the operator's duration and then
restored; the optimizer's choose_batch_threads rule decides the number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    if not n or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
