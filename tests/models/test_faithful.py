"""Faithful models: the engine computes what the model itself computes, with its own labels,
pooling, normalisation and length limit, leaves the user's object as it was, and says
clearly (at CREATE, in one short line) when it cannot tell a model's shape.

Real torch modules and real transformers models with random weights from small configs,
saved to tmp directories; the engine is never mocked.
"""

from __future__ import annotations

import gc
import json
import string
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

import workbench
from workbench.errors import CatalogError, ModelError, ModelLoadError
from workbench.models import mlp
from workbench.models.modes import evaluating

nn = torch.nn
LETTERS = string.ascii_lowercase + string.digits
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *LETTERS, *(f"##{c}" for c in LETTERS)]
TEXTS = ["a cat", "the dog sat on the mat", "good", "bad movie, really bad", "x1 y2 z3 " * 4]
#: a paragraph of ~300 word pieces: far beyond every length limit used here
LONG = " ".join(f"word{i} stands here" for i in range(40))


def tiny_bert(directory: Path, cls: type = BertModel, seed: int = 0, **config: object) -> tuple[nn.Module, object]:
    """A 2-layer BERT with random weights and a character-level tokenizer, saved to `directory`."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # (transformers 5 reads the vocabulary from `vocab`: a `vocab_file` alone leaves only the special tokens)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    assert len(tok) == len(VOCAB)  # word pieces, not [UNK] for every word
    size = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
    # weights far from zero: texts get distinct vectors and labels (the default 0.02 gives one label to all)
    config = {"initializer_range": 0.5, **config}
    model = cls(BertConfig(vocab_size=len(VOCAB), max_position_embeddings=128, **size, **config)).eval()
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return model, tok


@pytest.fixture(scope="module")
def session():
    """One session for the module (each test uses model names of its own): the engine
    calibrates once, not once per test."""
    s = workbench.connect()
    yield s
    s.close()


def one_line_and_short(message: str) -> bool:
    return "\n" not in message and len(message) <= 300


def over(session, call: str, values: list, cast: str = "") -> list:
    """`call` (a model call on `x`) over `values`, in their order."""
    sql = f"SELECT i, {call} AS out FROM (SELECT unnest($v){cast} AS x, unnest(range(len($v))) AS i) ORDER BY i"
    return session.sql(sql, params={"v": values}).pl()["out"].to_list()


# -- 1. classifier labels ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf") / "sentiment"
    labels = {0: "bad", 1: "meh", 2: "good"}
    model, tok = tiny_bert(d, BertForSequenceClassification, seed=1, num_labels=3, id2label=labels)
    return d, model, tok


def direct_labels(model, tok, texts: list[str]) -> list[int]:
    with torch.inference_mode():
        return [int(model(**tok([t], return_tensors="pt")).logits.argmax(-1)) for t in texts]


def test_classifier_labels_from_option_and_from_the_checkpoint(session, classifier_dir):
    d, model, tok = classifier_dir
    session.sql("CREATE TABLE t AS SELECT unnest($texts) AS txt ORDER BY txt", params={"texts": TEXTS})
    session.sql(f"CREATE MODEL own FROM '{d}'")
    session.sql(f"CREATE MODEL mine FROM '{d}' WITH (task = 'classify', labels = 'neg,mid,pos')")
    rows = session.sql("SELECT txt, own(txt).label AS a, mine(txt).label AS b FROM t ORDER BY txt").pl()
    want = direct_labels(model, tok, rows["txt"].to_list())
    assert len(set(want)) > 1
    assert rows["a"].to_list() == [["bad", "meh", "good"][i] for i in want]  # config.id2label
    assert rows["b"].to_list() == [["neg", "mid", "pos"][i] for i in want]
    assert "labels" in session.sql("DESCRIBE MODEL mine").pl()["property"].to_list()


def test_classifier_labels_from_python_pair(session, classifier_dir):
    _, model, tok = classifier_dir
    session.register_model("pair", (model, tok), task="classify", labels="neg,mid,pos")
    session.sql("CREATE MODEL viasql FROM PYTHON p WITH (labels = 'x,y,z')", namespace={"p": (model, tok)})
    got = session.sql("SELECT pair($t).label AS a, viasql($t).label AS b", params={"t": TEXTS[1]}).pl().row(0)
    (i,) = direct_labels(model, tok, [TEXTS[1]])
    assert got == (["neg", "mid", "pos"][i], ["x", "y", "z"][i])


def test_wrong_number_of_labels_fails_at_create(session, classifier_dir):
    d, model, tok = classifier_dir
    with pytest.raises(ModelLoadError) as info:
        session.sql(f"CREATE MODEL two FROM '{d}' WITH (labels = 'neg,pos')")
    msg = str(info.value)
    assert "model 'two'" in msg and "2 labels" in msg and "3 outputs" in msg and one_line_and_short(msg)
    with pytest.raises(ModelLoadError, match=r"model 'p4': 4 labels .* 3 outputs"):
        session.register_model("p4", (model, tok), task="classify", labels="a,b,c,d")
    net = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ModelLoadError, match=r"model 'm2': 2 labels given \(a, b\) but the classifier has 3 outputs"):
        session.register_model("m2", net, labels=["a", "b"])
    path = d.parent / "m.safetensors"
    mlp.save(mlp.MLP([4, 5, 3]), path, labels=["a", "b", "c"])
    with pytest.raises(ModelLoadError, match=r"model 'f': 2 labels .* 3 outputs"):
        session.sql(f"CREATE MODEL f FROM '{path}' WITH (labels = 'x,y')")
    assert {"two", "p4", "m2", "f"}.isdisjoint(session.sql("SHOW MODELS").pl()["name"])
    with pytest.raises(ModelLoadError, match="labels must be distinct"):
        session.register_model("dup", net, labels="a,a,b")


def test_torch_classifier_labels(session):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 3))
    session.register_model("tri", net, labels="lo,mid,hi")
    x = torch.randn(6, 4)
    got = over(session, "tri(x).label", x.tolist(), "::FLOAT[4]")
    with torch.no_grad():
        assert got == [["lo", "mid", "hi"][i] for i in net(x).argmax(-1).tolist()]


def test_text_head_with_one_output_is_a_regressor(session, tmp_path):
    model, tok = tiny_bert(tmp_path / "score", BertForSequenceClassification, num_labels=1)
    session.sql(f"CREATE MODEL score FROM '{tmp_path / 'score'}'")
    got = session.sql("SELECT score('good') AS y").pl()["y"][0]
    with torch.inference_mode():
        want = float(model(**tok(["good"], return_tensors="pt")).logits[0, 0])
    assert session.catalog.info("score").task == "regress" and got == pytest.approx(want, abs=1e-5)


# -- 2. the user's object is never changed -----------------------------------------------------
def test_registering_and_querying_leave_the_training_mode_alone(session):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    net[1].running_mean.uniform_(-1, 1)  # batch norm in eval mode reads these; training mode would update them
    stats = net[1].running_mean.clone()
    reference = [m.training for m in net.modules()]
    session.register_model("live", net, task="embed", cache="off")
    assert [m.training for m in net.modules()] == reference
    x = torch.randn(5, 4)
    out = over(session, "live(x)", x.tolist(), "::FLOAT[4]")
    assert [m.training for m in net.modules()] == reference and torch.equal(net[1].running_mean, stats)
    net.eval()
    with torch.no_grad():  # what eval mode computes (dropout off, running statistics)
        assert np.allclose(np.array(out), net(x).numpy(), atol=1e-6)


def test_text_pair_keeps_its_mode(session, classifier_dir):
    _, model, tok = classifier_dir
    model.train()
    try:
        session.register_model("training", (model, tok), task="classify", cache="off")
        assert model.training and model.bert.encoder.training
        first = session.sql("SELECT training($t) AS r", params={"t": TEXTS[0]}).pl()["r"][0]
        again = session.sql("SELECT training($t) AS r", params={"t": TEXTS[0]}).pl()["r"][0]
        assert model.training and all(m.training for m in model.modules())
        assert first == again  # no dropout at inference
    finally:
        model.eval()


def test_eval_scope_is_restored_by_the_last_of_concurrent_runs():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    entered, release = threading.Barrier(2), threading.Event()

    def run() -> None:
        with evaluating(net):
            entered.wait()
            release.wait()

    other = threading.Thread(target=run)
    other.start()
    with evaluating(net):
        entered.wait()
        assert not net.training and not net[1].training
    assert not net[1].training, "the other run is still inside: the module stays in eval mode"
    release.set()
    other.join()
    assert net.training and net[1].training


# -- 3. output shape: declared, from the config, or one probe ----------------------------------
class Picky(nn.Module):
    """Refuses an all-zero row (as a model that normalises by the row's sum might)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x == 0).all(dim=1).any()):
            raise ValueError("an all-zero row has no direction")
        return self.lin(x / x.abs().sum(dim=1, keepdim=True))


def conv_net() -> nn.Module:
    # its first Linear takes 4*6*6 = 144 values, not the 64 pixels the model takes
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))


