"""ONNX Runtime forms: exported once per fingerprint and reused by later sessions, checked
against eager torch before use (float32 within 1e-4; int8 only within max_accuracy_loss),
rebuilt when corrupt, and a clear fallback to torch when export or check fails."""

import shutil

import numpy as np
import pytest
import torch

from workbench.models import builtin, runtimes
from workbench.models.loading import from_path
from workbench.models.onnx_store import ExportStore
from workbench.models.train_digits import WEIGHTS as DIGITS


@pytest.fixture(scope="module")
def texts(data_session):
    return data_session.sql("SELECT DISTINCT body FROM pydoc ORDER BY body").arrow().column(0).to_pylist()


@pytest.fixture(scope="session")
def minilm():
    return from_path("m128", builtin.minilm_path(), {"task": "embed", "max_length": 128})


@pytest.fixture(scope="module")
def exported(minilm, texts, tmp_path_factory):
    """minilm exported once for the module (float32), into a store of its own."""
    root = tmp_path_factory.mktemp("exports")
    store = ExportStore(root)
    form, report = runtimes.Forms().get(minilm, "float32", lambda n: texts[::7][: min(n, 32)], exports=store)
    return root, store, form, report


def test_minilm_is_exported_once_and_matches_eager_torch(exported, minilm, texts):
    root, store, form, report = exported
    assert form is not None and report.ok and store.exports == 1, report.reason
    assert report.metric == "max abs error" and report.error <= runtimes.FLOAT32_TOLERANCE
    held_out = texts[3::200]  # not the checked sample
    got = np.stack(form.predict(held_out).to_numpy(zero_copy_only=False))
    want = minilm.raw(held_out).numpy()
    assert np.abs(got - want).max() <= 1e-4


def test_a_second_session_reuses_the_export(exported, minilm, texts):
    root = exported[0]
    store = ExportStore(root)  # a new process finds the same files
    form, report = runtimes.Forms().get(minilm, "float32", lambda n: texts[1::9][: min(n, 16)], exports=store)
    assert form is not None and report.ok
    assert store.exports == 0 and store.rebuilt == []


@pytest.fixture(scope="module")
def tiny_text(minilm):
    """A small BERT (random weights, minilm's tokenizer): int8 export and check in seconds."""
    from transformers import BertConfig, BertModel

    from workbench.models.text import TextEmbedder

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(minilm.tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=160,
    )
    return TextEmbedder(BertModel(config).eval(), minilm.tokenizer, max_length=128)


def test_int8_only_within_the_allowed_loss(tiny_text, texts, tmp_path):
    store = ExportStore(tmp_path)
    sample = lambda n: texts[2::5][:n]  # noqa: E731
    form, report = runtimes.Forms().get(tiny_text, "int8", sample, tolerance=0.05, exports=store)
    assert form is not None and report.metric == "cosine loss", report.reason
    assert report.sample_rows == runtimes.INT8_SAMPLE_ROWS and 0 < report.error + report.margin <= 0.05
    strict = report.error / 2  # below the measured loss: refused, and EXPLAIN can say why
    refused, why = runtimes.Forms().get(tiny_text, "int8", sample, tolerance=strict, exports=store)
    assert refused is None and f"max_accuracy_loss {strict:g}" in why.reason
    assert store.exports == 2  # float32 once, int8 once: the second check reused both
    assert form.fingerprint() != tiny_text.fingerprint()  # int8 outputs never mix with float32 ones in the cache


@pytest.fixture
def digits_model():
    return from_path("digits", str(DIGITS), {})


def test_a_corrupt_export_is_detected_and_rebuilt(digits_model, tmp_path):
    x = np.random.default_rng(0).random((50, 64), dtype=np.float32) * 16
    store = ExportStore(tmp_path)
    runtimes.Forms().get(digits_model, "float32", lambda n: x[:n], exports=store)
    graph = next(tmp_path.glob("*.onnx"))
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    later = ExportStore(tmp_path)
    form, report = runtimes.Forms().get(digits_model, "float32", lambda n: x[:n], exports=later)
    assert later.rebuilt == [graph.stem] and later.exports == 1
    assert form is not None and report.ok
    got, want = form.predict(x), digits_model.predict(x)
    assert got.field("label").to_pylist() == want.field("label").to_pylist()
    assert np.allclose(got.field("score").to_numpy(), want.field("score").to_numpy(), atol=1e-5)


def test_a_module_that_does_not_export_cleanly_is_not_used(tmp_path):
    class Branchy(torch.nn.Module):
        """Python control flow on the data: tracing keeps one branch only."""

        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x) if float(x.sum()) > 0 else -self.a(x)

    from workbench.models.tensor import TensorModel

    model = TensorModel(Branchy(), task="embed")
    x = np.ones((10, 4), dtype=np.float32)
    form, report = runtimes.Forms().get(model, "float32", lambda n: x[:n], exports=ExportStore(tmp_path))
    assert form is None and "export differs from torch" in report.reason


def test_the_engine_runs_a_forced_onnx_form_and_says_so(digits_session):
    s = digits_session
    query = "SELECT id, digits(pixels).label AS l FROM digits ORDER BY id"
    want = s.sql(query).pl()
    s.sql("ALTER MODEL digits SET runtime = 'onnx'")
    try:
        plan = s.explain(query)
        op = plan.to_dict()["operators"][0]
        assert op["runtime"] == "onnx" and "forced by the model's runtime option" in op["runtime_reason"]
        assert "runtime: onnx float32" in plan.text()
        result = s.sql(query)
        assert result.stats[0]["runtime"] == "onnx"
        assert result.pl().equals(want)
    finally:
        s.sql("ALTER MODEL digits SET runtime = 'auto'")


def test_a_failed_export_falls_back_to_torch_with_its_reason(session):
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x) if float(x.sum()) > 0 else -self.a(x)

    torch.manual_seed(0)
    session.register_model("branchy", Branchy(), task="embed", runtime="onnx")
    query = "SELECT branchy([1.0, 2.0, 3.0, i]::FLOAT[4]) AS v FROM range(20) t(i)"
    result = session.sql(query)
    assert result.stats[0]["runtime"] == "torch"
    assert "export differs from torch" in result.stats[0]["runtime_note"]
    text = session.explain(query).text()
    assert "onnx float32: float32 export differs from torch" in text and "runtime: torch float32" in text


def test_bad_runtime_option_is_a_clear_error(session):
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="runtime must be"):
        session.sql(f"CREATE MODEL bad FROM '{DIGITS}' WITH (runtime = 'tensorrt')")


def test_copying_the_store_elsewhere_keeps_exports_valid(exported, minilm, texts, tmp_path):
    """The manifest holds no absolute path: a copied cache directory is found whole."""
    shutil.copytree(exported[0], tmp_path / "copy")
    store = ExportStore(tmp_path / "copy")
    assert store.get(f"{minilm.fingerprint()}-float32", minilm.fingerprint()) is not None
