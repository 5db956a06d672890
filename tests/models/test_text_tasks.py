"""Text tasks beyond one text in, one value out: zero-shot classification (labels per call),
named entities (a list of spans per text) and cross-encoder reranking (a score per pair).

Each task computes what transformers computes for the same model: the zero-shot and
token-classification pipelines, and the cross-encoder run directly. The models are real
transformers models with random weights from small configs and minilm's tokenizer, saved to
a tmp directory; zero-shot from an embedder runs the packaged all-MiniLM-L6-v2 and must sort
plain sentences and pydoc paragraphs into the right topics.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    pipeline,
)

import workbench
from workbench.errors import InputTypeError, ModelLoadError, WorkbenchError
from workbench.models.builtin import minilm_path

PARADIGMS = ("dl_centric", "udf_centric")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
NLI_LABELS = {0: "contradiction", 1: "neutral", 2: "entailment"}
TAGS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}

SENTENCES = {
    "The team won the championship game last night.": "sports",
    "She scored two goals in the final match.": "sports",
    "The senate passed the new budget bill.": "politics",
    "The president met foreign leaders at the summit.": "politics",
    "Stir the soup and add a pinch of salt.": "cooking",
    "Bake the bread at 200 degrees for 30 minutes.": "cooking",
    "The new phone has a faster processor and a better camera.": "technology",
    "It rained all day and the wind was strong.": "weather",
}
TOPICS = ["sports", "politics", "cooking", "technology", "weather"]
TEXTS = [
    "John Smith lives in Paris, France.",
    "Angela Merkel met Emmanuel Macron in Berlin yesterday.",
    "unbelievably antidisestablishmentarianism",
    "Café Zürich — naïve résumé!",
]


def tiny_bert(directory: Path, cls: Any, seed: int, **config: Any) -> torch.nn.Module:
    """A 2-layer BERT with random weights and minilm's tokenizer, saved to `directory`."""
    torch.manual_seed(seed)
    size: dict[str, Any] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    # weights far from zero: inputs get distinct outputs (the default 0.02 scores all alike)
    config = {"initializer_range": 0.3, **config}
    model = cls(BertConfig(vocab_size=30522, max_position_embeddings=512, **size, **config))
    model.eval().save_pretrained(directory)  # (safetensors)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(minilm_path()) / name, directory / name)
    return model


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text_tasks")
    found = {name: root / name for name in ("nli", "ce", "ner", "sentiment")}
    label2id = {v: k for k, v in NLI_LABELS.items()}
    tiny_bert(found["nli"], BertForSequenceClassification, 0, num_labels=3, id2label=NLI_LABELS, label2id=label2id)
    tiny_bert(found["ce"], BertForSequenceClassification, 1, num_labels=1)
    tiny_bert(found["ner"], BertForTokenClassification, 2, num_labels=5, id2label=TAGS, initializer_range=0.5)
    tiny_bert(found["sentiment"], BertForSequenceClassification, 3, num_labels=2)
    return found


@pytest.fixture(scope="module")
def s(dirs):
    """One session for the module, with the four models the tests share."""
    session = workbench.connect()
    session.sql("CREATE MODEL zs FROM 'minilm' WITH (task = 'zero_shot')")
    session.sql(f"CREATE MODEL nli FROM '{dirs['nli']}' WITH (task = 'zero_shot')")
    session.sql(f"CREATE MODEL ce FROM '{dirs['ce']}' WITH (task = 'rerank')")
    session.sql(f"CREATE MODEL ner FROM '{dirs['ner']}'")  # (task from the architecture)
    yield session
    session.close()


def rows(s, sql: str, paradigm: str = "dl_centric", **params) -> list[dict]:
    return s.sql(sql, params=params or None, paradigm=paradigm).pl().to_dicts()


def one_line_and_short(message: str) -> bool:
    return "\n" not in message and len(message) <= 300