def test_a_probe_that_fails_says_which_options_to_declare(session):
    with pytest.raises(ModelLoadError) as info:
        session.register_model("conv", conv_net())
    msg = str(info.value)
    assert msg.startswith("model 'conv': could not find its output size by running it on a zero input of 144 values")
    assert "RuntimeError" in msg and "declare input_dim=... and output_dim=... in WITH (...)" in msg
    assert one_line_and_short(msg)
    with pytest.raises(ModelLoadError, match=r"model 'picky': .*ValueError: an all-zero row.*declare input_dim"):
        session.register_model("picky", Picky())
    with pytest.raises(ModelLoadError, match=r"model 'flat': cannot tell its input size.*declare input_dim"):
        session.register_model("flat", nn.Sequential(nn.Tanh()))
    with pytest.raises(ModelLoadError, match=r"model 'twin': returned a tuple"):

        class Pair(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = nn.Linear(4, 2)

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return self.lin(x), x

        session.register_model("twin", Pair())
    with pytest.raises(ModelLoadError, match=r"output_dim=5 was declared but it returns 3 values"):
        session.register_model("liar", nn.Sequential(nn.Linear(4, 3)), output_dim=5)


def test_declared_shapes_need_no_probe(session):
    torch.manual_seed(3)
    conv, picky = conv_net(), Picky()
    session.register_model("conv2", conv, input_dim=64, task="classify")  # the probe now finds 10 outputs
    session.register_model("picky2", picky, task="embed", input_dim=4, output_dim=3)  # never run on zeros
    assert session.model("conv2").output_dim == 10
    x = torch.rand(4, 64)
    got = over(session, "conv2(x).label", x.tolist(), "::FLOAT[64]")
    with torch.no_grad():
        assert got == conv(x).argmax(-1).tolist()
    y = session.sql("SELECT picky2([1.0, 2.0, 3.0, 4.0]) AS e").pl()["e"][0]
    with torch.no_grad():
        assert np.allclose(y, picky(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))[0].numpy(), atol=1e-6)


