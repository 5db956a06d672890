"""Text generation (WITH (task = 'generate')): the engine's batched decoding (left padding, a KV
cache, finished sequences leaving the batch) gives what transformers' own `generate` gives
for each prompt alone, on random-weight Llama- and GPT-2-shaped decoders built here; greedy
and seeded sampling are cached, unseeded sampling never is; options and errors are one line."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch
from transformers import BertTokenizerFast, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import workbench
from workbench.errors import ModelError, ModelLoadError

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ".",
    ",",
    *(string.ascii_lowercase + string.digits),
    *(f"##{c}" for c in string.ascii_lowercase + string.digits),
]
PROMPTS = ["a cat", "the dog sat on the mat", "good", "x1 y2 z3 x1 y2", "bad movie, really bad"]
NEW = 10


def llama_config(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int) -> LlamaConfig:
    """A Llama-shaped decoder over VOCAB, context 64 (one place for the shapes tests and benches use)."""
    return LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )


def decoder(directory: Path, shape: str = "llama", seed: int = 0, chat: bool = False) -> tuple[torch.nn.Module, object]:
    """A 2-layer causal LM with random weights and a word-piece tokenizer of single characters."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    if chat:
        tok.chat_template = "{% for m in messages %}[CLS] {{ m['content'] }} [SEP]{% endfor %}"
    ids = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    if shape == "llama":
        model = LlamaForCausalLM(llama_config(64, 128, 2, 4, 2))
    else:
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(VOCAB), n_embd=64, n_layer=2, n_head=4, n_positions=64, initializer_range=0.3, **ids
            )
        )
    model.eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    return model, tok


def reference(model, tok, prompt: str, **sampling) -> str:
    """transformers' generate on the prompt alone (no padding)."""
    enc = tok(prompt, return_tensors="pt")
    enc.pop("token_type_ids", None)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=NEW, pad_token_id=0, do_sample=False, **sampling)
    return tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def rows(result) -> list[tuple]:
    table = result.arrow()
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns))))


@pytest.fixture(scope="module")
def session():
    s = workbench.connect()
    s.sql("CREATE TABLE p AS SELECT unnest(:prompts::VARCHAR[]) AS prompt", {"prompts": PROMPTS})
    yield s
    s.close()


@pytest.mark.parametrize("shape", ["llama", "gpt2"])
def test_greedy_generation_equals_transformers_for_each_prompt(session, tmp_path, shape):
    model, tok = decoder(tmp_path / shape, shape)
    session.sql(f"CREATE MODEL gen_{shape} FROM '{tmp_path / shape}' WITH (max_new_tokens = {NEW}, batch_size = 2)")
    got = dict(rows(session.sql(f"SELECT prompt, gen_{shape}(prompt) AS out FROM p")))
    expected = {p: reference(model, tok, p) for p in PROMPTS}
    assert got == expected
    assert any(len(v) > 0 for v in got.values())  # not trivially empty
    udf = dict(
        rows(session.sql(f"SELECT /*+ paradigm(gen_{shape}, udf_centric) */ prompt, gen_{shape}(prompt) FROM p"))
    )
    assert udf == expected


def test_greedy_is_cached_and_options_change_the_fingerprint(session, tmp_path):
    decoder(tmp_path / "g")
    session.sql(f"CREATE MODEL cached_gen FROM '{tmp_path / 'g'}' WITH (task = 'generate', max_new_tokens = 4)")
    first = session.sql("SELECT prompt, cached_gen(prompt) FROM p")
    second = session.sql("SELECT prompt, cached_gen(prompt) FROM p")
    assert second.stats[0]["cache_hits"] == len(PROMPTS) and rows(second) == rows(first)
    session.sql("ALTER MODEL cached_gen SET max_new_tokens = 6")
    third = session.sql("SELECT prompt, cached_gen(prompt) FROM p")
    assert third.stats[0]["cache_hits"] == 0
    longer = dict(rows(third))
    assert all(longer[p].startswith(v) or not v for p, v in dict(rows(first)).items())