# -- zero-shot from an embedder ------------------------------------------------------------------
@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_minilm_zero_shot_sorts_sentences_into_topics(s, paradigm):
    out = rows(
        s, "SELECT t, zs(t, $labels) AS r FROM unnest($texts) AS u(t)", paradigm, texts=list(SENTENCES), labels=TOPICS
    )
    assert {o["t"]: o["r"]["label"] for o in out} == SENTENCES
    assert all(0.5 < o["r"]["score"] <= 1.0 for o in out)


def test_minilm_zero_shot_is_a_softmax_of_cosines_at_temperature_005(s):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(minilm_path(), device="cpu")
    texts, labels = list(SENTENCES)[:3], ["ball games", "government", "food"]
    sims = st.encode(texts, normalize_embeddings=True) @ st.encode(labels, normalize_embeddings=True).T
    probs = np.exp(sims / 0.05) / np.exp(sims / 0.05).sum(axis=1, keepdims=True)
    out = rows(s, "SELECT i, zs($t[i], $l) AS r FROM range(1, 4) AS u(i) ORDER BY i", t=texts, l=labels)
    assert [o["r"]["label"] for o in out] == [labels[k] for k in probs.argmax(axis=1)]
    assert np.allclose([o["r"]["score"] for o in out], probs.max(axis=1), atol=1e-4)


def test_minilm_zero_shot_reads_pydoc_paragraphs(s):
    s.sql("CALL load_dataset('pydoc')")
    names = {
        "async": "asynchronous coroutines",
        "import": "importing modules",
        "try": "exception handling",
        "for": "loops",
        "class": "class definitions",
    }
    out = rows(
        s,
        "SELECT topic, zs(body, $labels).label AS label FROM pydoc "
        "WHERE topic IN ('async', 'import', 'try', 'for', 'class') AND length(body) > 80",
        labels=list(names.values()),
    )
    right = np.mean([names[o["topic"]] == o["label"] for o in out])
    assert len(out) > 50 and right > 0.7, right  # five topics: chance is 0.2


# -- zero-shot from an NLI model -------------------------------------------------------------
@pytest.mark.parametrize("template", [None, "The topic is {}"])
def test_nli_zero_shot_equals_the_transformers_pipeline(s, dirs, template):
    name = "nli" if template is None else "nli_topic"
    if template is not None:
        options = f"task = 'zero_shot', hypothesis_template = '{template}'"
        s.sql(f"CREATE OR REPLACE MODEL {name} FROM '{dirs['nli']}' WITH ({options})")
    model = AutoModelForSequenceClassification.from_pretrained(dirs["nli"]).eval()
    reference = pipeline("zero-shot-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(dirs["nli"]))
    kw = {"hypothesis_template": template} if template else {}
    label_sets = [["good", "bad"], ["sports", "politics", "finance", "weather"], ["only one"]]
    for paradigm in PARADIGMS:
        for labels in label_sets:
            out = rows(s, f"SELECT t, {name}(t, $l) AS r FROM unnest($t) AS u(t)", paradigm, t=TEXTS, l=labels)
            for o in out:
                want = reference(o["t"], candidate_labels=labels, **kw)
                assert o["r"]["label"] == want["labels"][0]
                assert o["r"]["score"] == pytest.approx(want["scores"][0], abs=1e-4)


# -- named entities ----------------------------------------------------------------------------
@pytest.mark.parametrize("aggregation", ["simple", "none", "first", "average", "max"])
def test_ner_equals_the_transformers_pipeline(s, dirs, aggregation):
    options = f"task = 'ner', aggregation = '{aggregation}'"
    s.sql(f"CREATE OR REPLACE MODEL ner_{aggregation} FROM '{dirs['ner']}' WITH ({options})")
    model = AutoModelForTokenClassification.from_pretrained(dirs["ner"]).eval()
    tok = AutoTokenizer.from_pretrained(dirs["ner"])
    reference = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy=aggregation)
    key = "entity" if aggregation == "none" else "entity_group"
    found = 0
    for paradigm in PARADIGMS:
        out = rows(s, f"SELECT t, ner_{aggregation}(t) AS r FROM unnest($t) AS u(t)", paradigm, t=TEXTS)
        for o in out:
            want = reference(o["t"])
            assert [(e["entity"], e["start"], e["end"]) for e in o["r"]] == [
                (w[key], w["start"], w["end"]) for w in want
            ]
            assert np.allclose([e["score"] for e in o["r"]], [w["score"] for w in want], atol=1e-4)
            assert all(e["text"] == o["t"][e["start"] : e["end"]] for e in o["r"])
            found += len(o["r"])
    assert found > 10  # the random head does tag entities