# -- 4. one output is a regressor --------------------------------------------------------------
def test_one_output_defaults_to_regress(session, tmp_path):
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    session.register_model("price", net)
    assert session.catalog.info("price").task == "regress"
    got = session.sql("SELECT price([1.0, -2.0, 0.5, 3.0]) AS y").pl()["y"][0]
    with torch.no_grad():
        assert got == pytest.approx(float(net(torch.tensor([[1.0, -2.0, 0.5, 3.0]]))[0, 0]), abs=1e-5)
    path = tmp_path / "reg.safetensors"
    mlp.save(mlp.MLP([4, 6, 1]), path)
    session.sql(f"CREATE MODEL filed FROM '{path}'")
    assert isinstance(session.sql("SELECT filed([1.0, 2.0, 3.0, 4.0]) AS y").pl()["y"][0], float)
    with pytest.raises(ModelLoadError, match=r"model 'one': task='classify' needs 2 or more outputs"):
        session.register_model("one", net, task="classify")
    with pytest.raises(ModelLoadError, match=r"model 'three': task='regress' needs 1 output and the module has 3"):
        session.register_model("three", nn.Sequential(nn.Linear(4, 3)), task="regress")


# -- 5. ±inf is refused like NaN unless allowed ------------------------------------------------
class Edge(nn.Module):
    """+inf when the first input is above 100, -inf below -100."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        big = torch.where(x[:, 0] > 100, torch.inf, torch.where(x[:, 0] < -100, -torch.inf, 0.0))
        return out + big.unsqueeze(-1)


def test_infinite_outputs_are_refused_unless_allowed(session):
    session.register_model("edge", Edge(), task="embed")
    with pytest.raises(ModelError) as info:
        session.sql("SELECT edge([1.0, 0.0]), edge([500.0, 0.0])")
    msg = str(info.value)
    assert msg.startswith("model 'edge' returned inf in batch 1 (rows ") and "allow_inf = true" in msg
    with pytest.raises(ModelError, match="returned -inf"):
        session.sql("SELECT edge([-500.0, 0.0])")
    session.sql("ALTER MODEL edge SET allow_inf = true")
    assert session.sql("SELECT edge([500.0, 0.0]) AS e").pl()["e"][0][0] == float("inf")
    session.sql("ALTER MODEL edge SET allow_inf = false")  # what was stored while allowed is no answer now
    with pytest.raises(ModelError, match="returned inf"):
        session.sql("SELECT edge([500.0, 0.0]) AS e")
    session.sql("CREATE MODEL edge2 FROM PYTHON e WITH (allow_inf = true, task = 'embed')", namespace={"e": Edge()})
    assert session.sql("SELECT edge2([-500.0, 0.0]) AS e").pl()["e"][0][1] == float("-inf")
    with pytest.raises(ModelLoadError, match="allow_inf must be true or false"):
        session.register_model("edge3", Edge(), allow_inf="sometimes")


def test_nan_is_refused_even_when_inf_is_allowed(session):
    class Nan(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * torch.where(x[:, :1] > 100, torch.nan, 1.0)

    session.register_model("nan", Nan(), task="embed", allow_inf=True)
    with pytest.raises(ModelError, match=r"model 'nan' returned NaN in batch 1"):
        session.sql("SELECT nan([500.0, 0.0])")


# -- 6. DROP MODEL drops its cache -------------------------------------------------------------
def test_drop_model_drops_its_cache_and_a_new_model_starts_empty(session):
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 3))
    session.sql("CREATE TABLE xs AS SELECT [i, i + 1, i + 2, i + 3]::FLOAT[4] AS x FROM range(10) t(i)")
    session.register_model("kept", net)
    session.sql("SELECT kept(x) FROM xs")
    assert "kept" in session.sql("CALL cache_stats()").pl()["model"].to_list()
    session.sql("DROP MODEL kept")
    assert "kept" not in session.sql("CALL cache_stats()").pl()["model"].to_list()
    tables = session.sql("SELECT table_name FROM duckdb_tables()").pl()["table_name"].to_list()
    assert "workbench_cache_kept" not in tables
    session.register_model("kept", net)  # the same weights: the old entries would have matched
    r = session.sql("SELECT kept(x) FROM xs")
    assert r.stats[0]["cache_hits"] == 0 and r.stats[0]["cache_misses"] == 10


@pytest.mark.parametrize("offload", ["off", "on"])
def test_drop_model_lets_its_weights_go(session, tmp_path, offload):
    """Nothing in the process keeps a dropped model's weights: not the catalog's loaded models,
    not the engine's offloaded or deferred forms (a notebook drops a big model to load the next)."""
    tiny_bert(tmp_path / "gone")
    session.sql(f"CREATE MODEL gone FROM '{tmp_path / 'gone'}' WITH (task = 'embed', offload = '{offload}')")
    session.sql("SET memory_budget_cpu = '64MB'")
    try:
        session.sql("SELECT gone('a cat') AS e")
        held = weakref.ref(session.engine.models.base("gone", session.config))
    finally:
        session.sql("SET memory_budget_cpu = 'none'")
    assert held() is not None
    session.sql("DROP MODEL gone")
    gc.collect()
    assert held() is None


