"""Run a user's torch module in eval mode without changing the user's object.

Queries get inference semantics (dropout off, batch norm on its running statistics) whatever
mode the notebook left the module in, and the module comes back as it was: a training loop
may go on after the query. Copying the module instead would double the memory of a big model
and hide later weight updates from the engine, so the flags are switched in place for the
length of each run.

Each submodule counts the runs inside it: its flag is saved when the first run enters and put
back when the last one leaves, so threads that run one module (or two models that share a
layer) at the same time never see it switch back to training under them.

>>> net = torch.nn.Dropout().train()
>>> with evaluating(net):
...     net.training
False
>>> net.training
True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

# id(submodule) -> [the submodule, its flag before the first run, runs inside it now]
_HELD: dict[int, list] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`module` in eval mode for the block; every submodule's own flag is restored after."""
    subs = list(module.modules())
    with _LOCK:
        for m in subs:
            held = _HELD.get(id(m))
            if held is None:
                _HELD[id(m)] = [m, m.training, 1]
            else:
                held[2] += 1
            m.training = False  # what Module.eval() sets, without running a user's train() override
    try:
        yield module
    finally:
        with _LOCK:
            for m in subs:
                held = _HELD[id(m)]
                held[2] -= 1
                if held[2] == 0:
                    del _HELD[id(m)]
                    m.training = held[1]