def test_ner_output_is_a_list_of_spans(s):
    out = s.sql("SELECT ner('John Smith lives in Paris, France.') AS r")
    assert out.arrow().schema.field("r").type.value_type.names == ["text", "entity", "start", "end", "score"]
    spans = out.pl()["r"][0].to_list()
    assert spans and {e["entity"] for e in spans} <= {"PER", "LOC"}
    unnested = rows(s, 'SELECT e.text, e.entity, e.start, e."end" FROM (SELECT unnest(ner($t)) AS e)', t=TEXTS[0])
    assert [(u["text"], u["start"]) for u in unnested] == [(e["text"], e["start"]) for e in spans]


# -- reranking ---------------------------------------------------------------------------------
QUERIES = ["what is python", "how do I open a file"]
DOCS = ["a large snake", "Python is a programming language.", "Use open(path) to read a file."]


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_rerank_equals_the_model_on_tokenized_pairs(s, dirs, paradigm):
    model = AutoModelForSequenceClassification.from_pretrained(dirs["ce"]).eval()
    tok = AutoTokenizer.from_pretrained(dirs["ce"])
    out = rows(s, "SELECT q, d, ce(q, d) AS r FROM unnest($q) AS a(q), unnest($d) AS b(d)", paradigm, q=QUERIES, d=DOCS)
    assert len(out) == 6
    with torch.inference_mode():
        want = [model(**tok(o["q"], o["d"], return_tensors="pt")).logits[0, 0].item() for o in out]
    assert np.allclose([o["r"] for o in out], want, atol=1e-4)
    assert len(set(want)) == 6


def test_rerank_sigmoid_activation_is_an_option(s, dirs):
    s.sql(f"CREATE OR REPLACE MODEL ce_prob FROM '{dirs['ce']}' WITH (task = 'rerank', activation = 'sigmoid')")
    out = rows(s, "SELECT ce($q, $d) AS raw, ce_prob($q, $d) AS prob", q=QUERIES[0], d=DOCS[1])[0]
    assert out["prob"] == pytest.approx(1 / (1 + np.exp(-out["raw"])), abs=1e-6)


def test_explain_shows_the_pairs_over_the_join(s):
    s.sql(
        "CREATE OR REPLACE TABLE q AS SELECT * FROM (VALUES (1, 'what is python'), (2, 'open a file')) AS t(id, text)"
    )
    s.sql("CREATE OR REPLACE TABLE d AS SELECT * FROM (VALUES (1, 'a snake'), (2, 'a language')) AS t(id, body)")
    text = s.explain("SELECT q.id, d.id, ce(q.text, d.body) AS score FROM q CROSS JOIN d").text()
    assert "ce(q.text, d.body) -> FLOAT" in text
    assert "SELECT DISTINCT {'query': q.text, 'document': d.body} AS k FROM q CROSS JOIN d" in text
    ranked = rows(
        s, "SELECT q.id AS q, d.id AS d, ce(q.text, d.body) AS score FROM q JOIN d ON q.id <= d.id ORDER BY score DESC"
    )
    assert len(ranked) == 3 and ranked[0]["score"] >= ranked[-1]["score"]
    for model, kind in (
        ("zs", "STRUCT(label VARCHAR, score FLOAT)"),
        ("ner", 'STRUCT(text VARCHAR, entity VARCHAR, start INTEGER, "end" INTEGER, score FLOAT)[]'),
    ):
        call = f"{model}(text, ['a', 'b'])" if model == "zs" else f"{model}(text)"
        assert f"-> {kind}" in s.explain(f"SELECT {call} FROM q").text()