def test_alter_cannot_reshape_a_python_model(session):
    session.register_model("frozen", nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(CatalogError, match=r"model 'frozen' was registered from a Python object: its labels"):
        session.sql("ALTER MODEL frozen SET labels = 'a,b,c'")


# -- 7. sentence-transformers directories follow their own recipe ------------------------------
def sentence_dir(
    directory: Path, pooling: dict, *, normalize: bool, dense: int = 0, max_seq: int | None = 40
) -> tuple[nn.Module, object, Path]:
    """A sentence-transformers layout around a tiny BERT: modules.json, 1_Pooling, optional
    2_Dense and 3_Normalize, and sentence_bert_config.json."""
    model, tok = tiny_bert(directory, seed=7)
    steps = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **pooling}))
    if dense:
        width = 32 * sum(bool(v) for k, v in pooling.items() if k.startswith("pooling_mode_")) or 32
        (directory / "2_Dense").mkdir()
        config = {"in_features": width, "out_features": dense, "bias": True}
        (directory / "2_Dense" / "config.json").write_text(
            json.dumps({**config, "activation_function": "torch.nn.modules.activation.Tanh"})
        )
        torch.manual_seed(8)
        weights = {"linear.weight": torch.randn(dense, width) / width**0.5, "linear.bias": torch.randn(dense)}
        save_file(weights, str(directory / "2_Dense" / "model.safetensors"))
        steps.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    if normalize:
        steps.append({"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"})
    (directory / "modules.json").write_text(json.dumps(steps))
    if max_seq is not None:
        (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq}))
    return model, tok, directory


