"""Layer offloading: bit-exact against the in-memory model, peak memory within the budget for
a model many times bigger, and a clear error before loading when even one layer cannot fit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, BertConfig, GPT2Config

from workbench.errors import OutOfMemoryBudget
from workbench.runtime import offload

SMALL = {
    "bert": BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128
    ),
    "gpt2": GPT2Config(vocab_size=1000, n_embd=64, n_layer=4, n_head=4, bos_token_id=0, eos_token_id=0),
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_offloaded_outputs_equal_in_memory_outputs_bit_for_bit(tmp_path, kind):
    offload.write_random_checkpoint(SMALL[kind], tmp_path)
    full = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 1000, (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.inference_mode():
        expected = full(input_ids=ids, attention_mask=mask).last_hidden_state
    model = offload.build(tmp_path, budget=8 * 2**20)
    try:
        for _ in range(2):  # and again: units go back to meta and stream in again
            got = model(input_ids=ids, attention_mask=mask).last_hidden_state
            assert torch.equal(got, expected)
        assert model.last.bytes == offload.checkpoint_bytes(tmp_path)
        assert all(p.is_meta for p in model.model.parameters()), "nothing stays loaded after a forward"
    finally:
        model.close()


def test_a_model_that_cannot_fit_even_layer_by_layer_fails_before_loading(tmp_path):
    """Tensors are split down to single rows, so what cannot fit is the activations next to
    the smallest pieces: one line naming the largest unit and the runtime's reserve."""
    offload.write_random_checkpoint(SMALL["bert"], tmp_path)
    with pytest.raises(OutOfMemoryBudget, match=r"even one layer.*largest unit \(.*reserved for the runtime"):
        offload.build(tmp_path, budget=64 * 2**10, activation_bytes=60 * 2**10)


PROBE = textwrap.dedent("""
    import json, sys, psutil, torch
    from transformers import AutoConfig, AutoModel, BertModel  # the libraries, loaded before the model
    from workbench.runtime import offload
    torch.set_num_threads(2)
    directory, budget = sys.argv[1], int(sys.argv[2])
    before = psutil.Process().memory_info().rss
    model = offload.build(directory, budget=budget)
    ids = torch.randint(0, 1000, (2, 16))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    # VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's over exec)
    peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"before": before, "peak": peak, "bytes": model.last.bytes, "finite": bool(out.isfinite().all()),
                      "in_flight": model.in_flight_limit}))
""")


def test_peak_memory_stays_within_the_budget_for_a_model_8x_bigger(tmp_path):
    # BERT-like, ~2.1 GB of float32 weights, against a 256 MB budget
    config = BertConfig(
        vocab_size=1000,
        hidden_size=768,
        num_hidden_layers=76,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=64,
    )
    size = offload.write_random_checkpoint(config, tmp_path)
    budget = 256 * 2**20
    assert size >= 8 * budget
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), str(budget)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    grown = figures["peak"] - figures["before"]
    assert figures["finite"] and figures["bytes"] == size
    assert grown <= 1.10 * budget, f"peak RSS grew {grown / 2**20:.0f} MB for a {budget / 2**20:.0f} MB budget"


def _text_model_dir(path, layers=6):
    """A BERT-like embedder with random weights and minilm's tokenizer files."""
    import shutil
    from pathlib import Path

    from workbench.models.builtin import minilm_path

    config = BertConfig(
        vocab_size=30522,
        hidden_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=128,
    )
    offload.write_random_checkpoint(config, path)
    for f in Path(minilm_path()).iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(f, path / f.name)
    return path


