"""CREATE MODEL m FROM 'model.onnx': graphs exported from torch modules run with onnxruntime
and answer as the modules do, in every paradigm that can run them; bad graphs fail at CREATE
with one line, and the database stays usable."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import workbench
from workbench.errors import InputTypeError, ModelError, ModelLoadError, ParadigmUnavailable
from workbench.models.deferred import Deferred
from workbench.models.onnx_graph import OnnxModel, data_files, external_locations

DIGITS = "SELECT id, pixels, {call} AS o FROM digits ORDER BY id"
TOL = 1e-4


def export(module: torch.nn.Module, example: torch.Tensor, path, *, dynamic: bool = True) -> str:
    """`module` as an ONNX graph with input 'x' and output 'y' (a dynamic batch axis)."""
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module.eval(), (example,), str(path), input_names=["x"], output_names=["y"], dynamic_axes=axes, dynamo=False
        )
    return str(path)


def graph_file(path, inputs, outputs, nodes, initializers=()) -> str:
    """A hand-built graph (for input types torch does not export)."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


class Regressor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # shape [batch]


@pytest.fixture(scope="module")
def graphs(digits_session, tmp_path_factory):
    """Exported graphs (and the torch modules they come from), registered in the session."""
    s, d = digits_session, tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    mlp = copy.deepcopy(s.model("digits").module)  # (the built-in's own module stays as it is)
    regressor = Regressor()
    ids = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3))
    x = torch.zeros(2, 64)
    paths = {
        "digits": export(mlp, x, d / "digits.onnx"),
        "regress": export(regressor, x, d / "regress.onnx"),
        "ids": export(ids, torch.zeros(2, dtype=torch.long), d / "ids.onnx"),
        "one_row": export(mlp, torch.zeros(1, 64), d / "one_row.onnx", dynamic=False),
        "double": export(copy.deepcopy(mlp).double(), x.double(), d / "double.onnx"),
    }
    labels = ",".join(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    s.sql(f"CREATE MODEL d_vec FROM '{paths['digits']}'")  # [batch, 10]: an embedding by default
    s.sql(f"CREATE MODEL d_cls FROM '{paths['digits']}' WITH (task = 'classify')")
    s.sql(f"CREATE MODEL d_named FROM '{paths['digits']}' WITH (labels = '{labels}')")
    s.sql(f"CREATE MODEL reg FROM '{paths['regress']}'")
    s.sql(f"CREATE MODEL emb FROM '{paths['ids']}'")
    s.sql(f"CREATE MODEL d64 FROM '{paths['double']}'")
    s.sql(f"CREATE MODEL d_one FROM '{paths['one_row']}'")
    return {"dir": d, "paths": paths, "mlp": mlp, "regressor": regressor, "ids": ids, "labels": labels.split(",")}


def _matrix(column) -> np.ndarray:
    return np.asarray(column.to_pylist(), dtype=np.float32)


@pytest.mark.parametrize("paradigm", ["dl_centric", "udf_centric"])
def test_digits_graph_answers_as_onnxruntime_and_the_torch_module(digits_session, graphs, paradigm):
    t = digits_session.sql(DIGITS.format(call="d_vec(pixels)"), paradigm=paradigm).arrow()
    assert t.num_rows == 1797 and t.schema.field("o").type.list_size == 10
    pixels, got = _matrix(t.column("pixels")), _matrix(t.column("o"))
    direct = ort.InferenceSession(graphs["paths"]["digits"], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, direct.run(None, {"x": pixels})[0], atol=TOL, rtol=0)
    with torch.inference_mode():
        np.testing.assert_allclose(got, graphs["mlp"](torch.from_numpy(pixels)).numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("paradigm", ["dl_centric", "udf_centric"])
def test_classify_matches_the_torch_classifier(digits_session, graphs, paradigm):
    """Same labels and softmax scores as the built-in `digits` (the same weights in torch)."""
    q = "SELECT d_cls(pixels) AS a, d_named(pixels) AS n, digits(pixels) AS t FROM digits ORDER BY id"
    r = digits_session.sql(q, paradigm=paradigm)
    a, n, t = (r.arrow().column(c).to_pylist() for c in "ant")
    assert [x["label"] for x in a] == [x["label"] for x in t]
    assert [x["label"] for x in n] == [graphs["labels"][x["label"]] for x in t]
    np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in t], atol=TOL, rtol=0)
    assert digits_session.model("d_named").output_type == "STRUCT(label VARCHAR, score FLOAT)"