# -- the engine around them: cache, fingerprints, NULLs, errors ----------------------------------
@pytest.mark.parametrize(
    "call", ["zs(t, ['sports', 'cooking'])", "nli(t, ['sports', 'cooking'])", "ce('which city', t)", "ner(t)"]
)
def test_second_run_is_answered_by_the_cache(s, call):
    sql = f"SELECT {call} AS r FROM unnest($t) AS u(t)"
    first = s.sql(sql, params={"t": TEXTS})
    again = s.sql(sql, params={"t": TEXTS})
    assert first.stats[0]["rows"] == 4 and first.stats[0]["cache_policy"] == "exact"
    assert again.stats[0]["cache_hits"] == 4 and again.stats[0]["cache_misses"] == 0
    assert again.pl()["r"].to_list() == first.pl()["r"].to_list()


def test_new_labels_miss_the_cache_and_a_new_template_changes_the_fingerprint(s, dirs):
    s.sql("SELECT zs('I baked a cake', ['cooking', 'sports'])")
    assert s.sql("SELECT zs('I baked a cake', ['cooking', 'sports'])").stats[0]["cache_hits"] == 1
    assert s.sql("SELECT zs('I baked a cake', ['cooking', 'weather'])").stats[0]["cache_hits"] == 0
    prints = {s.catalog.get(m).fingerprint() for m in ("zs", "nli", "ce", "ner")}
    s.sql("CREATE OR REPLACE MODEL zs2 FROM 'minilm' WITH (task = 'zero_shot', hypothesis_template = 'about {}')")
    s.sql("CREATE OR REPLACE MODEL zs3 FROM 'minilm' WITH (task = 'zero_shot', temperature = 0.1)")
    s.sql(f"CREATE OR REPLACE MODEL nli2 FROM '{dirs['nli']}' WITH (task = 'zero_shot', hypothesis_template = '{{}}!')")
    s.sql(f"CREATE OR REPLACE MODEL ner2 FROM '{dirs['ner']}' WITH (task = 'ner', aggregation = 'first')")
    s.sql(f"CREATE OR REPLACE MODEL ce2 FROM '{dirs['ce']}' WITH (task = 'rerank', activation = 'sigmoid')")
    prints |= {s.catalog.get(m).fingerprint() for m in ("zs2", "zs3", "nli2", "ner2", "ce2")}
    assert len(prints) == 9
    same = s.sql("CREATE OR REPLACE MODEL zs4 FROM 'minilm' WITH (task = 'zero_shot')")
    assert same is not None and s.catalog.get("zs4").fingerprint() == s.catalog.get("zs").fingerprint()


def test_null_inputs_give_null_outputs(s):
    sql = (
        "SELECT zs(t, l) AS z, nli(t, l) AS n, ce(t, t) AS c, ner(t) AS e "
        "FROM (VALUES ('a cat', ['pets', 'cars']), (NULL, ['pets']), ('a dog', NULL)) AS v(t, l)"
    )
    out = rows(s, sql)
    assert out[0]["z"]["label"] == "pets" and out[0]["e"] is not None and out[0]["c"] is not None
    assert out[1] == {"z": None, "n": None, "c": None, "e": None}
    assert out[2]["z"] is None and out[2]["n"] is None and out[2]["c"] is not None


