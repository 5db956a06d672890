"""Image models: classifiers and embedders over image bytes (BLOB) or file paths (VARCHAR).

Three sources, one input path:

- a transformers directory: `AutoModelForImageClassification` (task='image_classify',
  STRUCT(label VARCHAR, score FLOAT)) or the vision model's pooled output
  (task='image_embed', FLOAT[n]; a CLIP directory gives `get_image_features`), each with
  the directory's own image processor (`preprocessor_config.json`);
- a CLIP directory with task='embed': its text tower (`get_text_features`), so text and
  images embed into one space and `array_cosine_similarity(clip_image(img), clip_text('a
  red square'))` ranks images by a sentence;
- a plain torch module taking [B, C, H, W] float tensors (`register_model(..., task=
  'image_classify', image_size=8, channels=1, mean=..., std=...)`): each image is resized
  to image_size (bilinear), scaled to [0, 1] and normalised per channel, (x - mean) / std.

Every value is decoded with Pillow (`Image.open(...).convert('RGB')`, or 'L' for a
one-channel module); Pillow's decompression-bomb limits stay as they are. A path is read only
when it resolves (symlinks followed, `..` collapsed) inside an allowed folder: the working
directory when the model was loaded, and the folders of the `image_root` option. A value that
is not a readable image, or a path that is missing or outside those folders, stops the query
with one line that says which value and why (`InputTypeError`); nothing is returned for it.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import pyarrow as pa
import torch
from PIL import Image, UnidentifiedImageError

from workbench.errors import InputTypeError, ModelError, ModelLoadError, shorten
from workbench.models.base import Model, check_labels, fixed_size_list, label_score, vector_types
from workbench.models.modes import evaluating
from workbench.models.sentence import Recipe
from workbench.models.text import TextEmbedder

#: options this module takes besides loading.KNOWN_OPTIONS
OPTIONS = frozenset({"image_root", "image_size", "channels", "mean", "std"})
#: architectures with an image tower and a text tower embedding into one space
DUAL_ENCODERS = frozenset({"CLIPModel"})
IMAGE_TASKS = ("image_classify", "image_embed")


def is_dual_encoder(archs: Sequence[str]) -> bool:
    """Whether a directory's architectures embed text and images into one space (CLIP)."""
    return any(a in DUAL_ENCODERS for a in archs)


