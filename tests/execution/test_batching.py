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


@pytest.fixture(scope="module")
def minilm():
    from workbench.models import builtin
    from workbench.models.loading import from_path

    return from_path("m64", builtin.minilm_path(), {"task": "embed", "max_length": 64})


def mixed_texts(n=120):
    rng = np.random.default_rng(3)
    words = "the engine sorts text by token length so no batch pads short inputs to a long one".split()
    return [" ".join(rng.choice(words, int(k))) for k in rng.integers(1, 90, n)]


def test_text_is_bucketed_by_token_length_and_outputs_stay_eager(minilm):
    texts = mixed_texts(48)
    texts[7] = texts[40]  # a repeat: each copy gets its own output, in place
    run = batching.run(minilm, "m64", texts)
    got = np.stack(run.outputs.to_numpy(zero_copy_only=False))
    want = np.concatenate([minilm.raw([t]).numpy() for t in texts])  # one at a time: no padding at all
    assert np.abs(got - want).max() < 1e-5
    lengths = minilm.token_lengths(texts)
    assert lengths.max() <= 64 and len(set(np.searchsorted(batching.BUCKET_BOUNDS, lengths))) >= 3


def test_each_length_bucket_tunes_its_own_batch_size(minilm):
    tuner = batching.Tuner()
    for size in minilm.batch_candidates:
        for _ in range(batching.TRIES):
            tuner.record(minilm, 0, size, tokens=1000.0, seconds=1.0 if size != 16 else 0.5)
            tuner.record(minilm, 3, size, tokens=1000.0, seconds=1.0 if size != 64 else 0.5)
    assert (tuner.best(minilm, 0), tuner.best(minilm, 3)) == (16, 64)
    assert tuner.choose(minilm, 3, remaining=500) == 64
    assert tuner.choose(minilm, 1, remaining=500) == minilm.batch_candidates[0]  # untried: explored first


def test_the_udf_path_batches_by_length_too(session):
    session.sql("CREATE MODEL m64 FROM 'minilm' WITH (max_length = 64, runtime = 'torch')")
    texts = mixed_texts(60)
    session.register("notes", __import__("pyarrow").table({"txt": texts}))
    result = session.sql("SELECT txt, m64(txt) AS v FROM notes", paradigm="udf_centric")
    assert result.stats[0]["paradigm"] == "udf_centric" and result.stats[0]["batches"] >= 1
    model = session.model("m64")
    got = dict(zip(result.arrow().column(0).to_pylist(), result.arrow().column(1).to_pylist()))
    want = model.raw(texts[:5]).numpy()
    for t, w in zip(texts[:5], want):
        assert np.abs(np.asarray(got[t]) - w).max() < 1e-5
