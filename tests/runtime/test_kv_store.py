"""The spilled KV cache: greedy decoding with each layer's keys and values on disk between
forwards gives the tokens of the in-memory cache, and finished sequences leave its files."""

from __future__ import annotations

import torch
from transformers import BertTokenizerFast, LlamaForCausalLM

from tests.models.test_generate import VOCAB, llama_config
from workbench.models import generate
from workbench.runtime.kv_store import SpilledCache, SpilledLayer


def test_greedy_tokens_with_a_spilled_cache_equal_the_in_memory_cache():
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(64, 128, 3, 4, 2)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    prompts = ["a cat sat on", "the dog", "x", "one two three four five"]
    options = {"max_new_tokens": 12, "batch_size": 4}
    in_memory = generate.adapter("g", model, tokenizer, options).generate(prompts)
    spilled = generate.adapter("g", model, tokenizer, options)
    spilled.cache_factory = SpilledCache
    spilled.prefill_chunk = 2  # and the prompt in chunks of two tokens
    assert spilled.generate(prompts) == in_memory
    assert any(t for t in in_memory)


def test_a_spilled_layer_keeps_only_the_selected_rows():
    layer = SpilledLayer()
    keys = torch.arange(3 * 2 * 4 * 5, dtype=torch.float32).reshape(3, 2, 4, 5)
    got_k, got_v = layer.update(keys, -keys)
    assert torch.equal(got_k, keys) and layer.keys is None, "nothing stays in memory between forwards"
    more_k, _ = layer.update(keys[:, :, :1], -keys[:, :, :1])
    assert more_k.shape == (3, 2, 5, 5) and layer.get_seq_length() == 5
    layer.batch_select_indices(torch.tensor([0, 2]))
    k, v = layer.update(keys[:2, :, :1], -keys[:2, :, :1])
    assert torch.equal(k[:, :, :4], keys[[0, 2]]) and torch.equal(v[:, :, :4], -keys[[0, 2]])
    layer.close()