def test_sql_runs_a_model_offloaded_under_the_budget_with_the_same_outputs(tmp_path):
    import gc

    import numpy as np

    import workbench

    d = _text_model_dir(tmp_path, layers=32)  # 41 MB of weights
    s = workbench.connect()
    try:
        s.sql("CALL load_dataset('pydoc')")
        s.sql(f"CREATE MODEL big FROM '{d}' WITH (task = 'embed', batch_size = 4, cache = 'off')")
        query = "SELECT id, big(body) AS e FROM pydoc WHERE id < 40 ORDER BY id"
        resident = np.array(s.sql(query).pl()["e"].to_list())
        # a model that may stream is registered without loading its weights
        s.sql(f"CREATE MODEL streamed FROM '{d}' WITH (task = 'embed', offload = 'on')")
        from workbench.models.catalog import _LOADED

        assert not [k for k in _LOADED if k[2] and '"offload": "on"' in k[2]]
        s.sql("ALTER MODEL big SET offload = 'auto'; SET memory_budget_cpu = '40MB'")
        op = s.explain(query).operators[0]
        assert op.memory.startswith("offloaded") and "memory" in s.explain(query).to_dict()["root"]["children"][0]
        events = []
        unsubscribe = s.telemetry.subscribe(events.append)
        # the budget bounds this query's growth of the process's resident memory: garbage the
        # suite's earlier tests left is collected first, so the query reuses its pages
        gc.collect()
        result = s.sql(query)
        unsubscribe()
        assert result.stats[0]["memory"].startswith("offloaded")
        assert np.array_equal(np.array(result.pl()["e"].to_list()), resident), "bit for bit"
        layers = [e.data for e in events if e.kind == "layer"]
        assert layers and all(x["bytes"] > 0 and x["compute_s"] >= 0 for x in layers)
        assert any(e.kind == "bytes" and e.data["source"] == "disk" for e in events)
        # (at 40 MB the window is under 4x the 16 MB embedding table: the table was read at
        # the batch's rows, with the same outputs)
    finally:
        s.close()
    # below what SQL accepts (16 MB): one input's activations do not fit next to the smallest pieces
    from workbench.models import offloaded

    with pytest.raises(OutOfMemoryBudget, match=r"even one layer.*largest piece \(.*MB is reserved for the runtime"):
        offloaded.load("big", d, {"task": "embed"}, 2**20)


DECODER_PROBE = textwrap.dedent("""
    import json, sys, psutil, torch
    # the libraries and the model's code, loaded before the model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BertTokenizerFast, LlamaForCausalLM
    from workbench.models import generate, offloaded
    torch.set_num_threads(2)
    directory, budget = sys.argv[1], int(sys.argv[2])
    before = psutil.Process().memory_info().rss
    from pathlib import Path
    model = offloaded.load("big", Path(directory), {"task": "generate", "max_new_tokens": 4}, budget)
    texts = model.generate(["a cat sat", "the dog"])
    peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"before": before, "peak": peak, "texts": texts, "bytes": model.offloaded.last.bytes}))
""")


