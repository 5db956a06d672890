"""CREATE MODEL FROM 'path': safetensors only by default, clear errors for everything else."""

import pickle
import shutil

import pytest
import torch

from workbench.errors import ModelLoadError
from workbench.models import mlp
from workbench.models.builtin import minilm_path


def test_mlp_safetensors_file(session, tmp_path):
    path = tmp_path / "tiny.safetensors"
    mlp.save(mlp.MLP([4, 8, 3]), path, labels=["a", "b", "c"])
    session.sql(f"CREATE MODEL tiny FROM '{path}'")
    out = session.sql("SELECT tiny([0.1, 0.2, 0.3, 0.4]::FLOAT[4]) AS r").pl()["r"][0]
    assert out["label"] in {"a", "b", "c"} and 0 < out["score"] <= 1


def test_transformers_directory_with_options(session, tmp_path):
    d = tmp_path / "minilm_copy"
    shutil.copytree(minilm_path(), d)
    session.sql(f"CREATE MODEL enc FROM '{d}' WITH (task = 'embed', max_length = 16, batch_size = 4)")
    r = session.sql("SELECT minilm('hello world') AS a, enc('hello world') AS b")
    a, b = r.pl().row(0)
    assert len(b) == 384 and abs(sum(x * y for x, y in zip(a, b)) - 1) < 1e-4
    many = session.sql("SELECT enc('text ' || i::VARCHAR) AS e FROM range(10) t(i)")
    assert many.stats[0]["batch_size"] == 4 and many.stats[0]["batches"] == 3


def test_pickle_files_are_refused_unless_opted_in(session, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelLoadError, match="pickle"):
        session.sql(f"CREATE MODEL evil FROM '{bad}'")
    assert not marker.exists()
    good = tmp_path / "ok.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), good)
    session.sql(f"CREATE MODEL ok FROM '{good}' WITH (allow_pickle = true, task = 'embed')")
    assert len(session.sql("SELECT ok([1.0, 2.0]) AS e").pl()["e"][0]) == 2


def test_bad_files_and_options(session, tmp_path):
    # remote code and pickle payloads: tests/reliability/test_untrusted.py
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="corrupt.safetensors"):
        session.sql(f"CREATE MODEL c FROM '{corrupt}'")
    with pytest.raises(ModelLoadError, match="unknown option"):
        session.sql(f"CREATE MODEL c FROM '{corrupt}' WITH (colour = 'red')")
