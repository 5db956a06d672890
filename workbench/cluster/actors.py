"""The actor that runs one model on a Ray node: it loads the model once and answers blocks
of inputs with Arrow outputs.

A model reaches an actor as a `Recipe`: a built-in model by name, a model of the catalog by
its file and options (loaded through the normal loaders, on the node), a model bigger than
the memory budget offloaded on each actor (streamed layer by layer from its safetensors within
the budget: workbench/models/offloaded.py), or a model registered from Python as the object
itself, shipped once through Ray's object store. Every block carries
its index, so the driver puts outputs back in key order whatever order blocks finish in.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from workbench.execution import batching, dl_centric
from workbench.models.base import Model


@dataclass(frozen=True)
class Recipe:
    """How an actor gets the model: by built-in name, by file and options, or shipped."""

    name: str
    key: str  # the pool's identity: same key, same model (warm actors are reused)
    builtin: bool = False
    path: str = ""
    options: str = "{}"  # JSON
    shipped: Any = None  # an object ref of the Model (a model registered from Python)
    offload_dir: str = ""  # stream the weights from this transformers directory ...
    budget: int | None = None  # ... within this many bytes (each actor holds its own window)

    def load(self) -> Model:
        if self.shipped is not None:
            import ray

            model: Model = ray.get(self.shipped)
            return model
        if self.offload_dir:
            from pathlib import Path

            from workbench.models import offloaded

            return offloaded.load(self.name, Path(self.offload_dir), json.loads(self.options), self.budget)
        if self.builtin:
            from workbench.models.builtin import BUILTINS

            return BUILTINS[self.name][1]()
        from workbench.models.loading import from_path

        return from_path(self.name, self.path, json.loads(self.options))


@dataclass(frozen=True)
class Block:
    """One block's outputs, where they ran, and the actor's model seconds."""

    index: int
    outputs: pa.Array
    seconds: float
    node_id: str
    address: str
    pid: int


class ModelWorker:
    """Body of the Ray actor (decorated by `actor_class`): one model, one torch thread."""

    def __init__(self, recipe: Recipe, call: str, threads: int = 1):
        import ray
        import torch

        torch.set_num_threads(threads)
        self.call = call
        self.name = recipe.name
        self.model = recipe.load()
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.address = ray.util.get_node_ip_address()
        self.pid = os.getpid()

    def where(self) -> tuple[str, str, int]:
        """(node id, node address, process id): known once the model is loaded."""
        return self.node_id, self.address, self.pid

    def infer(self, index: int, keys: pa.Array, batch_size: int | None) -> Block:
        start = time.perf_counter()
        inputs = dl_centric.to_model_inputs(self.call, self.name, self.model, keys)
        run = batching.run(self.model, self.name, inputs, batch_size=batch_size)
        return Block(index, run.outputs, time.perf_counter() - start, self.node_id, self.address, self.pid)


@functools.cache
def actor_class() -> Any:
    """`ModelWorker` as a Ray actor of one CPU. Ray restarts nothing itself: the driver
    re-sends a dead actor's blocks to the others (each block exactly once)."""
    import ray

    return ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(ModelWorker)