def test_seeded_sampling_does_not_depend_on_the_batch_and_is_cached(session, tmp_path):
    decoder(tmp_path / "s")
    opts = f"temperature = 1.5, top_p = 0.9, seed = 7, max_new_tokens = {NEW}"
    session.sql(f"CREATE MODEL sampled FROM '{tmp_path / 's'}' WITH ({opts}, batch_size = 5)")
    together = dict(rows(session.sql("SELECT prompt, sampled(prompt) FROM p")))
    session.sql(f"CREATE MODEL sampled_alone FROM '{tmp_path / 's'}' WITH ({opts}, batch_size = 1)")
    alone = dict(rows(session.sql("SELECT prompt, sampled_alone(prompt) FROM p")))
    assert together == alone
    again = session.sql("SELECT prompt, sampled(prompt) FROM p")
    assert again.stats[0]["cache_hits"] == len(PROMPTS)


def test_sampling_without_a_seed_is_never_cached(session, tmp_path):
    decoder(tmp_path / "u")
    session.sql(f"CREATE MODEL unseeded FROM '{tmp_path / 'u'}' WITH (temperature = 1.0, max_new_tokens = 3)")
    for _ in range(2):
        r = session.sql("SELECT unseeded(prompt) FROM p")
        assert r.stats[0]["cache_policy"] == "off" and r.stats[0]["cache_hits"] == 0


def test_stop_strings_cut_the_text(session, tmp_path):
    model, tok = decoder(tmp_path / "stop")
    full = reference(model, tok, "the dog sat on the mat")
    assert len(full) > 3
    stop = full[2:4]
    session.sql(f"CREATE MODEL stopped FROM '{tmp_path / 'stop'}' WITH (max_new_tokens = {NEW}, stop = '{stop}')")
    (out,) = rows(session.sql("SELECT stopped('the dog sat on the mat')"))[0]
    assert out == full[: full.find(stop)]


def test_a_chat_template_wraps_the_prompt(session, tmp_path):
    model, tok = decoder(tmp_path / "chat", chat=True)
    session.sql(f"CREATE MODEL chat_gen FROM '{tmp_path / 'chat'}' WITH (chat = true, max_new_tokens = {NEW})")
    (out,) = rows(session.sql("SELECT chat_gen('good')"))[0]
    text = tok.apply_chat_template([{"role": "user", "content": "good"}], add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        expected = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, pad_token_id=0
        )
    assert out == tok.decode(expected[0, ids.shape[1] :], skip_special_tokens=True)


def test_long_prompts_are_an_error_or_cut_as_asked(session, tmp_path):
    decoder(tmp_path / "long")
    long = " ".join(["word"] * 40)  # ~160 word pieces, over the context of 64
    session.sql(f"CREATE MODEL short_ctx FROM '{tmp_path / 'long'}' WITH (max_new_tokens = 8)")
    with pytest.raises(ModelError, match=r"a prompt of \d+ tokens does not fit this model's context of 64") as err:
        session.sql("SELECT short_ctx(:long)", {"long": long})
    assert "\n" not in str(err.value)
    session.sql("ALTER MODEL short_ctx SET truncate = 'left'")
    (out,) = rows(session.sql("SELECT short_ctx(:long)", {"long": long}))[0]
    assert isinstance(out, str)
    assert rows(session.sql("SELECT 1"))[0] == (1,)  # the session goes on


@pytest.mark.parametrize(
    "options, message",
    [
        ("max_new_tokens = 0", "max_new_tokens must be a positive integer"),
        ("temperature = -1", "temperature must be at least 0"),
        ("top_p = 2", "top_p must be between 0 and 1"),
        ("seed = 'x'", "seed must be an integer"),
        ("truncate = 'right'", "truncate must be one of error, left"),
        ("chat = true", "chat = true needs a tokenizer with a chat template"),
    ],
)
def test_bad_options_are_one_line(session, tmp_path, options, message):
    decoder(tmp_path / "bad")
    with pytest.raises(ModelLoadError, match=message) as err:
        session.sql(f"CREATE MODEL bad_gen FROM '{tmp_path / 'bad'}' WITH ({options})")
    assert "\n" not in str(err.value)


