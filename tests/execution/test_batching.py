"""Batched execution: order kept, batch size measured, faults named."""

import numpy as np
import pytest
import torch

from workbench.errors import ModelError
from workbench.execution import batching
from workbench.models.tensor import TensorModel


def make(task="embed"):
    torch.manual_seed(0)
    return TensorModel(torch.nn.Sequential(torch.nn.Linear(3, 2)), task=task)


def test_outputs_come_back_in_input_order_and_size_is_tuned():
    model = make()
    x = np.random.default_rng(0).random((40000, 3), dtype=np.float32)
    run = batching.run(model, "m", x)
    ref = model.module(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(np.stack(run.outputs.to_pylist()), ref, atol=1e-6)
    assert run.batch_size in model.batch_candidates and model.tuned_batch_size == run.batch_size


def test_text_inputs_are_grouped_by_length_and_restored():
    class Lengths(TensorModel):
        input_kind = "text"

        def sort_keys(self, inputs):
            return np.array([len(t) for t in inputs])

        def predict(self, batch):
            import pyarrow as pa

            return pa.array([float(len(t)) for t in batch], pa.float32())

    m = Lengths(torch.nn.Sequential(torch.nn.Linear(1, 1)), task="regress")
    texts = ["x" * n for n in np.random.default_rng(1).integers(1, 50, 300)]
    run = batching.run(m, "len", texts, batch_size=16)
    assert run.outputs.to_pylist() == [float(len(t)) for t in texts]


def test_wrong_shape_is_a_model_error():
    class Bad(torch.nn.Module):
        def forward(self, x):
            return x[:1]

    model = TensorModel(Bad(), task="embed", input_dim=3, output_dim=3)
    with pytest.raises(ModelError, match="shape"):
        batching.run(model, "bad", np.zeros((4, 3), np.float32))


def test_small_runs_do_not_fix_the_batch_size_for_later_runs():
    model = make()
    batching.run(model, "m", np.zeros((300, 3), np.float32))
    assert model.tuned_batch_size is None