# -- reading images ----------------------------------------------------------------------------
class ImageReader:
    """Turns the values of an image column (bytes, or paths under the allowed folders) into
    Pillow images of one mode, or raises one clear line naming the value at fault."""

    def __init__(self, name: str, mode: str, base: Path, roots: tuple[Path, ...]):
        self.name = name
        self.mode = mode
        self.base = base  # relative paths start here
        self.roots = roots

    def read(self, values: Sequence[Any]) -> list[Image.Image]:
        return [self.read_one(v) for v in values]

    def read_one(self, value: Any) -> Image.Image:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            what = _blob(data)
            if not data:
                raise InputTypeError(f"model '{self.name}': an empty BLOB is not an image")
            source: Any = io.BytesIO(data)
        elif isinstance(value, str):
            what = f"image file '{shorten(value, 120)}'"
            source = self.path(value)
        else:
            raise InputTypeError(
                f"model '{self.name}': expected image bytes (BLOB) or a path (VARCHAR), got {type(value).__name__}"
            )
        try:
            with Image.open(source) as img:
                img.load()
                return img.convert(self.mode)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Image.DecompressionBombError as exc:
            raise InputTypeError(f"model '{self.name}': {what} is refused: {exc}") from None
        except UnidentifiedImageError:
            raise InputTypeError(
                f"model '{self.name}': {what} is not an image Pillow can read (cannot identify image file)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a corrupt file can fail anywhere in a decoder
            why = str(exc).strip().splitlines()
            raise InputTypeError(
                f"model '{self.name}': {what} is not an image Pillow can read "
                f"({type(exc).__name__}: {why[0] if why else 'corrupt data'})"
            ) from None

    def path(self, text: str) -> Path:
        """The file `text` names, if it lies inside an allowed folder."""
        shown = shorten(text, 120)
        if "\x00" in text:
            raise InputTypeError(f"model '{self.name}': image path '{shown}' holds a NUL character")
        p = Path(text)
        try:
            real = (p if p.is_absolute() else self.base / p).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise InputTypeError(f"model '{self.name}': image path '{shown}' cannot be resolved ({exc})") from None
        if not any(real.is_relative_to(root) for root in self.roots):
            folders = ", ".join(str(r) for r in self.roots)
            raise InputTypeError(
                f"model '{self.name}': image path '{shown}' is outside the allowed folders ({folders}); "
                "allow another with WITH (image_root = '/its/folder')"
            )
        if not real.exists():
            raise InputTypeError(f"model '{self.name}': image file '{shown}' does not exist")
        if not real.is_file():
            raise InputTypeError(f"model '{self.name}': image path '{shown}' is not a file")
        return real

    def facts(self) -> dict[str, Any]:
        # a cached output is keyed by the path as written: relative ones depend on the base
        return {"image_mode": self.mode, "paths_from": str(self.base), "pillow": PIL.__version__}


def _blob(data: bytes) -> str:
    head = data[:8].hex()
    return f"a {len(data)}-byte BLOB (starting 0x{head}{'…' if len(data) > 8 else ''})"


def image_reader(name: str, options: dict[str, Any], mode: str) -> ImageReader:
    """The reader a model's options ask for: the working directory plus `image_root`."""
    base = Path.cwd().resolve()
    given = options.get("image_root")
    if given is None:
        extra: list[Any] = []
    elif isinstance(given, (str, os.PathLike)):
        extra = [given]
    elif isinstance(given, (list, tuple)):
        extra = list(given)
    else:
        raise ModelLoadError(f"model '{name}': image_root must be a folder path, not {given!r}")
    roots = [base]
    for value in extra:
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ModelLoadError(f"model '{name}': image_root must be a folder path, not {value!r}")
        p = Path(value).expanduser()
        folder = (p if p.is_absolute() else base / p).resolve()
        if not folder.is_dir():
            raise ModelLoadError(f"model '{name}': image_root '{value}' is not a folder")
        if folder not in roots:
            roots.append(folder)
    return ImageReader(name, mode, base, tuple(roots))


# -- the adapters ------------------------------------------------------------------------------
class _ImageModel(Model):
    input_kind = "image"
    batch_candidates = (8, 16, 32, 64)

    reader: ImageReader
    labels: list[str] | None = None
    normalize: bool = True
    dim: int = 0

    @property
    def output_type(self) -> str:
        if self.task == "image_classify":
            return "STRUCT(label VARCHAR, score FLOAT)"
        return vector_types(self.dim)[0]

    def arrow_output_type(self) -> pa.DataType:
        if self.task == "image_classify":
            return pa.struct([("label", pa.string()), ("score", pa.float32())])
        return vector_types(self.dim)[1]

    def predict(self, batch: Sequence[Any]) -> pa.Array:
        out = self.forward(self.reader.read(batch))
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"returned {type(out).__name__}, expected a tensor")
        out = out.float()
        if out.dim() != 2 or out.shape[0] != len(batch):
            raise ModelError(f"returned shape {tuple(out.shape)} for {len(batch)} images; expected ({len(batch)}, k)")
        if self.task == "image_classify":
            return self.label_scores(out)
        if self.normalize:
            out = torch.nn.functional.normalize(out, p=2, dim=1)
        return fixed_size_list(out.cpu().numpy())

    def label_scores(self, logits: torch.Tensor) -> pa.Array:
        score, idx = logits.softmax(-1).max(-1)
        assert self.labels is not None
        return label_score([self.labels[i] for i in idx.cpu().numpy()], score.cpu().numpy(), pa.string())

    def forward(self, images: list[Image.Image]) -> torch.Tensor:
        """Logits (image_classify) or features before normalisation (image_embed)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.labels is not None:
            d["labels"] = self.labels
        if self.task == "image_embed":
            d["normalize"] = self.normalize
        d["image_roots"] = [str(r) for r in self.reader.roots]
        return d


class TransformersImageModel(_ImageModel):
    """A transformers vision model with its image processor.

    image_classify: softmax over the classification head, STRUCT(label, score), labels from
    the `labels` option or `config.id2label`. image_embed, the first the model gives of:
    'projection' (`get_image_features`: CLIP's projected image embedding), 'image_embeds' (a
    vision model with projection), 'pooled' (`pooler_output`), 'cls' (the first token's last
    hidden state, or the mean of a feature map: a backbone without a pooler); L2-normalised
    unless normalize = false.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        reader: ImageReader,
        *,
        task: str,
        labels: list[str] | None = None,
        normalize: bool = True,
        features: str | None = None,
        batch_size: int | None = None,
    ):
        self.model = model
        self.processor = processor
        self.reader = reader
        self.task = task
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size) if batch_size else None
        params = list(model.parameters())
        self.device = str(params[0].device) if params else "cpu"
        self.dtype = params[0].dtype if params else torch.float32
        self._processor_json = processor.to_json_string() if hasattr(processor, "to_json_string") else repr(processor)
        if task == "image_classify":
            outputs = int(model.config.num_labels)
            check_labels(labels, outputs)
            names = getattr(model.config, "id2label", None) or {}
            self.labels = list(labels) if labels else [str(names.get(i, i)) for i in range(outputs)]
            self.features = "logits"
        else:
            self.features = features or self._features_of(self.pixels([_blank(processor)]))
            self.dim = int(self.forward([_blank(processor)]).shape[-1])

    def _features_of(self, pixel_values: torch.Tensor) -> str:
        if hasattr(self.model, "get_image_features"):
            return "projection"
        with evaluating(self.model), torch.inference_mode():
            out = self.model(pixel_values=pixel_values)
        for field in ("image_embeds", "pooler_output"):
            if getattr(out, field, None) is not None:
                return "pooled" if field == "pooler_output" else field
        return "cls"

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        values = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return values.to(device=self.device, dtype=self.dtype)

    def forward(self, images: list[Image.Image]) -> torch.Tensor:
        pixel_values = self.pixels(images)
        with evaluating(self.model), torch.inference_mode():
            if self.features == "logits":
                return self.model(pixel_values=pixel_values).logits
            if self.features == "projection":
                return _pooled(self.model.get_image_features(pixel_values=pixel_values))
            out = self.model(pixel_values=pixel_values)
            if self.features == "image_embeds":
                return out.image_embeds
            if self.features == "pooled":
                return out.pooler_output.flatten(1)  # (B, C, 1, 1) for convolutional models
            hidden = out.last_hidden_state
            return hidden[:, 0] if hidden.dim() == 3 else hidden.flatten(2).mean(-1)

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        from workbench.models.fingerprint import tensors

        facts = {
            "task": self.task,
            "config": self.model.config.to_json_string(use_diff=False),
            "processor": f"{type(self.processor).__name__} {self._processor_json}",
            "labels": self.labels,
            "features": self.features,
            "normalize": self.normalize if self.task == "image_embed" else None,
            **self.reader.facts(),
        }
        return tensors(self.model), facts

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["processor"] = type(self.processor).__name__
        if self.task == "image_embed":
            d["features"] = self.features
        return d


