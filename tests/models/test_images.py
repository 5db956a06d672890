"""Image models: outputs equal transformers' and torch's own on the same decoded images, in
both paradigms; BLOB bytes, paths and read_blob; bad images and paths stop the query with one
clear line and leave the session usable."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images

import workbench
from workbench.errors import InputTypeError, ModelError, ModelLoadError, WorkbenchError
from workbench.models import images, loading

PARADIGMS = ("dl_centric", "udf_centric")
LABELS = ["cat", "dog", "fish"]
PNG = b"\x89PNG"
SEARCH = "SELECT id FROM images ORDER BY array_cosine_similarity(clip_image(img), clip_text('a red square')) DESC"


# -- fixtures: tiny random-weight models and real images --------------------------------------
def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=90)
    return out.getvalue()


def clip_tokenizer(folder):
    """A CLIP tokenizer over every byte plus a few merges (no hub access here)."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 173)] + [chr(c) for c in range(174, 256)]
    extra = [chr(256 + i) for i in range(256 - len(chars))]
    vocab: dict[str, int] = {}
    for c in chars + extra:
        vocab[c] = len(vocab)
    for c in chars + extra:
        vocab[c + "</w>"] = len(vocab)
    merges = ["r e", "re d</w>", "s q", "b l", "bl u", "blu e</w>"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    root = tmp_path_factory.mktemp("images")
    torch.manual_seed(0)
    vit = root / "vit"
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    ViTForImageClassification(config).save_pretrained(vit, safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)

    clip = root / "clip"
    tok = clip_tokenizer(root / "tok")
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = dict(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(
        clip, safe_serialization=True
    )
    tok.save_pretrained(clip)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip)

    # real images: sklearn's digits (8x8, 0..16) as greyscale PNGs, its two photos as JPEGs,
    # and plain colour squares
    digits = load_digits()
    grey = [np.round(d * 255 / 16).astype(np.uint8) for d in digits.images[:12]]
    photos = [jpeg(p[::4, ::4]) for p in load_sample_images().images]  # (107 x 160, still real JPEGs)
    squares = [np.zeros((24, 24, 3), np.uint8) + np.array(c, np.uint8) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    blobs = [png(g) for g in grey] + photos + [png(s) for s in squares]
    folder = root / "pics"
    folder.mkdir()
    for i, b in enumerate(blobs):
        suffix = "png" if b.startswith(PNG) else "jpg"
        (folder / f"{i:02d}.{suffix}").write_bytes(b)
    return {
        "root": root,
        "vit": vit,
        "clip": clip,
        "blobs": blobs,
        "grey": grey,
        "digit_labels": digits.target[:12],
        "folder": folder,
    }


@pytest.fixture(scope="module")
def s(assets):
    session = workbench.connect()
    table = pa.table(
        {"id": pa.array(range(len(assets["blobs"])), pa.int32()), "img": pa.array(assets["blobs"], pa.binary())}
    )
    session.register("pics", table)
    session.sql("CREATE TABLE images AS SELECT * FROM pics")
    session.unregister("pics")
    session.sql(f"CREATE MODEL clf FROM '{assets['vit']}' WITH (task = 'image_classify')")
    session.sql(f"CREATE MODEL clip_image FROM '{assets['clip']}' WITH (task = 'image_embed')")
    session.register_model("clip_text", images.load_text("clip_text", assets["clip"], {"task": "embed"}))
    yield session
    session.close()


def decoded(blobs, mode="RGB"):
    return [Image.open(io.BytesIO(b)).convert(mode) for b in blobs]


def column(result, name):
    return result.pl()[name].to_list()


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) <= 300, text
    return text


# -- transformers directories ------------------------------------------------------------------
@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_vit_classifier_equals_transformers(s, assets, paradigm):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(assets["vit"]).eval()
    processor = AutoImageProcessor.from_pretrained(assets["vit"])
    with torch.no_grad():
        pixels = processor(images=decoded(assets["blobs"]), return_tensors="pt")["pixel_values"]
        probs = model(pixel_values=pixels).logits.softmax(-1)
    score, idx = probs.max(-1)
    r = s.sql("SELECT id, clf(img) AS c FROM images ORDER BY id", paradigm=paradigm)
    got = column(r, "c")
    assert [g["label"] for g in got] == [LABELS[i] for i in idx.tolist()]
    np.testing.assert_allclose([g["score"] for g in got], score.numpy(), atol=1e-4)
    stats = r.stats[0]
    assert stats["paradigm"] == paradigm and stats["model"] == "clf"
    if paradigm == "dl_centric":  # the second run is answered by the inference cache
        again = s.sql("SELECT id, clf(img) AS c FROM images ORDER BY id", paradigm=paradigm)
        assert again.stats[0]["cache_hits"] == len(assets["blobs"]) and again.stats[0]["cache_misses"] == 0
        assert column(again, "c") == got


def test_vit_describe_explain_and_fingerprint(s, assets):
    model = s.model("clf")
    assert model.input_type == "BLOB" and model.output_type == "STRUCT(label VARCHAR, score FLOAT)"
    d = model.describe()
    assert d["task"] == "image_classify" and d["labels"] == LABELS and d["processor"].startswith("ViTImageProcessor")
    text = s.explain("SELECT clf(img) FROM images").text()
    assert "clf(img) -> STRUCT(label VARCHAR, score FLOAT)" in text
    before = model.fingerprint()
    assert model.fingerprint() == before
    renamed = images.load("clf2", assets["vit"], {"task": "image_classify", "labels": ["a", "b", "c"]})
    assert renamed.fingerprint() != before  # labels are part of the output
    with torch.no_grad():
        w = renamed.model.classifier.weight
        w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(float("inf")))
    assert (
        renamed.fingerprint()
        != images.load("c3", assets["vit"], {"task": "image_classify", "labels": ["a", "b", "c"]}).fingerprint()
    )