def reference(model, tok, directory: Path, text: str, max_length: int) -> np.ndarray:
    """The recipe written out by hand, one text at a time (no padding)."""
    pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
    with torch.inference_mode():
        enc = tok([text], truncation=True, max_length=max_length, return_tensors="pt")
        tokens = model(**enc).last_hidden_state[0]  # (n, 32)
        n = tokens.shape[0]
        parts = {
            "cls": tokens[0],
            "max": tokens.max(0).values,
            "mean": tokens.sum(0) / n,
            "mean_sqrt_len_tokens": tokens.sum(0) / n**0.5,
        }
        if "pooling_mode" in pooling:
            modes = [pooling["pooling_mode"]]
        else:
            names = {"cls_token": "cls", "max_tokens": "max", "mean_tokens": "mean"}
            modes = [m for k, m in names.items() if pooling.get(f"pooling_mode_{k}")]
        v = torch.cat([parts[m] for m in modes])
        if (directory / "2_Dense").exists():
            from safetensors.torch import load_file

            w = load_file(str(directory / "2_Dense" / "model.safetensors"))
            v = torch.tanh(w["linear.weight"] @ v + w["linear.bias"])
        if "Normalize" in (directory / "modules.json").read_text():
            v = v / v.norm()
    return v.numpy()


RECIPES = {
    "cls": ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, False, 0),
    "max_normalized": ({"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}, True, 0),
    "cls_mean_dense": ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, True, 16),
    "sqrt_new_format": ({"pooling_mode": "mean_sqrt_len_tokens"}, False, 0),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_sentence_transformers_recipe_matches_a_hand_written_forward(session, tmp_path, recipe):
    pooling, normalize, dense = RECIPES[recipe]
    model, tok, d = sentence_dir(tmp_path / recipe, pooling, normalize=normalize, dense=dense)
    session.sql(f"CREATE MODEL st_{recipe} FROM '{d}'")
    texts = [LONG, *TEXTS]  # one batch: the short texts are padded to the long one's 40 tokens
    got = np.array(over(session, f"st_{recipe}(x)", texts))
    want = np.stack([reference(model, tok, d, t, 40) for t in texts])
    assert got.shape == want.shape == (len(texts), dense or 32 * (1 + (recipe == "cls_mean_dense")))
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 1 - 1e-5 and np.allclose(got, want, atol=1e-4)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5) == normalize
    if recipe == "cls":  # the 40 tokens of its sentence_bert_config, not 128
        assert session.model("st_cls").max_length == 40
        assert not np.allclose(got[0], reference(model, tok, d, LONG, 128), atol=1e-3)


def test_sentence_transformers_limits_and_refusals(session, tmp_path):
    # no sentence_bert_config.json: what the positions allow (128), as sentence-transformers does
    _, _, d = sentence_dir(tmp_path / "nolimit", {"pooling_mode_mean_tokens": True}, normalize=True, max_seq=None)
    session.sql(f"CREATE MODEL nolimit FROM '{d}'")
    assert session.model("nolimit").max_length == 128
    session.sql(f"CREATE MODEL short FROM '{d}' WITH (max_length = 12, normalize = false)")  # options win
    assert session.model("short").max_length == 12 and not session.model("short").normalize
    _, _, w = sentence_dir(tmp_path / "weighted", {"pooling_mode": "weightedmean"}, normalize=False)
    with pytest.raises(ModelLoadError, match=r"model 'w': .*pooling mode 'weightedmean' is not supported"):
        session.sql(f"CREATE MODEL w FROM '{w}'")
    steps = json.loads((d / "modules.json").read_text())
    steps.insert(2, {"idx": 2, "name": "2", "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (d / "modules.json").write_text(json.dumps(steps))
    with pytest.raises(ModelLoadError) as info:
        session.sql(f"CREATE MODEL layered FROM '{d}'")
    assert "LayerNorm" in str(info.value) and one_line_and_short(str(info.value))


def test_sentence_transformers_itself_agrees(session, tmp_path):
    """The same directories through sentence-transformers (installed with the packaged
    minilm), for the recipes it reads: the engine gives its vectors."""
    st = pytest.importorskip("sentence_transformers")
    for recipe in ("cls_mean_dense", "max_normalized"):
        pooling, normalize, dense = RECIPES[recipe]
        _, _, d = sentence_dir(tmp_path / recipe, pooling, normalize=normalize, dense=dense)
        session.sql(f"CREATE OR REPLACE MODEL st_real FROM '{d}'")
        texts = [LONG, *TEXTS]
        got = np.array(over(session, "st_real(x)", texts))
        want = st.SentenceTransformer(str(d), device="cpu").encode(texts, convert_to_numpy=True)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() > 1 - 1e-5, recipe
