"""CREATE MODEL FROM 'hf://org/name': downloads into the HF cache with progress, pins the
commit in the catalog, works offline from the cache, and fails with one clear line.

The hub is tests/hub_server.py on 127.0.0.1; nothing else is reached."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

import workbench
from tests.hub_server import HubServer
from workbench.errors import ModelLoadError
from workbench.models import hub
from workbench.models.builtin import minilm_path

REPO = "test-org/tiny-bert"
TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _tiny_bert(tmp_path_factory, seed: int, safetensors: bool = True) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp(f"tiny{seed}{safetensors}")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    model = BertModel(config)
    model.save_pretrained(d)
    files = {"config.json": (d / "config.json").read_bytes()}
    if safetensors:
        files["model.safetensors"] = (d / "model.safetensors").read_bytes()
    else:
        torch.save(model.state_dict(), d / "pytorch_model.bin")
        files["pytorch_model.bin"] = (d / "pytorch_model.bin").read_bytes()
    for name in TOKENIZER:
        path = minilm_path() + "/" + name
        try:
            files[name] = open(path, "rb").read()  # noqa: SIM115
        except FileNotFoundError:
            pass
    return files


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return {
        "v1": _tiny_bert(tmp_path_factory, 0),
        "v2": _tiny_bert(tmp_path_factory, 1),
        "pickle": _tiny_bert(tmp_path_factory, 2, safetensors=False),
    }


@pytest.fixture
def server(weights, monkeypatch, tmp_path):
    s = HubServer()
    extra = {"README.md": b"# tiny", "onnx/model.onnx": b"\0" * 64, "pytorch_model.bin": b"not loaded"}
    s.add(REPO, {**weights["v1"], **extra})
    s.add("test-org/pickled", weights["pickle"])
    s.add("test-org/gated", weights["v1"], gated=True)
    monkeypatch.setenv("HF_ENDPOINT", s.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    yield s
    s.stop()


def _embed(session, model: str) -> torch.Tensor:
    return torch.tensor(session.sql(f"SELECT {model}('hello hub') AS e").pl()["e"][0])


def _reference(directory: str) -> torch.Tensor:
    """The embedding transformers gives: mean of the token vectors, L2-normalised."""
    model = AutoModel.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    enc = tokenizer(["hello hub"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)[0]


def _source(session, name: str) -> str:
    rows = session.sql("SHOW MODELS").pl()
    return rows.filter(rows["name"] == name)["source"][0]


def test_download_with_progress_then_the_cache_without_network(session, server, capsys):
    events = []
    session.catalog.telemetry = session.telemetry  # (as the session wires it)
    session.telemetry.subscribe(events.append)
    session.sql(f"CREATE MODEL tiny FROM 'hf://{REPO}'")
    err = capsys.readouterr().err
    sha = server.repos[REPO].refs["main"]
    assert f"downloading {REPO}@{sha[:7]}: 0/6 files, 0.0/4.7 MB" in err
    assert f"downloaded {REPO}@{sha[:7]}: 6 files, 4.7 MB" in err
    done = [e.data for e in events if e.kind == "download" and e.data["finished"]]
    assert done and done[-1]["files_done"] == 6 and done[-1]["bytes_done"] == done[-1]["bytes_total"] > 4_000_000
    # only what a model needs: no README, no onnx/, no pickle beside the safetensors
    assert sorted(server.fetched()) == sorted(["config.json", "model.safetensors", *TOKENIZER])
    assert _source(session, "tiny") == f"hf://{REPO}@{sha}"
    describe = dict(session.sql("DESCRIBE MODEL tiny").pl().iter_rows())
    assert describe["source"] == f"hf://{REPO}@{sha}" and describe["output_type"] == "FLOAT[32]"

    snapshot = hub.cached_dir(f"hf://{REPO}@{sha}")
    assert snapshot is not None and str(snapshot).startswith(str(hub.cache_dir()))
    assert torch.allclose(_embed(session, "tiny"), _reference(str(snapshot)), atol=1e-4)

    seen = len(server.requests)  # a cached commit: not one request
    session.sql(f"CREATE MODEL pinned FROM 'hf://{REPO}' WITH (revision = '{sha}')")
    assert len(server.requests) == seen and _source(session, "pinned") == f"hf://{REPO}@{sha}"
    server.stop()  # a branch name while the hub is down: its cached commit, with a note
    session.sql(f"CREATE MODEL again FROM '{REPO}'")
    assert "using the cached" in capsys.readouterr().err
    assert _source(session, "again") == f"hf://{REPO}@{sha}"
    assert torch.allclose(_embed(session, "again"), _embed(session, "tiny"))


def test_a_reopened_database_loads_the_commit_it_was_made_with(server, weights, tmp_path):
    db = str(tmp_path / "x.db")
    with workbench.connect(db) as s:
        s.sql(f"CREATE MODEL tiny FROM 'hf://{REPO}'")
        before = _embed(s, "tiny")
        sha = _source(s, "tiny").rsplit("@", 1)[1]
    newer = server.add(REPO, weights["v2"])  # main moves on
    seen = len(server.requests)
    with workbench.connect(db) as s:
        assert _source(s, "tiny") == f"hf://{REPO}@{sha}"
        assert torch.equal(_embed(s, "tiny"), before)
        assert len(server.requests) == seen  # from the cache, no request
        s.sql(f"CREATE MODEL latest FROM 'hf://{REPO}@main'")
        assert _source(s, "latest") == f"hf://{REPO}@{newer}"
        assert not torch.allclose(_embed(s, "latest"), before, atol=1e-3)
    shutil.rmtree(hub.cache_dir())  # the cache lost it: the pinned commit downloads again
    with workbench.connect(db) as s:
        assert torch.equal(_embed(s, "tiny"), before)
    assert server.fetched().count("model.safetensors") == 3


def test_errors_are_one_clear_line(session, server, monkeypatch):
    def error(sql: str) -> str:
        with pytest.raises(ModelLoadError) as info:
            session.sql(sql)
        text = str(info.value)
        assert text.startswith("model 'm': ") and "\n" not in text and len(text) <= 300, text
        return text

    assert f"no model repo 'test-org/nope' on {server.url}" in error("CREATE MODEL m FROM 'hf://test-org/nope'")
    assert "no local path 'test-org/nope' and no model repo" in error("CREATE MODEL m FROM 'test-org/nope'")
    assert "has no revision 'v9'" in error(f"CREATE MODEL m FROM 'hf://{REPO}@v9'")
    assert "revision option" in error(f"CREATE MODEL m FROM 'hf://{REPO}@v1' WITH (revision = 'v2')")
    assert "allow_pickle = true" in error("CREATE MODEL m FROM 'hf://test-org/pickled'")
    assert "gated or private (HTTP 401)" in error("CREATE MODEL m FROM 'hf://test-org/gated'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE is set" in error(f"CREATE MODEL m FROM 'hf://{REPO}'")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    server.stop()
    text = error(f"CREATE MODEL m FROM 'hf://{REPO}'")
    assert "cannot reach the hub" in text and "not in the hub cache" in text
    assert "m" not in session.catalog.names


def test_pickle_weights_load_when_allowed(session, server):
    session.sql("CREATE MODEL p FROM 'hf://test-org/pickled' WITH (allow_pickle = true)")
    assert "pytorch_model.bin" in server.fetched()
    sha = server.repos["test-org/pickled"].refs["main"]
    snapshot = hub.cached_dir(f"hf://test-org/pickled@{sha}", allow_pickle=True)
    assert snapshot is not None
    assert torch.allclose(_embed(session, "p"), _reference(str(snapshot)), atol=1e-4)


def test_names_that_are_not_hub_models():
    assert hub.parse("m", "minilm") is None and hub.parse("m", "./dir/model") is None
    assert hub.parse("m", "dir/model.safetensors") is None  # a missing file, not a repo
    assert hub.parse("m", "hf://org/name@v1.0") == hub.HubRef("org/name", "v1.0")
    assert hub.parse("m", "org/name", "abc") == hub.HubRef("org/name", "abc", bare=True)
    with pytest.raises(ModelLoadError, match="not a hub model name"):
        hub.parse("m", "hf://datasets/org/name")
    with pytest.raises(ModelLoadError, match="applies to hub models"):
        hub.parse("m", "/no/such/dir", "main")