def test_vit_backbone_embeds_its_first_token(assets):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    emb = images.load("vit_emb", assets["vit"], {"task": "image_embed", "normalize": False})
    assert emb.output_type == "FLOAT[32]" and emb.features == "cls"
    model = AutoModelForImageClassification.from_pretrained(assets["vit"]).eval()
    processor = AutoImageProcessor.from_pretrained(assets["vit"])
    blobs = assets["blobs"][:4]
    with torch.no_grad():
        pixels = processor(images=decoded(blobs), return_tensors="pt")["pixel_values"]
        want = model.vit(pixel_values=pixels).last_hidden_state[:, 0]
    got = np.stack(emb.predict(blobs).to_pylist())
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4)


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_clip_image_and_text_search(s, assets, paradigm):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(assets["clip"]).eval()
    processor = AutoImageProcessor.from_pretrained(assets["clip"])
    tokenizer = AutoTokenizer.from_pretrained(assets["clip"])
    with torch.no_grad():
        pixels = processor(images=decoded(assets["blobs"]), return_tensors="pt")["pixel_values"]
        image = images._pooled(model.get_image_features(pixel_values=pixels))  # noqa: SLF001
        enc = tokenizer(["a red square"], padding=True, return_tensors="pt")
        text = images._pooled(model.get_text_features(**enc))  # noqa: SLF001
    image = torch.nn.functional.normalize(image, dim=1).numpy()
    text = torch.nn.functional.normalize(text, dim=1).numpy()[0]

    r = s.sql("SELECT id, clip_image(img) AS e FROM images ORDER BY id", paradigm=paradigm)
    np.testing.assert_allclose(np.stack(column(r, "e")), image, atol=1e-4)
    t = s.sql("SELECT clip_text('a red square') AS t", paradigm=paradigm)
    np.testing.assert_allclose(column(t, "t")[0], text, atol=1e-4)
    top = s.sql(SEARCH + " LIMIT 3", paradigm=paradigm)
    assert column(top, "id") == np.argsort(-(image @ text), kind="stable")[:3].tolist()
    assert s.model("clip_image").output_type == s.model("clip_text").output_type == "FLOAT[16]"


def test_clip_raw_features_when_not_normalized(assets):
    raw = images.load("raw", assets["clip"], {"task": "image_embed", "normalize": False})
    unit = images.load("unit", assets["clip"], {"task": "image_embed"})
    a = np.stack(raw.predict(assets["blobs"][:3]).to_pylist())
    b = np.stack(unit.predict(assets["blobs"][:3]).to_pylist())
    np.testing.assert_allclose(a / np.linalg.norm(a, axis=1, keepdims=True), b, atol=1e-5)
    assert raw.fingerprint() != unit.fingerprint()