def test_regress_ids_float64_and_fixed_batch_graphs(digits_session, graphs):
    s = digits_session
    t = s.sql(
        "SELECT pixels, reg(pixels) AS r, d64(pixels) AS w, d_one(pixels) AS o FROM digits WHERE id < 300"
    ).arrow()
    pixels = torch.from_numpy(_matrix(t.column("pixels")))
    assert s.model("reg").output_type == "FLOAT" and s.model("d64").input_type == "FLOAT[64]"
    with torch.inference_mode():
        np.testing.assert_allclose(t.column("r").to_numpy(), graphs["regressor"](pixels).numpy(), atol=TOL, rtol=0)
        logits = graphs["mlp"](pixels).numpy()
    np.testing.assert_allclose(_matrix(t.column("w")), logits, atol=TOL, rtol=0)  # float64 graph: cast in, out
    np.testing.assert_allclose(_matrix(t.column("o")), logits, atol=TOL, rtol=0)  # batch-1 graph: row by row
    emb = s.model("emb")
    assert (emb.input_kind, emb.input_type, emb.output_type) == ("ids", "BIGINT", "FLOAT[3]")
    for paradigm in ("dl_centric", "udf_centric"):
        e = s.sql("SELECT i, emb(i) AS e FROM range(10) t(i) ORDER BY i", paradigm=paradigm).arrow()
        with torch.inference_mode():
            want = graphs["ids"](torch.arange(10)).numpy()
        np.testing.assert_allclose(_matrix(e.column("e")), want, atol=TOL, rtol=0)


def test_second_run_hits_the_cache_and_a_new_file_misses(digits_session, graphs, tmp_path):
    s, q = digits_session, "SELECT c(pixels) AS o FROM digits WHERE id < 200 ORDER BY id"
    path = tmp_path / "c.onnx"
    path.write_bytes(open(graphs["paths"]["digits"], "rb").read())
    s.sql(f"CREATE MODEL c FROM '{path}'")
    first = s.sql(q, paradigm="dl_centric")
    second = s.sql(q, paradigm="dl_centric")
    assert first.stats[0]["cache_misses"] == 200 and second.stats[0]["cache_hits"] == 200
    assert first.arrow().equals(second.arrow())
    torch.manual_seed(1)
    export(torch.nn.Linear(64, 10), torch.zeros(2, 64), path)  # other weights, same signature
    s.sql(f"CREATE OR REPLACE MODEL c FROM '{path}'")
    third = s.sql(q, paradigm="dl_centric")
    assert third.stats[0]["cache_hits"] == 0 and not third.arrow().equals(first.arrow())


def test_explain_shows_the_operator_and_no_relational_form(digits_session, graphs):
    plan = digits_session.explain("SELECT d_cls(pixels) FROM digits")
    text = str(plan)
    assert [(op.model, op.paradigm) for op in plan.operators] == [("d_cls", "dl_centric")]
    assert "ModelOperator" in text and "d_cls(pixels) -> STRUCT(label INTEGER, score FLOAT)" in text
    assert "not a torch layer chain" in text
    for paradigm in ("relation_centric", "hybrid"):
        with pytest.raises(ParadigmUnavailable, match="no relational form") as err:
            digits_session.sql("SELECT d_cls(pixels) FROM digits", paradigm=paradigm)
        assert "\n" not in str(err.value)


def test_a_fully_cached_query_plans_without_loading_the_graph(graphs, tmp_path):
    db, q = str(tmp_path / "d.db"), "SELECT m(pixels) AS o FROM digits WHERE id < 50 ORDER BY id"
    with workbench.connect(db) as s:
        s.sql(
            f"CALL load_dataset('digits'); CREATE MODEL m FROM '{graphs['paths']['digits']}' WITH (task = 'classify')"
        )
        want = s.sql(q, paradigm="dl_centric").arrow()
    with workbench.connect(db) as s:
        model = s.engine.models.base("m", s.config)
        assert isinstance(model, Deferred) and model.output_type == "STRUCT(label INTEGER, score FLOAT)"
        again = s.sql(q, paradigm="dl_centric")
        assert again.stats[0]["cache_hits"] == 50 and not model.loaded
        assert again.arrow().equals(want)


def _one_line_error(s, sql: str, error: type[Exception], match: str) -> str:
    with pytest.raises(error, match=match) as err:
        s.sql(sql)
    message = str(err.value)
    assert "\n" not in message and len(message) <= 300 and "Traceback" not in message
    return message