class ModuleImageModel(_ImageModel):
    """A torch module over [B, C, H, W] float tensors: each image resized to `image_size`
    (bilinear; kept as it is when it already has that size), scaled to [0, 1], then
    (x - mean) / std per channel. image_classify: STRUCT(label, score) by softmax, the label
    from `labels` (VARCHAR) or the class index (INTEGER), as for a tensor model;
    image_embed: FLOAT[k], L2-normalised only when normalize = true."""

    def __init__(
        self,
        module: torch.nn.Module,
        reader: ImageReader,
        *,
        task: str,
        size: tuple[int, int],
        channels: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        labels: list[str] | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        deterministic: bool = True,
    ):
        self.model = module  # the user's object: eval mode only while it runs (models/modes.py)
        self.reader = reader
        self.task = task
        self.size = size
        self.channels = channels
        self.mean, self.std = mean, std
        self.labels = list(labels) if labels else None
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size) if batch_size else None
        self.deterministic = bool(deterministic)
        params = list(module.parameters())
        self.device = str(params[0].device) if params else "cpu"
        self.dtype = params[0].dtype if params else torch.float32
        self.dim = self._probe()
        if task == "image_classify":
            if self.dim < 2 and not self.labels:
                raise ModelLoadError("task='image_classify' needs 2 or more outputs and the module has 1")
            check_labels(self.labels, self.dim)

    def _probe(self) -> int:
        h, w = self.size
        what = f"a zero input of shape (2, {self.channels}, {h}, {w})"
        probe = torch.zeros(2, self.channels, h, w, dtype=self.dtype, device=self.device)
        try:
            with evaluating(self.model), torch.inference_mode():
                out = self.model(probe)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the user's forward is the same advice
            why = str(exc).strip().splitlines()
            raise ModelLoadError(
                f"could not run it on {what} ({type(exc).__name__}: {why[0] if why else ''}); "
                "check image_size=... and channels=..."
            ) from None
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelLoadError(f"returned {shape} on {what}; expected a tensor of shape (2, k)")
        return int(out.shape[1])

    @property
    def output_type(self) -> str:
        if self.task == "image_classify":
            return f"STRUCT(label {'VARCHAR' if self.labels else 'INTEGER'}, score FLOAT)"
        return super().output_type

    def arrow_output_type(self) -> pa.DataType:
        if self.task == "image_classify":
            return pa.struct([("label", pa.string() if self.labels else pa.int32()), ("score", pa.float32())])
        return super().arrow_output_type()

    def label_scores(self, logits: torch.Tensor) -> pa.Array:
        if self.labels:
            return super().label_scores(logits)
        score, idx = logits.softmax(-1).max(-1)
        return label_score(idx.cpu().numpy().astype(np.int32), score.cpu().numpy(), pa.int32())

    def tensor(self, images: list[Image.Image]) -> torch.Tensor:
        """The module's input for `images`: (B, C, H, W), scaled and normalised."""
        h, w = self.size
        arrays = [
            np.asarray(im if im.size == (w, h) else im.resize((w, h), Image.Resampling.BILINEAR)) for im in images
        ]
        x = np.stack(arrays).astype(np.float32) / 255.0
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((torch.from_numpy(np.ascontiguousarray(x)) - mean) / std).to(device=self.device, dtype=self.dtype)

    def forward(self, images: list[Image.Image]) -> torch.Tensor:
        x = self.tensor(images)
        with evaluating(self.model), torch.inference_mode():
            return self.model(x)

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        from workbench.models.fingerprint import module_source, tensors

        facts = {
            "task": self.task,
            "labels": self.labels,
            "output_dim": self.dim,
            "architecture": module_source(self.model),
            "image_size": list(self.size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "normalize": self.normalize if self.task == "image_embed" else None,
            **self.reader.facts(),
        }
        return tensors(self.model), facts

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(image_size=f"{self.size[0]}x{self.size[1]}", channels=self.channels)
        return d


class DualTextEmbedder(TextEmbedder):
    """The text tower of a dual encoder (CLIP): `get_text_features`, L2-normalised unless
    normalize = false, in the space of the same directory's image_embed."""

    def __init__(self, model: Any, tokenizer: Any, *, normalize: bool = True, **kw: Any):
        # (TextEmbedder's own set-up reads config.hidden_size, which a CLIPConfig lacks)
        super(TextEmbedder, self).__init__(model, tokenizer, **kw)
        self.normalize = bool(normalize)
        self.pooling = ("text_projection",)
        self.dense = ()
        self.dim = int(model.config.projection_dim)

    def embed(self, texts: list[str]) -> torch.Tensor:
        enc = self._encode(texts)
        with evaluating(self.model), torch.inference_mode():
            out = _pooled(self.model.get_text_features(**enc))
            if self.normalize:
                out = torch.nn.functional.normalize(out, p=2, dim=1)
        return out


def _pooled(out: Any) -> torch.Tensor:
    """get_image_features / get_text_features' result: a tensor (transformers 4) or an
    output whose pooler_output holds the projected features (transformers 5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _blank(processor: Any) -> Image.Image:
    """A grey image of the processor's size, to find an embedder's width."""
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    get = size.get if hasattr(size, "get") else lambda k, d=None: getattr(size, k, d)
    side = get("height") or get("shortest_edge") or 224
    return Image.new("RGB", (int(get("width") or side), int(side)), (128, 128, 128))


# -- loading -----------------------------------------------------------------------------------
def load(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None = None) -> Model:
    """image_classify / image_embed from a transformers directory (safetensors unless
    allow_pickle; its image processor from preprocessor_config.json)."""
    task = options.get("task")
    if task not in IMAGE_TASKS:
        raise ModelLoadError(f"model '{name}': images.load serves {', '.join(IMAGE_TASKS)}, not {task!r}")
    _check_module_options(name, options, module=False)
    labels = options.get("labels")
    if labels and task != "image_classify":
        raise ModelLoadError(f"model '{name}': labels name a classifier's outputs; this model's task is '{task}'")
    archs = _architectures(directory)
    if task == "image_classify" and not any("ImageClassification" in a for a in archs):
        what = archs[0] if archs else "model"
        raise ModelLoadError(
            f"model '{name}': {directory.name} is a {what} without an image classification head; "
            "it can only embed (task='image_embed')"
        )
    from transformers import AutoModel, AutoModelForImageClassification

    reader = image_reader(name, options, "RGB")
    kw = _load_kw(directory, options)
    features = None
    if any("ImageClassification" in a for a in archs):
        model = AutoModelForImageClassification.from_pretrained(str(directory), **kw)
        if task == "image_embed":  # the classifier's backbone, whose pooled output its head reads
            model = model.base_model
    else:
        model, info = AutoModel.from_pretrained(str(directory), output_loading_info=True, **kw)
        features = _check_complete(name, directory, model, info)
    processor = _processor(name, directory)
    try:
        adapter = TransformersImageModel(
            model.eval(),
            processor,
            reader,
            task=task,
            labels=labels,
            normalize=options.get("normalize", True),
            features=features,
            batch_size=options.get("batch_size"),
        )
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter


def load_text(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None = None) -> Model:
    """task='embed' of a dual encoder's directory (CLIP): its text tower, into the image space."""
    if options.get("labels"):
        raise ModelLoadError(f"model '{name}': labels name a classifier's outputs; this model's task is 'embed'")
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(directory), **_load_kw(directory, options))
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
    text_config = getattr(model.config, "text_config", None)
    positions = int(getattr(text_config, "max_position_embeddings", 0) or 77)
    adapter = DualTextEmbedder(
        model.eval(),
        tokenizer,
        normalize=options.get("normalize", True),
        max_length=int(options.get("max_length") or positions),
        batch_size=options.get("batch_size"),
    )
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter


def from_python(name: str, obj: Any, options: dict[str, Any]) -> Model:
    """image_classify / image_embed from a notebook object: a plain torch module over
    [B, C, H, W] tensors (with image_size, channels, mean, std), or a (transformers vision
    model, image processor) pair."""
    task = options.get("task")
    if task not in IMAGE_TASKS:
        raise ModelLoadError(f"model '{name}': images.from_python serves {', '.join(IMAGE_TASKS)}, not {task!r}")
    if isinstance(obj, (tuple, list)) and len(obj) == 2 or isinstance(obj, dict) and {"model", "processor"} <= set(obj):
        model, processor = (obj["model"], obj["processor"]) if isinstance(obj, dict) else obj
        if not isinstance(model, torch.nn.Module) or not callable(processor):
            raise ModelLoadError(f"model '{name}': expected (transformers vision model, image processor)")
        if options.get("labels") and task != "image_classify":
            raise ModelLoadError(f"model '{name}': labels name a classifier's outputs; this model's task is '{task}'")
        _check_module_options(name, options, module=False)
        try:
            adapter: Model = TransformersImageModel(
                model,
                processor,
                image_reader(name, options, "RGB"),
                task=task,
                labels=options.get("labels"),
                normalize=options.get("normalize", True),
                batch_size=options.get("batch_size"),
            )
        except ModelLoadError as exc:
            raise ModelLoadError(f"model '{name}': {exc}") from None
        adapter.allow_inf = bool(options.get("allow_inf", False))
        return adapter
    if not isinstance(obj, torch.nn.Module):
        raise ModelLoadError(
            f"model '{name}': cannot use a {type(obj).__name__} as an image model "
            "(expected a torch nn.Module or a (model, image processor) pair)"
        )
    if hasattr(obj, "config") and hasattr(obj.config, "model_type"):
        raise ModelLoadError(
            f"model '{name}': a transformers model needs its image processor: register (model, processor)"
        )
    return from_module(name, obj, options)