def test_create_model_embed_of_a_clip_directory(s, assets):
    """`CREATE MODEL clip_text FROM '<clip dir>' WITH (task = 'embed')`: the text tower, once
    loading.py sends a dual encoder's 'embed' here (images.load_text)."""
    try:
        model = loading.from_path("clip_text", str(assets["clip"]), {"task": "embed"})
    except Exception:  # noqa: BLE001 - without the dispatch the text adapter cannot run CLIP
        pytest.skip("loading._from_transformers_dir does not dispatch CLIP 'embed' to images.load_text yet")
    assert isinstance(model, images.DualTextEmbedder)
    s.sql(f"CREATE MODEL clip_sql FROM '{assets['clip']}' WITH (task = 'embed')")
    search = SEARCH + " LIMIT 3"
    assert column(s.sql(search.replace("clip_text(", "clip_sql(")), "id") == column(s.sql(search), "id")


# -- torch modules -----------------------------------------------------------------------------
def digit_net(outputs=10, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, outputs)
    )


MODULE_OPTIONS = {"image_size": 8, "channels": 1, "mean": 0.5, "std": 0.25}


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_module_classifier_equals_the_module(s, assets, paradigm):
    net = digit_net().train()  # left in training mode: queries run it in eval mode and put it back
    s.register_model("digit_cnn", images.from_module("digit_cnn", net, {"task": "image_classify", **MODULE_OPTIONS}))
    x = torch.tensor(np.stack(assets["grey"]), dtype=torch.float32)[:, None] / 255
    with torch.no_grad():
        score, idx = net.eval()((x - 0.5) / 0.25).softmax(-1).max(-1)
    net.train()
    r = s.sql("SELECT id, digit_cnn(img) AS c FROM images WHERE id < 12 ORDER BY id", paradigm=paradigm)
    got = column(r, "c")
    assert [g["label"] for g in got] == idx.tolist()
    np.testing.assert_allclose([g["score"] for g in got], score.numpy(), atol=1e-5)
    assert s.model("digit_cnn").output_type == "STRUCT(label INTEGER, score FLOAT)" and net.training