def test_unsupported_graphs_fail_at_create_with_one_line(digits_session, graphs):
    s, d = digits_session, graphs["dir"]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    strings = graph_file(
        d / "strings.onnx",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, ["batch"])],
        [helper.make_node("Identity", ["text"], ["y"])],
    )
    rank3 = graph_file(
        d / "rank3.onnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 2])],
        [helper.make_node("Relu", ["x"], ["y"])],
    )
    two = graph_file(
        d / "two.onnx",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 2]) for n in ("a", "b")],
        [out],
        [helper.make_node("Add", ["a", "b"], ["y"])],
    )
    corrupt = d / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    msg = _one_line_error(s, f"CREATE MODEL bad FROM '{strings}'", ModelLoadError, r"type tensor\(string\)")
    assert (
        msg.startswith("model 'bad': strings.onnx has an input 'text' of type tensor(string)") and "supported:" in msg
    )
    _one_line_error(
        s, f"CREATE MODEL bad FROM '{rank3}'", ModelLoadError, r"tensor\(float\) \[batch, 4, 2\]; supported"
    )
    _one_line_error(s, f"CREATE MODEL bad FROM '{two}'", ModelLoadError, r"has 2 inputs \('a', 'b'\)")
    _one_line_error(s, f"CREATE MODEL bad FROM '{corrupt}'", ModelLoadError, "corrupt.onnx is not an ONNX model")
    _one_line_error(s, "SELECT d_cls([1, 2, 3]::FLOAT[3])", InputTypeError, r"expects FLOAT\[64\] input")
    _one_line_error(s, "SELECT emb(10)", ModelError, r"model 'emb' failed on batch 1: Gather node .*idx=10")
    _one_line_error(s, "SELECT emb(-1)", ModelError, "an input id is negative")
    _one_line_error(
        s,
        f"CREATE MODEL bad FROM '{graphs['paths']['digits']}' WITH (task = 'regress')",
        ModelLoadError,
        "needs 1 output",
    )
    _one_line_error(
        s, f"CREATE MODEL bad FROM '{graphs['paths']['digits']}' WITH (labels = 'a,b')", ModelLoadError, "2 labels"
    )
    _one_line_error(
        s, f"CREATE MODEL bad FROM '{graphs['paths']['digits']}' WITH (precision = 'int8')", ModelLoadError, "as it is"
    )
    assert "bad" not in s.sql("SHOW MODELS").pl()["name"].to_list()
    assert s.sql("SELECT count(*) AS n, count(d_cls(pixels)) AS m FROM digits").pl().row(0) == (1797, 1797)


def test_external_data_stays_inside_the_model_directory(digits_session, tmp_path):
    """Tensor data in a file beside the graph loads (and is part of the fingerprint); a graph
    that names a file outside its directory is refused before anything reads it."""
    s = digits_session

    def matmul_graph(path, location: str) -> str:
        w = numpy_helper.from_array(np.zeros((4, 3), np.float32), "W")
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "48")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
        return graph_file(path, [x], [y], [helper.make_node("MatMul", ["x", "W"], ["y"])], [w])

    (tmp_path / "secret.bin").write_bytes(np.full(12, 7, np.float32).tobytes())
    inside = tmp_path / "model"
    inside.mkdir()
    (inside / "w.bin").write_bytes(np.full(12, 2, np.float32).tobytes())
    good = matmul_graph(inside / "good.onnx", "w.bin")
    assert external_locations(open(good, "rb").read()) == ["w.bin"]
    assert data_files(Path(good)) == [(inside / "w.bin").resolve()]
    before = OnnxModel(good).fingerprint()
    s.sql(f"CREATE MODEL ext FROM '{good}'")
    assert s.sql("SELECT ext([1, 1, 1, 1]::FLOAT[4]) AS e").pl()["e"][0].to_list() == [8.0, 8.0, 8.0]
    (inside / "w.bin").write_bytes(np.full(12, 3, np.float32).tobytes())
    assert OnnxModel(good).fingerprint() != before  # new external data: new cache entries
    for location in ("../secret.bin", str(tmp_path / "secret.bin")):
        bad = matmul_graph(inside / "bad.onnx", location)
        _one_line_error(s, f"CREATE OR REPLACE MODEL bad FROM '{bad}'", ModelLoadError, "outside the model's directory")
    (inside / "link.bin").symlink_to(tmp_path / "secret.bin")
    bad = matmul_graph(inside / "bad.onnx", "link.bin")
    _one_line_error(s, f"CREATE OR REPLACE MODEL bad FROM '{bad}'", ModelLoadError, "outside the model's directory")


def test_locations_are_read_as_onnx_reads_them(tmp_path):
    """The protobuf reader finds every external tensor onnx itself would load."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    torch.manual_seed(0)
    path = export(
        torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2)),
        torch.zeros(2, 64),
        tmp_path / "m.onnx",
    )
    model = onnx.load(path)
    onnx.save(
        model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0
    )
    stored = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    want = sorted(
        e.value
        for t in _get_all_tensors(stored)
        if uses_external_data(t)
        for e in t.external_data
        if e.key == "location"
    )
    assert len(want) == 4 and sorted(external_locations((tmp_path / "ext.onnx").read_bytes())) == want
    with pytest.raises(ValueError):
        external_locations(b"\xff" * 32)


@pytest.mark.parametrize("paradigm", ["dl_centric", "udf_centric"])
def test_telemetry_follows_the_graph_to_its_last_row(digits_session, graphs, paradigm):
    s, events = digits_session, []
    s.sql(f"CREATE OR REPLACE MODEL t FROM '{graphs['paths']['digits']}' WITH (cache = 'off')")
    unsubscribe = s.telemetry.subscribe(events.append)
    try:
        result = s.sql("SELECT t(pixels) AS o FROM digits WHERE id < 1500", paradigm=paradigm)
    finally:
        unsubscribe()
    kinds = [e.kind for e in events]
    done = [e.data["rows_done"] for e in events if e.kind == "progress"]
    assert kinds[0] == "query_start" and kinds[-1] == "query_end"
    assert done == sorted(done) and done[-1] == result.stats[0]["rows"] == 1500
    assert result.stats[0]["paradigm"] == paradigm and result.stats[0]["cache_hits"] == 0
