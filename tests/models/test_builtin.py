"""Built-in models against independent computations."""

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from workbench.models.builtin import minilm_path


def test_minilm_matches_direct_transformers(data_session):
    rows = data_session.sql("SELECT body, minilm(body) AS e FROM pydoc WHERE id < 24 ORDER BY id").pl()
    path = minilm_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    # the directory's own limit (256), not the 128 tokens the engine once assumed
    max_seq = json.loads((Path(path) / "sentence_bert_config.json").read_text())["max_seq_length"]
    assert max_seq == 256 and data_session.catalog.get("minilm").max_length == max_seq
    assert data_session.catalog.info("minilm").options["max_length"] == max_seq
    texts = rows["body"].to_list()
    assert max(len(tok(t)["input_ids"]) for t in texts) > 128  # the comparison covers the limit
    with torch.inference_mode():
        for text, got in zip(texts, rows["e"].to_list()):  # one by one: no padding at all
            enc = tok([text], truncation=True, max_length=max_seq, return_tensors="pt")
            ref = torch.nn.functional.normalize(model(**enc).last_hidden_state.mean(1), dim=1)[0].numpy()
            got = np.asarray(got, dtype=np.float32)
            assert got.shape == (384,)
            cos = float(got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref)))
            assert cos > 0.9999


def test_digits_accuracy_on_held_out_split(data_session):
    acc = data_session.sql(
        "SELECT avg((digits(pixels).label = label)::DOUBLE) AS acc FROM digits WHERE id % 5 = 0"
    ).pl()["acc"][0]
    assert acc >= 0.95


def test_digits_training_is_reproducible(tmp_path):
    """Training twice on one machine gives the same weights bit for bit; on another CPU
    (AVX2 vs AVX-512 kernels sum in another order) 300 Adam steps drift apart in the weights
    but not in what the model says: the fresh model labels every digit as the shipped one."""
    from sklearn.datasets import load_digits

    from workbench.models import mlp, train_digits

    acc = train_digits.train(tmp_path / "d.safetensors", epochs=300)
    assert acc >= 0.95
    train_digits.train(tmp_path / "again.safetensors", epochs=300)
    fresh, _ = mlp.load(tmp_path / "d.safetensors")
    again, _ = mlp.load(tmp_path / "again.safetensors")
    for a, b in zip(fresh.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    shipped, _ = mlp.load(train_digits.WEIGHTS)
    x = torch.tensor(load_digits().data, dtype=torch.float32)
    with torch.no_grad():
        agree = (shipped(x).argmax(-1) == fresh(x).argmax(-1)).float().mean().item()
    assert agree >= 0.99
