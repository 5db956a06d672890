"""Offloading on a GPU: pinned host ring, a separate copy stream, the same outputs as the model
held on the device. Skipped cleanly where CUDA is absent."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, BertConfig

from workbench.runtime import offload

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_offloaded_on_cuda_equals_the_model_held_on_the_device(tmp_path):
    config = BertConfig(
        vocab_size=1000, hidden_size=256, num_hidden_layers=8, num_attention_heads=4, intermediate_size=1024
    )
    offload.write_random_checkpoint(config, tmp_path)
    full = AutoModel.from_pretrained(tmp_path).eval().to("cuda")
    ids = torch.randint(0, 1000, (4, 32), device="cuda")
    with torch.inference_mode():
        expected = full(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    model = offload.build(tmp_path, budget=64 * 2**20, device="cuda")
    try:
        assert model.copies_on_own_stream and model.in_flight_limit == 2
        got = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        assert torch.equal(got, expected)
        assert model.last.bytes == offload.checkpoint_bytes(tmp_path)
        assert all(p.is_meta for p in model.model.parameters())
    finally:
        model.close()