def from_module(name: str, module: torch.nn.Module, options: dict[str, Any]) -> Model:
    """A plain torch module over [B, C, H, W] float tensors as an image model."""
    task = str(options.get("task"))
    labels = options.get("labels")
    if labels and task != "image_classify":
        raise ModelLoadError(f"model '{name}': labels name a classifier's outputs; this model's task is '{task}'")
    size, channels, mean, std = _check_module_options(name, options, module=True)
    try:
        adapter = ModuleImageModel(
            module,
            image_reader(name, options, "L" if channels == 1 else "RGB"),
            task=task,
            size=size,
            channels=channels,
            mean=mean,
            std=std,
            labels=labels,
            normalize=bool(options.get("normalize", False)),
            batch_size=options.get("batch_size"),
            deterministic=bool(options.get("deterministic", True)),
        )
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter


def _check_module_options(
    name: str, options: dict[str, Any], *, module: bool
) -> tuple[tuple[int, int], int, tuple[float, ...], tuple[float, ...]]:
    """(image size as (height, width), channels, mean, std) of a module's options; a
    transformers model takes none of them (its processor decides)."""
    given = sorted(k for k in ("image_size", "channels", "mean", "std") if options.get(k) is not None)
    if not module:
        if given:
            raise ModelLoadError(
                f"model '{name}': {given[0]} is for torch modules; a transformers model is "
                "preprocessed by its own image processor (preprocessor_config.json)"
            )
        return (0, 0), 3, (), ()
    size = _size(name, options.get("image_size"))
    channels = options.get("channels", 3)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ModelLoadError(f"model '{name}': channels must be 1 (greyscale) or 3 (RGB), not {channels!r}")
    mean = _per_channel(name, "mean", options.get("mean", 0.0), channels)
    std = _per_channel(name, "std", options.get("std", 1.0), channels)
    if any(s == 0 for s in std):
        raise ModelLoadError(f"model '{name}': std must not be 0")
    return size, int(channels), mean, std