def test_offloaded_generation_stays_within_a_budget_of_a_sixteenth_of_the_weights(tmp_path):
    """A Llama-shaped decoder of ~1 GB generates under a 64 MB budget: every decoding step
    streams each layer once for the whole batch, the KV cache and one layer in flight fit."""
    from transformers import BertTokenizerFast

    from tests.models.test_generate import VOCAB, llama_config

    config = llama_config(768, 2048, 40, 12, 4)
    size = offload.write_random_checkpoint(config, tmp_path, std=0.2, causal_lm=True)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(tmp_path)
    budget = 64 * 10**6
    assert size >= 15 * budget
    out = subprocess.run(
        [sys.executable, "-c", DECODER_PROBE, str(tmp_path), str(budget)], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    grown = figures["peak"] - figures["before"]
    assert len(figures["texts"]) == 2 and all(isinstance(t, str) for t in figures["texts"])
    assert figures["bytes"] == size  # the last step read every unit once
    assert grown <= 1.10 * budget, f"peak RSS grew {grown / 1e6:.0f} MB for a {budget / 1e6:.0f} MB budget"


SPLIT_PROBE = textwrap.dedent("""
    import json, sys, psutil, torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModel, BertModel  # the libraries, loaded before the model
    from workbench.runtime import offload
    torch.set_num_threads(2)
    directory, budget, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ids = torch.randint(0, 30522, (2, 16), generator=torch.Generator().manual_seed(3))
    model = offload.build(directory, budget=budget, activation_bytes=4 * 2**20)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak so far (imports, the build) is forgotten: VmHWM counts from here
    before = psutil.Process().memory_info().rss
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
    save_file({"out": out.contiguous()}, out_path)
    print(json.dumps({"before": before, "peak": peak, "pieces": [p.how for p in model.pieces]}))
""")


def test_a_bert_large_shaped_encoder_runs_at_an_eighth_and_a_sixteenth_of_its_weights(tmp_path):
    """Vocabulary 30,522 x 1,024 (a 125 MB embedding table, bigger than either window) and 24
    layers: the table is read at the batch's rows, and at 1/16 the feed-forward Linears (17 MB)
    stream in blocks of rows. Outputs within 1e-4 of the in-memory model's, peak RSS growth
    within the budget."""
    from safetensors.torch import load_file

    config = BertConfig(
        vocab_size=30522,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=512,
    )
    d = tmp_path / "bert-large"
    size = offload.write_random_checkpoint(config, d)
    assert size > 1.3e9
    ids = torch.randint(0, 30522, (2, 16), generator=torch.Generator().manual_seed(3))
    full = AutoModel.from_pretrained(d).eval()
    with torch.inference_mode():
        expected = full(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    del full
    for share in (8, 16):
        budget = size // share
        out_path = tmp_path / f"out{share}.safetensors"
        run = subprocess.run(
            [sys.executable, "-c", SPLIT_PROBE, str(d), str(budget), str(out_path)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        assert "rows" in figures["pieces"], "the embedding table is read at the batch's rows"
        if share == 16:
            assert "blocks" in figures["pieces"], "a Linear bigger than a quarter of the window streams in blocks"
        got = load_file(out_path)["out"]
        assert (got - expected).abs().max().item() <= 1e-4
        grown = figures["peak"] - figures["before"]
        assert grown <= 1.10 * budget, f"1/{share}: peak RSS grew {grown / 1e6:.0f} MB, budget {budget / 1e6:.0f} MB"


def test_split_pieces_give_the_in_memory_outputs(tmp_path):
    """An embedding table read by rows and every Linear streamed in blocks of rows (a tiny
    piece limit) compute the same values as the whole tensors."""
    config = BertConfig(
        vocab_size=5000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    offload.write_random_checkpoint(config, tmp_path)
    full = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 5000, (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.inference_mode():
        expected = full(input_ids=ids, attention_mask=mask).last_hidden_state
    model = offload.build(tmp_path, budget=8 * 2**20, piece_limit=5000)
    try:
        assert {p.how for p in model.pieces} == {"rows", "blocks"}
        got = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert (got - expected).abs().max().item() <= 1e-5
        read = {u.name: u.bytes for u in model.last.units}
        table = "embeddings.word_embeddings.weight"
        assert read[table] == len(set(ids.flatten().tolist())) * 64 * 4, "only the batch's rows are read"
    finally:
        model.close()


def test_a_model_over_the_budget_is_offloaded_without_asking(tmp_path):
    """offload = 'auto' is the default once a budget is set: a model created with no offload
    option streams when its weights exceed the budget, and is resident again without one."""
    import numpy as np

    import workbench

    d = _text_model_dir(tmp_path, layers=32)  # 41 MB of weights
    s = workbench.connect()
    try:
        s.sql("CALL load_dataset('pydoc')")
        s.sql(f"CREATE MODEL plain FROM '{d}' WITH (task = 'embed', batch_size = 4, cache = 'off')")
        query = "SELECT id, plain(body) AS e FROM pydoc WHERE id < 8 ORDER BY id"
        assert s.explain(query).operators[0].memory == "resident"
        resident = np.array(s.sql(query).pl()["e"].to_list())
        s.sql("SET memory_budget_cpu = '32MB'")
        memory = s.explain(query).operators[0].memory
        assert memory.startswith("offloaded") and "batch" in memory
        assert np.array_equal(np.array(s.sql(query).pl()["e"].to_list()), resident)
        s.sql("ALTER MODEL plain SET offload = 'off'")
        with pytest.raises(OutOfMemoryBudget):
            s.sql(query)
    finally:
        s.close()
