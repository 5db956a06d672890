"""Built-in models against independent computations."""

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from workbench.models.builtin import minilm_path


def test_minilm_matches_direct_transformers(data_session):
    rows = data_session.sql("SELECT body, minilm(body) AS e FROM pydoc WHERE id < 24 ORDER BY id").pl()
    path = minilm_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    texts = rows["body"].to_list()
    with torch.inference_mode():
        for text, got in zip(texts, rows["e"].to_list()):  # one by one: no padding at all
            enc = tok([text], truncation=True, max_length=128, return_tensors="pt")
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
    from workbench.models import mlp, train_digits

    acc = train_digits.train(tmp_path / "d.safetensors", epochs=300)
    assert acc >= 0.95
    shipped, _ = mlp.load(train_digits.WEIGHTS)
    fresh, _ = mlp.load(tmp_path / "d.safetensors")
    for a, b in zip(shipped.state_dict().values(), fresh.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)