def _size(name: str, value: Any) -> tuple[int, int]:
    if value is None:
        raise ModelLoadError(
            f"model '{name}': a torch module needs the image size it takes: WITH (image_size = 224, channels = 3)"
        )
    if isinstance(value, str) and "x" in value.lower():
        parts: list[Any] = value.lower().split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value, value]
    try:
        h, w = (int(p) for p in parts)
    except (TypeError, ValueError):
        h = w = 0
    if len(parts) != 2 or h < 1 or w < 1 or h > 8192 or w > 8192:
        raise ModelLoadError(f"model '{name}': image_size must be a side (224) or 'HEIGHTxWIDTH', not {value!r}")
    return h, w


def _per_channel(name: str, option: str, value: Any, channels: int) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",")]
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        floats = tuple(float(v) for v in values if not isinstance(v, bool))
    except (TypeError, ValueError):
        floats = ()
    if len(floats) != len(values) or len(floats) not in (1, channels) or not all(np.isfinite(floats)):
        raise ModelLoadError(
            f"model '{name}': {option} must be one number or {channels} (one a channel, e.g. "
            f"{option} = '0.5,0.5,0.5'), not {value!r}"
        )
    return floats * channels if len(floats) == 1 else floats


def _architectures(directory: Path) -> list[str]:
    config = json.loads((directory / "config.json").read_text())
    return list(config.get("architectures") or [])


def _load_kw(directory: Path, options: dict[str, Any]) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    has_safetensors = any(directory.glob("*.safetensors"))
    return {
        "use_safetensors": not options.get("allow_pickle") or has_safetensors,
        "trust_remote_code": False,
        "local_files_only": True,
    }


def _processor(name: str, directory: Path) -> Any:
    from transformers import AutoImageProcessor

    if not (directory / "preprocessor_config.json").exists():
        raise ModelLoadError(
            f"model '{name}': {directory.name} has no preprocessor_config.json (an image model needs its processor)"
        )
    return AutoImageProcessor.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)


def _check_complete(name: str, directory: Path, model: Any, info: dict[str, Any]) -> str | None:
    """Refuse weights the checkpoint does not hold: transformers would initialise them at
    random, and the outputs would mean nothing. Without its pooler alone, a backbone gives
    its first token ('cls') instead of the pooled output."""
    missing = sorted(info.get("missing_keys") or ())
    if missing and all("pooler" in k.split(".") for k in missing):
        return "cls"
    if missing:
        raise ModelLoadError(
            f"model '{name}': {directory.name} lacks weights the {type(model).__name__} needs "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}); they would be random"
        )
    return None
