"""A model's files read as entries: tensors' raw bytes from .safetensors, other files whole."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from workbench.errors import ModelLoadError
from workbench.models.builtin import minilm_path
from workbench.models.train_digits import WEIGHTS
from workbench.storage import source


def test_an_mlp_file_gives_its_tensors_bytes_and_metadata():
    src = source.read("d", str(WEIGHTS), is_mlp=True)
    try:
        assert src.layout == "mlp" and src.metadata[WEIGHTS.name]["arch"]
        from safetensors.torch import load_file

        ref = load_file(str(WEIGHTS))
        assert {e.tensor for e in src.entries} == set(ref)
        for e in src.entries:
            assert bytes(e.data) == ref[e.tensor].numpy().tobytes() and e.shape == tuple(ref[e.tensor].shape)
    finally:
        src.close()


def test_a_transformers_directory_gives_tensors_and_its_small_files():
    src = source.read("m", minilm_path(), is_mlp=False)
    try:
        files = {e.file for e in src.entries if e.dtype == source.FILE_DTYPE}
        assert {"config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json"} <= files
        tensors = [e for e in src.entries if e.dtype != source.FILE_DTYPE]
        assert tensors and all(e.file == "model.safetensors" for e in tensors)
    finally:
        src.close()


def test_a_directory_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="storage = 'database' takes"):
        source.read("x", str(tmp_path), is_mlp=False)


def test_bf16_and_odd_sized_tensors_are_read_raw(tmp_path):
    f = tmp_path / "t.safetensors"
    save_file({"a": torch.randn(3, 5).to(torch.bfloat16), "b": torch.arange(7, dtype=torch.int8)}, str(f))
    src = source.read("t", str(f), is_mlp=True)
    try:
        by = {e.tensor: e for e in src.entries}
        assert by["a"].dtype == "BF16" and len(by["a"].data) == 30 and by["b"].dtype == "I8"
    finally:
        src.close()