def test_module_labels_embeddings_and_rgb(assets):
    labelled = images.from_module(
        "named", digit_net(3), {"task": "image_classify", "labels": ["a", "b", "c"], **MODULE_OPTIONS}
    )
    out = labelled.predict(assets["blobs"][:2])
    assert out.type == labelled.arrow_output_type() and {v["label"] for v in out.to_pylist()} <= {"a", "b", "c"}

    torch.manual_seed(1)
    rgb = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    options = {"task": "image_embed", "image_size": "12x16", "mean": "0.4,0.5,0.6", "std": 0.2}
    emb = images.from_module("rgb", rgb, options)
    assert emb.output_type == "FLOAT[2]"
    photo = assets["blobs"][12]  # a JPEG photo, resized to 12 x 16 (height x width)
    im = Image.open(io.BytesIO(photo)).convert("RGB").resize((16, 12), Image.Resampling.BILINEAR)
    x = torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    x = (x - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / 0.2
    with torch.no_grad():
        want = rgb(x).numpy()
    np.testing.assert_allclose(np.stack(emb.predict([photo]).to_pylist()), want, atol=1e-5)
    changed = images.from_module("rgb", rgb, {**options, "std": 0.3})
    assert changed.fingerprint() != emb.fingerprint()


def test_register_model_with_an_image_task(s, assets):
    """`register_model(name, module, task='image_classify', image_size=8, channels=1)`, once
    loading.from_python sends image tasks here (images.from_python)."""
    try:
        model = loading.from_python("probe", digit_net(), {"task": "image_classify", **MODULE_OPTIONS})
    except Exception:  # noqa: BLE001 - without the dispatch a module becomes a TensorModel
        pytest.skip("loading.from_python does not dispatch image tasks to images.from_python yet")
    assert isinstance(model, images.ModuleImageModel)
    s.register_model("reg_cnn", digit_net(), task="image_classify", **MODULE_OPTIONS)
    assert len(column(s.sql("SELECT reg_cnn(img) AS c FROM images WHERE id < 3"), "c")) == 3


def test_transformers_pair_from_python(assets):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    pair = (
        AutoModelForImageClassification.from_pretrained(assets["vit"]),
        AutoImageProcessor.from_pretrained(assets["vit"]),
    )
    model = images.from_python("pair", pair, {"task": "image_classify"})
    loaded = images.load("dir", assets["vit"], {"task": "image_classify"})
    assert model.predict(assets["blobs"][:3]).to_pylist() == loaded.predict(assets["blobs"][:3]).to_pylist()


def files_model(assets) -> str:
    vit, folder = assets["vit"], assets["folder"]
    return f"CREATE OR REPLACE MODEL clf_files FROM '{vit}' WITH (task = 'image_classify', image_root = '{folder}')"


# -- where images come from --------------------------------------------------------------------
def test_read_blob_parquet_and_paths(s, assets, tmp_path):
    folder = assets["folder"]
    want = s.sql("SELECT id, clf(img) AS c FROM images ORDER BY id").pl()["c"].to_list()
    r = s.sql(f"SELECT filename, clf(content) AS c FROM read_blob('{folder}/*.png') ORDER BY filename").pl()
    pngs = [i for i, b in enumerate(assets["blobs"]) if b.startswith(PNG)]
    assert r["c"].to_list() == [want[i] for i in pngs]

    pq.write_table(
        pa.table({"id": pa.array(range(4)), "img": pa.array(assets["blobs"][:4], pa.binary())}), tmp_path / "p.parquet"
    )
    p = s.sql(f"SELECT clf(img) AS c FROM read_parquet('{tmp_path / 'p.parquet'}') ORDER BY id").pl()["c"].to_list()
    assert p == want[:4]

    # paths: under the image_root, absolute or relative to the working directory at CREATE
    s.sql(files_model(assets))
    names = sorted(f.name for f in folder.iterdir())
    for paradigm in PARADIGMS:
        got = s.sql(
            "SELECT clf_files(p) AS c FROM (SELECT unnest($n) AS p, generate_subscripts($n, 1) AS i) ORDER BY i",
            {"n": [str(folder / n) for n in names]},
            paradigm=paradigm,
        )
        assert column(got, "c") == want


def test_a_file_changed_in_place_is_read_again(s, assets, tmp_path):
    """A path names a file, not its bytes: calls over paths never answer from the cache."""
    s.sql(files_model(assets))
    image = assets["folder"] / "changing.png"
    query = "SELECT clf_files($p) AS c"
    try:
        outputs = []
        for blob in assets["blobs"][:2]:
            image.write_bytes(blob)
            r = s.sql(query, {"p": str(image)}, paradigm="dl_centric")
            outputs.append(column(r, "c")[0])
            assert r.stats[0]["cache_hits"] == 0 and "cache off" in s.explain(query, {"p": str(image)}).text()
        want = s.sql("SELECT clf($b) AS c", {"b": assets["blobs"][1]}).pl()["c"].to_list()[0]
        assert outputs[1] == want  # the second file's answer, not the first one's
    finally:
        image.unlink()


def test_relative_paths_start_at_the_working_directory(assets, monkeypatch):
    monkeypatch.chdir(assets["root"])
    net = images.from_module("rel", digit_net(), {"task": "image_classify", **MODULE_OPTIONS})
    by_path = net.predict(["pics/00.png", "./pics/../pics/01.png"]).to_pylist()
    assert by_path == net.predict(assets["blobs"][:2]).to_pylist()
    assert net.reader.roots == (assets["root"].resolve(),)


# -- bad inputs: one clear line, nothing returned, the session goes on ----------------------
def bomb() -> bytes:
    """A PNG header claiming 20000 x 20000 pixels: over Pillow's decompression-bomb limit."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_bad_bytes_give_one_line(s, assets, paradigm):
    truncated = assets["blobs"][12][:300]
    cases = [
        (truncated, "is not an image Pillow can read"),
        (np.random.default_rng(0).bytes(64), "not an image Pillow can read (cannot identify image file)"),
        (b"", "empty BLOB"),
        (bomb(), "decompression bomb"),
    ]
    for value, why in cases:
        with pytest.raises((InputTypeError, ModelError)) as caught:
            s.sql("SELECT clf($bad) AS c", {"bad": value}, paradigm=paradigm)
        text = one_line(caught.value)
        assert why in text and "model 'clf'" in text and "BLOB" in text, text
        assert column(s.sql("SELECT count(*) AS n FROM images"), "n") == [len(assets["blobs"])]
    assert len(column(s.sql("SELECT clf(img) AS c FROM images WHERE id < 2", paradigm=paradigm), "c")) == 2


def test_paths_outside_the_roots_and_missing_files(s, assets, tmp_path):
    folder = assets["folder"]
    secret = tmp_path / "secret.png"
    secret.write_bytes(assets["blobs"][0])
    link = folder / "link.png"
    link.symlink_to(secret)
    try:
        s.sql(files_model(assets))
        cases = [
            (str(secret), "is outside the allowed folders"),
            (f"{folder}/../../{secret.parent.name}/secret.png", "is outside the allowed folders"),
            (str(link), "is outside the allowed folders"),  # a symlink out of the folder
            ("/etc/hostname", "is outside the allowed folders"),
            (str(folder / "missing.png"), "does not exist"),
            (str(folder), "is not a file"),
        ]
        for value, why in cases:
            with pytest.raises((InputTypeError, ModelError)) as caught:
                s.sql("SELECT clf_files($p)", {"p": value})
            text = one_line(caught.value)
            assert why in text and "model 'clf_files'" in text, text
        ok = s.sql("SELECT clf_files($p) AS c", {"p": str(folder / "00.png")})
        assert column(ok, "c") == column(s.sql("SELECT clf(img) AS c FROM images WHERE id = 0"), "c")
    finally:
        link.unlink()


def test_bad_options_fail_at_create(s, assets, tmp_path):
    def fails(sql, why):
        with pytest.raises(ModelLoadError) as caught:
            s.sql(sql)
        assert why in one_line(caught.value), str(caught.value)

    vit, clip = assets["vit"], assets["clip"]
    fails(f"CREATE MODEL x FROM '{vit}' WITH (task = 'image_classify', labels = 'a,b')", "2 labels given")
    fails(f"CREATE MODEL x FROM '{clip}' WITH (task = 'image_classify')", "without an image classification head")
    fails(
        f"CREATE MODEL x FROM '{vit}' WITH (task = 'image_classify', image_size = 8)", "image_size is for torch modules"
    )
    fails(
        f"CREATE MODEL x FROM '{vit}' WITH (task = 'image_classify', image_root = '{tmp_path}/nope')", "is not a folder"
    )
    fails(f"CREATE MODEL x FROM '{vit}' WITH (task = 'image_embed', labels = 'a,b,c')", "labels name a classifier")
    no_processor = tmp_path / "vit"
    no_processor.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_processor / f).write_bytes((vit / f).read_bytes())
    fails(f"CREATE MODEL x FROM '{no_processor}' WITH (task = 'image_classify')", "no preprocessor_config.json")

    def module_fails(options, why):
        with pytest.raises(ModelLoadError) as caught:
            images.from_module("m", digit_net(), {"task": "image_classify", **options})
        assert why in one_line(caught.value), str(caught.value)

    module_fails({"channels": 1}, "needs the image size")
    module_fails({**MODULE_OPTIONS, "image_size": 9}, "could not run it on a zero input of shape (2, 1, 9, 9)")
    module_fails({**MODULE_OPTIONS, "channels": 2}, "channels must be 1")
    module_fails({**MODULE_OPTIONS, "mean": "0.1,0.2"}, "mean must be one number or 1")
    module_fails({**MODULE_OPTIONS, "std": 0}, "std must not be 0")
    module_fails({**MODULE_OPTIONS, "labels": ["a", "b"]}, "2 labels given")
    assert isinstance(s.sql("SELECT 1 AS one").pl()["one"][0], int)


def test_errors_are_workbench_errors():
    reader = images.ImageReader("m", "RGB", images.Path("/nonexistent"), (images.Path("/nonexistent"),))
    with pytest.raises(WorkbenchError, match="expected image bytes"):
        reader.read([123])
    with pytest.raises(WorkbenchError, match="NUL"):
        reader.read(["a\x00b"])