def test_an_encoder_cannot_generate(session, tmp_path):
    from transformers import BertConfig, BertModel

    d = tmp_path / "enc"
    BertModel(
        BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(d)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(d)
    with pytest.raises(ModelLoadError, match=r"task='generate' needs a decoder language model \(a \*ForCausalLM\)"):
        session.sql(f"CREATE MODEL enc_gen FROM '{d}' WITH (task = 'generate')")


@pytest.mark.parametrize("shape", ["llama", "gpt2"])
def test_offloaded_generation_equals_in_memory_token_for_token(tmp_path, shape):
    """Under a budget smaller than the weights the decoder streams layer by layer (GPT-2's LM
    head shares the input embeddings' tensor, stored once) and gives the same text."""
    from workbench.runtime import offload

    ids = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    if shape == "llama":
        config = llama_config(256, 688, 8, 8, 4)
    else:
        config = GPT2Config(vocab_size=len(VOCAB), n_embd=256, n_layer=8, n_head=8, n_positions=64, **ids)
    d = tmp_path / shape
    size = offload.write_random_checkpoint(config, d, std=0.3, causal_lm=True)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(d)
    name = f"off_{shape}"
    # a session of its own: under a 20 MB budget DuckDB gets 9 MB, less than the other tests' tables hold
    session = workbench.connect()
    session.sql("CREATE TABLE p AS SELECT unnest(:prompts::VARCHAR[]) AS prompt", {"prompts": PROMPTS})
    session.sql(f"CREATE MODEL {name} FROM '{d}' WITH (max_new_tokens = {NEW}, cache = 'off', offload = 'auto')")
    in_memory = dict(rows(session.sql(f"SELECT prompt, {name}(prompt) FROM p")))
    session.sql("SET memory_budget_cpu = '20MB'")
    try:
        assert size > 20 * 10**6
        plan = session.explain(f"SELECT {name}(prompt) FROM p").to_dict()["root"]["children"][0]
        assert plan["memory"].startswith("offloaded:")
        offloaded = dict(rows(session.sql(f"SELECT prompt, {name}(prompt) FROM p")))
    finally:
        session.close()
    assert offloaded == in_memory
    assert any(len(v) > 2 for v in in_memory.values())


def test_named_options_set_one_call_and_key_its_cache(session, tmp_path):
    model, tok = decoder(tmp_path / "named")
    session.sql(f"CREATE MODEL named_gen FROM '{tmp_path / 'named'}' WITH (max_new_tokens = {NEW})")
    short = dict(rows(session.sql("SELECT prompt, named_gen(prompt, max_new_tokens := 3) FROM p")))
    full = dict(rows(session.sql("SELECT prompt, named_gen(prompt) FROM p")))
    assert full == {p: reference(model, tok, p) for p in PROMPTS}
    with torch.inference_mode():
        expected_short = {}
        for p in PROMPTS:
            enc = tok(p, return_tensors="pt")
            enc.pop("token_type_ids", None)
            out = model.generate(**enc, max_new_tokens=3, pad_token_id=0, do_sample=False)
            expected_short[p] = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert short == expected_short and short != full
    # each option set is its own cache entry: 3 tokens again hits, 4 tokens does not
    again = session.sql("SELECT named_gen(prompt, max_new_tokens := 3) FROM p")
    assert again.stats[0]["cache_hits"] == len(PROMPTS)
    other = session.sql("SELECT named_gen(prompt, max_new_tokens => 4) FROM p")
    assert other.stats[0]["cache_hits"] == 0
    # two calls with different options in one statement are two operators
    both = session.sql("SELECT named_gen(prompt, max_new_tokens := 3) AS a, named_gen(prompt) AS b FROM p")
    assert [tuple(r) for r in rows(both)] == [(short[p], full[p]) for p in PROMPTS]
    # seeded sampling per call is cached; unseeded is never
    seeded = session.sql("SELECT named_gen(prompt, temperature := 1.5, seed := 3) FROM p")
    assert seeded.stats[0]["cache_policy"] != "off"
    assert rows(session.sql("SELECT named_gen(prompt, temperature := 1.5, seed := 3) FROM p")) == rows(seeded)
    for _ in range(2):
        r = session.sql("SELECT named_gen(prompt, temperature := 1.5) FROM p")
        assert r.stats[0]["cache_policy"] == "off" and r.stats[0]["cache_hits"] == 0


@pytest.mark.parametrize(
    "call, message",
    [
        ("named_err(prompt, max_tokens := 3)", r"model 'named_err' has no option 'max_tokens' \(its options: "),
        ("named_err(prompt, max_new_tokens := 'x')", r"max_new_tokens must be a positive integer, not 'x'"),
        ("named_err(prompt, temperature := -1)", "temperature must be a number of at least 0"),
        ("named_err(prompt, seed := 1.5)", "seed must be an integer, not 1.5"),
        ("named_err(prompt, stop := [1, 2])", "stop must be a string or a list of strings"),
        ("named_err(prompt, seed := length(prompt))", "option 'seed' takes a constant"),
        ("named_err(prompt, seed := 1, seed := 2)", "option 'seed' is given twice"),
        ("minilm(prompt, seed := 1)", "model 'minilm' .task 'embed'. takes no named options"),
    ],
)
def test_bad_named_options_are_one_line(session, tmp_path, call, message):
    from workbench.errors import InputTypeError

    if "named_err" not in session.sql("SHOW MODELS").arrow().column(0).to_pylist():
        decoder(tmp_path / "named_err")
        session.sql(f"CREATE MODEL named_err FROM '{tmp_path / 'named_err'}' WITH (max_new_tokens = 3)")
    with pytest.raises(InputTypeError, match=message) as err:
        session.sql(f"SELECT {call} FROM p")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("shape", ["llama", "gpt2"])
def test_continuous_batching_equals_one_prompt_at_a_time(tmp_path, shape):
    """Sequences end at different steps (an end token their greedy text reaches at different
    points); a waiting prompt takes each freed slot, its KV cache rows joining the running
    batch, and every text equals the prompt decoded alone, token for token."""
    from workbench.models import generate

    model, tok = decoder(tmp_path / "cb", shape)
    prompts = [*PROMPTS, "x", "the the the", "42 is the answer to it", "dog", "on"]
    alone = {}
    with torch.inference_mode():
        for p in prompts:
            enc = tok(p, return_tensors="pt")
            enc.pop("token_type_ids", None)
            out = model.generate(**enc, max_new_tokens=NEW, pad_token_id=0, do_sample=False)
            alone[p] = out[0, enc["input_ids"].shape[1] :].tolist()
    gen = generate.adapter("cb", model, tok, {"max_new_tokens": NEW})

    def ended(ids: list[int], ends: set[int]) -> int:
        return next((i for i, t in enumerate(ids) if t in ends), len(ids))

    # one more end token: the one whose first appearance is spread over the most different steps
    seen = sorted({t for ids in alone.values() for t in ids} - set(gen.end_ids))
    end = max(seen, key=lambda t: len({ended(ids, {*gen.end_ids, t}) for ids in alone.values()}))
    gen.end_ids = frozenset({*gen.end_ids, end})
    kept = [alone[p][: ended(alone[p], set(gen.end_ids))] for p in prompts]
    assert len({len(ids) for ids in kept}) >= 3  # sequences really end at different steps
    expected = [tok.decode(ids, skip_special_tokens=True) for ids in kept]
    got = gen.generate(prompts, slots=3)
    assert got == expected
    stats = gen.last_decode
    assert stats is not None and stats.joins >= 1 and stats.slots == 3
    assert stats.tokens == sum(len(ids) for ids in kept)
    assert stats.kv_bytes > 0
    # all at once (no slot limit) gives the same texts
    assert gen.generate(prompts) == expected


def test_stats_and_events_report_tokens_and_a_one_row_query_streams_its_text(session, tmp_path):
    from workbench.telemetry import Tracker
    from workbench.telemetry.summary import summary_text

    decoder(tmp_path / "seen")
    session.sql(f"CREATE MODEL seen_gen FROM '{tmp_path / 'seen'}' WITH (max_new_tokens = {NEW}, cache = 'off')")
    r = session.sql("SELECT seen_gen(prompt) FROM p")
    s = r.stats[0]
    texts = [v for (v,) in rows(r)]
    assert 0 < s["tokens"] <= NEW * len(PROMPTS) and s["tokens_per_s"] > 0 and s["kv_cache_bytes"] > 0
    events, tracker, summaries = [], Tracker(), []

    def listen(event):
        events.append(event)
        tracker(event)
        if event.kind == "generation":
            summaries.append(summary_text(tracker.copy()))

    unsubscribe = session.telemetry.subscribe(listen)
    try:
        (out,) = rows(session.sql("SELECT seen_gen('the dog sat on the mat')"))[0]
    finally:
        unsubscribe()
    streamed = [e.data["text"] for e in events if e.kind == "generation" and e.data["text"] is not None]
    assert streamed and all(out.startswith(t) for t in streamed)  # the text as it grew
    last = [e for e in events if e.kind == "generation"][-1].data
    assert last["tokens"] > 0 and last["kv_bytes"] > 0 and last["text"] is None
    assert any("text so far: " + streamed[0] in t for t in summaries)
    final = summary_text(tracker.copy())
    assert "generated: " in final and "tokens (" in final and "text so far" not in final
    again = session.sql("SELECT seen_gen(prompt) FROM p")
    assert [v for (v,) in rows(again)] == texts


@pytest.mark.parametrize("paradigm", ["dl_centric", "udf_centric"])
def test_an_interrupt_stops_generation_mid_decode_and_keeps_nothing(tmp_path, paradigm):
    """Ctrl-C (a KeyboardInterrupt in the main thread) after the first tokens: the query stops
    mid-decode with QueryInterrupted, no unfinished text reaches the cache, the session goes on."""
    import _thread
    import threading
    import time

    from workbench.errors import QueryInterrupted

    decoder(tmp_path / "long")
    s = workbench.connect()
    s.sql("CREATE TABLE w AS SELECT 'w' || i::VARCHAR AS prompt FROM range(512) t(i)")
    s.sql(f"CREATE MODEL long_gen FROM '{tmp_path / 'long'}' WITH (max_new_tokens = 48, batch_size = 4)")
    query = f"SELECT /*+ paradigm(long_gen, {paradigm}) */ long_gen(prompt) FROM w"
    s.sql("ALTER MODEL long_gen SET cache = 'off'")
    whole = s.sql(query).stats[0]["tokens"]  # what the query generates when nobody stops it
    s.sql("ALTER MODEL long_gen SET cache = 'exact'")
    asked: list[float] = []
    seen = [0]

    def listen(event):
        if event.kind == "generation":
            seen[0] = max(seen[0], event.data["tokens"])
            if event.data["tokens"] > 0 and not asked:
                asked.append(time.perf_counter())
                threading.Thread(target=_thread.interrupt_main).start()

    unsubscribe = s.telemetry.subscribe(listen)
    try:
        with pytest.raises(QueryInterrupted):
            s.sql(query)
        stopped = time.perf_counter()
    finally:
        unsubscribe()
    try:
        # It stopped mid-decode, long before the query's own end. (The issue asks for a stop
        # within 1 s, about 0.1 s on an idle machine: the time bound here is loose so that a
        # busy CI machine cannot fail it; the token count is what catches a late stop.)
        assert asked and stopped - asked[0] < 10.0
        assert seen[0] < whole / 2, f"{seen[0]} of {whole} tokens generated before the stop"
        op = s.explain(query).to_dict()["operators"][0]
        assert not op["expected_hit_ratio"]  # nothing of the interrupted run was cached
        (out,) = rows(s.sql("SELECT long_gen('w1', max_new_tokens := 2)"))[0]
        assert isinstance(out, str)
    finally:
        s.close()


def test_explain_shows_the_decoding_plan(session, tmp_path):
    decoder(tmp_path / "plan")
    session.sql(f"CREATE MODEL planned_gen FROM '{tmp_path / 'plan'}' WITH (max_new_tokens = 12, batch_size = 4)")
    text = str(session.explain("SELECT planned_gen(prompt, max_new_tokens := 20) FROM p"))
    line = next(x for x in text.splitlines() if "decoding:" in x)
    # Llama-shaped: 2 layers x 2 KV heads x 16 dims x (key, value) x 4 bytes = 512 B a token
    assert "4 sequences at once (continuous batching), up to 20 new tokens each, KV cache ~" in line
    assert "(512 B per token)" in line
    node = session.explain("SELECT planned_gen(prompt) FROM p").to_dict()["root"]["children"][0]
    assert "up to 12 new tokens each" in node["decoding"]
    assert "decoding" not in str(session.explain("SELECT minilm(prompt) FROM p"))