def test_null_literals_and_null_arguments_in_udf_centric(s):
    assert rows(s, "SELECT zs(NULL, ['a']) AS a, ce('q', NULL) AS b")[0] == {"a": None, "b": None}
    out = rows(s, "SELECT ce(q, d) AS r FROM (VALUES ('a', 'b'), (NULL, 'c')) AS v(q, d)", "udf_centric")
    assert out[1]["r"] is None


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT zs('x')", r"takes 2 inputs \(text, labels\), got 1"),
        ("SELECT zs(1, ['a'])", r"takes \(text VARCHAR, labels VARCHAR\[\]\)"),
        ("SELECT zs('x', 'a')", r"takes \(text VARCHAR, labels VARCHAR\[\]\)"),
        ("SELECT ce('q')", r"takes 2 inputs \(query, document\), got 1"),
        ("SELECT ce('q', 1)", r"takes \(query VARCHAR, document VARCHAR\)"),
        ("SELECT ner('a', 'b')", "takes one input, got 2"),
    ],
)
def test_wrong_arguments_are_refused_before_running(s, sql, message):
    with pytest.raises(InputTypeError, match=message) as err:
        s.sql(sql)
    assert one_line_and_short(str(err.value))


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_an_empty_label_list_is_one_clear_line(s, paradigm):
    for model in ("zs", "nli"):
        with pytest.raises(WorkbenchError, match=r"an empty label list for the text 'x'") as err:
            s.sql(f"SELECT {model}('x', []::VARCHAR[])", paradigm=paradigm)
        assert one_line_and_short(str(err.value))


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("ner", "task = 'ner', aggregation = 'longest'", "aggregation must be one of none, simple"),
        ("nli", "task = 'zero_shot', hypothesis_template = 'no slot'", "hypothesis_template must hold {}"),
        ("nli", "task = 'zero_shot', temperature = 0.1", "temperature applies to an embedder"),
        ("minilm", "task = 'zero_shot', temperature = 0", "temperature must be a positive number"),
        ("minilm", "task = 'zero_shot', labels = 'a,b'", r"labels are given per call"),
        ("nli", "task = 'rerank'", "needs a head with 1 output and this one has 3"),
        ("sentiment", "task = 'zero_shot'", "needs an NLI model"),
        ("ce", "task = 'rerank', activation = 'tanh'", "activation must be one of none, sigmoid"),
        ("ce", "task = 'ner'", "needs a token classifier"),
    ],
)
def test_bad_options_fail_at_create(s, dirs, source, options, message):
    path = source if source == "minilm" else dirs[source]
    with pytest.raises(ModelLoadError, match=message) as err:
        s.sql(f"CREATE OR REPLACE MODEL bad FROM '{path}' WITH ({options})")
    assert one_line_and_short(str(err.value)) and "model 'bad'" in str(err.value)


def test_describe_shows_each_task(s):
    described = {m: dict(s.sql(f"DESCRIBE MODEL {m}").pl().iter_rows()) for m in ("zs", "nli", "ce", "ner")}
    assert described["zs"]["input_type"] == 'STRUCT("text" VARCHAR, "labels" VARCHAR[])'
    assert (
        described["zs"]["hypothesis_template"] == "{}"
        and described["nli"]["hypothesis_template"] == "This example is {}."
    )
    assert described["ce"]["task"] == "rerank" and described["ce"]["activation"] == "none"
    assert described["ner"]["task"] == "ner" and described["ner"]["aggregation"] == "simple"


def test_a_model_on_the_packaged_minilm_moves_with_its_database(tmp_path):
    """`FROM 'minilm'` is stored as the packaged model, not this machine's path to it."""
    db = str(tmp_path / "zs.db")
    with workbench.connect(db) as first:
        first.sql("CREATE MODEL zs FROM 'minilm' WITH (task = 'zero_shot')")
        source = dict(first.sql("DESCRIBE MODEL zs").pl().iter_rows())["source"]
    assert source == "builtin:minilm"
    with workbench.connect(db) as again:
        r = again.sql("SELECT zs('boil the pasta in salted water', ['sports', 'cooking']) AS r").arrow()
    assert r.to_pylist()[0]["r"]["label"] == "cooking"
