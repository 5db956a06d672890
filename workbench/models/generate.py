"""Text generation with a decoder language model: `gen(prompt)` → VARCHAR (WITH (task = 'generate')).

GPT-2-, Llama-, Mistral- and Qwen-shaped checkpoints load through transformers' causal-LM
classes. The engine's batches are decoded together: prompts padded on the left, one prefill,
then one token per step for every sequence still running, with a KV cache; a sequence that
ends (its end-of-sequence token, a `stop` string, or `max_new_tokens`) leaves the batch and
its rows of the cache with it, so the steps after it cost only the sequences left. The
engine already deduplicates prompts and groups them by length (`sort_keys`), so a batch
pads little.

Greedy decoding (`temperature = 0`, the default) and sampling with a `seed` are
deterministic and cached: each sequence samples from its own generator seeded with `seed`,
so a prompt's text does not depend on which other prompts share its batch. Sampling without
a seed is never cached (`deterministic = False`).

Options (WITH or ALTER MODEL): max_new_tokens (default 32), temperature, top_p, stop (a
string or a list of strings; the text ends before the first), seed, chat (true: the prompt
is wrapped in the tokenizer's chat template as one user message), truncate ('error', the
default, or 'left': keep the end of a prompt too long for the context).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from workbench.errors import ModelError, ModelLoadError
from workbench.models.base import Model
from workbench.models.modes import evaluating
from workbench.models.sentence import Recipe
from workbench.models.text import _TextModel

#: options this task takes besides loading.KNOWN_OPTIONS
OPTIONS = frozenset({"max_new_tokens", "temperature", "top_p", "stop", "seed", "chat", "truncate"})
DEFAULT_NEW_TOKENS = 32
TRUNCATE = ("error", "left")


class Generator(_TextModel):
    """A causal language model that continues each prompt (see the module's doc)."""

    task = "generate"
    batch_candidates = (4, 8, 16, 32)
    continuous = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        context: int,
        max_new_tokens: int = DEFAULT_NEW_TOKENS,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: tuple[str, ...] = (),
        seed: int | None = None,
        chat: bool = False,
        truncate: str = "error",
        **kw: Any,
    ):
        super().__init__(model, tokenizer, max_length=context, **kw)
        self.context = int(context)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.stop = tuple(stop)
        self.seed = seed
        self.chat = bool(chat)
        self.truncate = truncate
        self.deterministic = self.temperature == 0 or seed is not None
        self.end_ids = _end_ids(model, tokenizer)
        # the KV cache's argument: `cache` in transformers 5.24 and later, `past_key_values` before
        forward = getattr(model, "wrapped_forward", model.forward)  # (an offloaded model's own)
        self.last_decode: DecodeStats | None = None  # what the latest `generate` did
        self._cache_arg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
        # only the last position's logits are used: a model that can skip the others does
        self._last_logits = "logits_to_keep" in inspect.signature(forward).parameters
        self.prefill_chunk: int | None = None  # tokens per prefill forward (offloaded.py's schedule sets it)
        self.cache_factory: Any = None  # the KV cache's class when not DynamicCache (a spilled one, offloaded.py)

    @property
    def output_type(self) -> str:
        return "VARCHAR"

    def arrow_output_type(self) -> pa.DataType:
        return pa.string()

    def work_units(self, batch: list[str]) -> int:
        # the prompt's tokens once (prefill), then every new token one step of the batch
        return sum(min(len(t) // 4 + 2, self.context) + self.max_new_tokens for t in batch)

    def describe(self) -> dict[str, Any]:
        facts = {**super().describe(), "max_new_tokens": self.max_new_tokens, "context": self.context}
        facts["decoding"] = "greedy" if self.temperature == 0 else f"sampling (temperature {self.temperature})"
        return facts

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        named, facts = super().fingerprint_parts()
        return named, {**facts, **self.decoding_options()}

    def decoding_options(self) -> dict[str, Any]:
        """The decoding options in force (the model's own, or a call's over them)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
            "chat": self.chat,
            "truncate": self.truncate,
        }

    def with_options(self, options: dict[str, Any]) -> Generator:
        """This generator with a call's decoding options (`gen(p, max_new_tokens := 20)`) over
        the model's own; the same weights, its own fingerprint."""
        settings = _settings("call", {**self.decoding_options(), **options})
        if settings["chat"] and not getattr(self.tokenizer, "chat_template", None):
            raise ModelError("chat := true needs a tokenizer with a chat template; this one has none")
        found = copy.copy(self)
        vars(found).pop("_fingerprinter", None)  # its facts differ: its own memo of the digest
        for key, value in settings.items():
            setattr(found, key, value)
        found.deterministic = found.temperature == 0 or found.seed is not None
        return found

    def predict(self, batch: list[str]) -> pa.Array:
        return pa.array(self.generate(batch), type=pa.string())

    # -- decoding ------------------------------------------------------------------------
    def prompt_ids(self, prompts: list[str]) -> list[list[int]]:
        """Each prompt's token ids: chat-templated when asked, checked against the context."""
        room = self.context - self.max_new_tokens
        if room < 1:
            raise ModelError(
                f"max_new_tokens = {self.max_new_tokens} leaves no room for a prompt in this model's "
                f"context of {self.context} tokens"
            )
        out = []
        for text in prompts:
            text = self.prompt + text if self.prompt else text
            if self.chat:  # the template writes the special tokens itself
                text = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
                )
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            else:
                ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            if len(ids) > room:
                if self.truncate != "left":
                    raise ModelError(
                        f"a prompt of {len(ids)} tokens does not fit this model's context of {self.context} "
                        f"with max_new_tokens = {self.max_new_tokens} (at most {room} prompt tokens; "
                        "truncate = 'left' keeps the end of long prompts)"
                    )
                ids = ids[len(ids) - room :]
            out.append(list(ids) or [self._pad_id()])
        return out

    def predict_continuous(self, batch: list[str], slots: int) -> pa.Array:
        """`predict` with at most `slots` sequences decoding at once (continuous batching)."""
        return pa.array(self.generate(batch, slots=slots), type=pa.string())

    def generate(
        self, prompts: list[str], *, slots: int | None = None, on_token: Callable[[int, str], None] | None = None
    ) -> list[str]:
        """Each prompt's continuation. At most `slots` sequences decode together (all of them
        by default): when one ends, the next waiting prompt is prefilled and its rows of the
        KV cache join the running batch, left-aligned by padding, so no slot idles while
        prompts wait. `on_token(row, text so far)` is told after each new token of a row."""
        if not prompts:
            return []
        prompt_ids = self.prompt_ids(prompts)
        slots = max(1, min(slots or len(prompts), len(prompts)))
        generators = [self._generator() for _ in prompts] if self.temperature > 0 else []
        new: list[list[int]] = [[] for _ in prompts]
        waiting = deque(range(len(prompts)))
        running: _Batch | None = None
        stats = DecodeStats(rows=len(prompts), slots=slots)
        started = time.perf_counter()
        watcher = _WATCHER.get()
        if watcher is not None:  # the engine's live report: every new token, its row's text so far
            told = on_token

            def on_token(row: int, text: str) -> None:
                stats.tokens += 1
                stats.seconds = time.perf_counter() - started
                watcher(stats, row, text)
                if told is not None:
                    told(row, text)

        caches: list[Any] = []  # every KV cache of this call: a spilled one's files go at the end
        try:
            with evaluating(self.model), torch.inference_mode():
                while waiting or running is not None:
                    if waiting and (running is None or (len(running.rows) < slots and running.can_merge())):
                        room = slots - (len(running.rows) if running is not None else 0)
                        joining = [waiting.popleft() for _ in range(min(room, len(waiting)))]
                        prefilled, logits = self._prefill(joining, prompt_ids, caches)
                        stats.prefills += 1
                        joined = self._advance(prefilled, logits, generators, new, on_token)
                        if running is not None and joined is not None:
                            stats.joins += 1
                        running = joined if running is None else running.merged(joined)
                        if running is not None:
                            stats.kv_bytes = max(stats.kv_bytes, running.kv_bytes())
                        continue
                    assert running is not None
                    mask = torch.cat([running.mask, running.mask.new_ones((len(running.rows), 1))], dim=1)
                    positions = mask.sum(-1, keepdim=True) - 1
                    logits = self._step(running.last.view(-1, 1), mask, positions, running.cache)
                    running.mask = mask
                    stats.steps += 1
                    stats.kv_bytes = max(stats.kv_bytes, running.kv_bytes())
                    running = self._advance(running, logits, generators, new, on_token)
        finally:
            for cache in caches:
                if hasattr(cache, "close"):
                    cache.close()
        stats.tokens = sum(len(t) for t in new)
        stats.seconds = time.perf_counter() - started
        stats.finished = True
        self.last_decode = stats
        if watcher is not None:
            watcher(stats, -1, "")
        return [self._text(tokens) for tokens in new]

    def _prefill(self, rows: list[int], prompt_ids: list[list[int]], caches: list[Any]) -> tuple[_Batch, torch.Tensor]:
        """The prompts of `rows`, left-padded into one batch and run once: their KV cache and
        the logits of each one's next token."""
        from transformers import DynamicCache

        chosen = [prompt_ids[r] for r in rows]
        width = max(len(p) for p in chosen)
        pad = self._pad_id()
        # left padding: every sequence's next token is at the last position
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chosen], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chosen], device=self.device)
        cache = self.cache_factory() if self.cache_factory is not None else DynamicCache()
        caches.append(cache)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        chunk = self.prefill_chunk or width  # a long prompt's activations, a chunk at a time
        for at in range(0, width, chunk):
            end = min(at + chunk, width)
            logits = self._step(ids[:, at:end], mask[:, :end], positions[:, at:end], cache)
        return _Batch(list(rows), cache, mask, ids[:, -1]), logits

    def _advance(
        self,
        batch: _Batch,
        logits: torch.Tensor,
        generators: list[torch.Generator],
        new: list[list[int]],
        on_token: Callable[[int, str], None] | None,
    ) -> _Batch | None:
        """Choose each row's next token; the rows that ended leave the batch (None: all did)."""
        chosen = self._choose(logits, [generators[r] for r in batch.rows] if generators else [])
        keep = []
        for j, row in enumerate(batch.rows):
            token = int(chosen[j])
            if token in self.end_ids:
                continue
            new[row].append(token)
            if on_token is not None:
                on_token(row, self._text(new[row]))
            if not (self.stop and self._stopped(new[row])) and len(new[row]) < self.max_new_tokens:
                keep.append(j)
        if not keep:
            return None
        batch.last = chosen
        if len(keep) < len(batch.rows):  # finished sequences leave the batch and the cache
            batch.select(keep)
        return batch

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_arg: cache}
        if self._last_logits:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        return out.logits[:, -1, :].float()

    def _choose(self, logits: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        if not generators:
            return logits.argmax(-1)
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:  # nucleus: the smallest set of tokens whose probability reaches top_p
            sorted_p, order = probs.sort(-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > self.top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.stack([torch.multinomial(probs[j].cpu(), 1, generator=g)[0] for j, g in enumerate(generators)]).to(
            logits.device
        )

    def _generator(self) -> torch.Generator:
        g = torch.Generator()
        if self.seed is not None:
            g.manual_seed(int(self.seed))
        else:
            g.seed()
        return g

    def _stopped(self, tokens: list[int]) -> bool:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in self.stop)

    def _text(self, tokens: list[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for s in self.stop:
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
        return text

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0


@dataclass
class DecodeStats:
    """What one `generate` call did: what the engine's stats and the live display report."""

    rows: int = 0
    slots: int = 0  # sequences decoding at once, at most
    tokens: int = 0  # new tokens, all rows
    steps: int = 0  # decoding steps (one token for every running row)
    prefills: int = 0  # prompt groups prefilled (the first, then one each time slots freed up)
    joins: int = 0  # ... of which joined sequences still decoding (continuous batching)
    kv_bytes: int = 0  # the KV cache's largest size
    seconds: float = 0.0
    finished: bool = False  # the call ended (its last report)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


#: told of every new token of the `generate` calls on this thread: (stats so far, the token's
#: row in the call, that row's text so far), then once more at the call's end (row -1)
Watcher = Callable[[DecodeStats, int, str], None]
_WATCHER: contextvars.ContextVar[Watcher | None] = contextvars.ContextVar("workbench_generation_watcher", default=None)


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Within it, `generate` on this thread reports its tokens to `watcher` (the engine's
    stats, the live display's tokens/s and streamed text); a report never changes the text."""
    token = _WATCHER.set(watcher)
    try:
        yield
    finally:
        _WATCHER.reset(token)


def current_watcher() -> Watcher | None:
    """This thread's watcher, for work that decodes on other threads (a streaming UDF's
    calls come on DuckDB's threads: it takes the watcher there with `watching`)."""
    return _WATCHER.get()


class _Batch:
    """The sequences decoding together: their original rows, KV cache, attention mask (the
    cache's positions, 0 for padding on the left) and each one's last token (fed next)."""

    def __init__(self, rows: list[int], cache: Any, mask: torch.Tensor, last: torch.Tensor):
        self.rows, self.cache, self.mask, self.last = rows, cache, mask, last

    def can_merge(self) -> bool:
        """Whether rows can join: plain per-layer keys and values (not a sliding window or a
        store of the offloaded runtime's own); else the batch drains before the next starts."""
        from transformers.cache_utils import DynamicLayer

        layers = getattr(self.cache, "layers", None) or []
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    def select(self, keep: list[int]) -> None:
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.last = self.mask[index], self.last[index]
        self.rows = [self.rows[j] for j in keep]
        # positions that are padding in every row left (a long prompt that ended) are dropped
        unused = int((self.mask.sum(0) == 0).long().cumprod(0).sum())
        if unused:
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]

    def merged(self, other: _Batch | None) -> _Batch:
        """This batch and `other` as one: the shorter one padded on the left (mask 0), so every
        row's next position is the last, then the rows of both concatenated."""
        if other is None:
            return self
        width = max(self.mask.shape[1], other.mask.shape[1])

        def left(t: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - t.shape[dim]
            if not missing:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([left(mine.keys, -2), left(theirs.keys, -2)])
            mine.values = torch.cat([left(mine.values, -2), left(theirs.values, -2)])
        self.mask = torch.cat([left(self.mask, 1), left(other.mask, 1)])
        self.last = torch.cat([self.last, other.last])
        self.rows = self.rows + other.rows
        return self

    def kv_bytes(self) -> int:
        layers = getattr(self.cache, "layers", None) or []
        return sum(
            t.numel() * t.element_size()
            for layer in layers
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
            if isinstance(t, torch.Tensor)
        )


def _end_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The tokens that end a sequence: the generation config's (one or several), else the tokenizer's."""
    found: list[Any] = []
    config = getattr(model, "generation_config", None)
    if config is not None and config.eos_token_id is not None:
        found.append(config.eos_token_id)
    if tokenizer.eos_token_id is not None:
        found.append(tokenizer.eos_token_id)
    flat: set[int] = set()
    for f in found:
        flat.update(int(x) for x in (f if isinstance(f, (list, tuple)) else [f]))
    return frozenset(flat)


def load(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None) -> Model:
    """A decoder language model from a transformers directory (WITH (task = 'generate'))."""
    from transformers import AutoModelForCausalLM

    from workbench.models.rerank import pretrained

    check_architecture(name, directory)
    _settings(name, options)  # before the weights load: a wrong option fails fast
    model, tokenizer = pretrained(directory, AutoModelForCausalLM, options)
    return adapter(name, model, tokenizer, options)


def check_architecture(name: str, directory: Path) -> None:
    config = json.loads((directory / "config.json").read_text())
    archs = config.get("architectures") or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise ModelLoadError(
            f"model '{name}': task='generate' needs a decoder language model (a *ForCausalLM); "
            f"{directory.name} is a {archs[0]}"
        )


def adapter(name: str, model: Any, tokenizer: Any, options: dict[str, Any]) -> Generator:
    """The generator over a causal LM module (in memory, or offloaded: models/offloaded.py)."""
    settings = _settings(name, options)
    if settings["chat"] and not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(f"model '{name}': chat = true needs a tokenizer with a chat template; this one has none")
    context = context_of(model.config, options)
    found = Generator(model, tokenizer, context=context, batch_size=options.get("batch_size"), **settings)
    found.allow_inf = bool(options.get("allow_inf", False))
    return found


def kv_bytes_per_row(config: Any, context: int) -> int:
    """Bytes of KV cache one sequence of `context` tokens holds (float32 keys and values)."""
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 1))
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 1))
    kv_heads = int(getattr(config, "num_key_value_heads", 0) or heads)
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 1))
    head_dim = int(getattr(config, "head_dim", 0) or hidden // heads)
    return 2 * layers * kv_heads * head_dim * context * 4


def context_of(config: Any, options: dict[str, Any]) -> int:
    """Tokens a sequence may hold (prompt and new tokens): the model's positions, or max_length."""
    limits = [getattr(config, key, None) for key in ("max_position_embeddings", "n_positions", "n_ctx")]
    found = [int(n) for n in limits if isinstance(n, int) and n > 0]
    context = min(found) if found else 2048
    if options.get("max_length"):
        context = min(context, int(options["max_length"]))
    return context


def _settings(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The decoding options, checked: one line for a wrong one."""

    def number(key: str, default: float, low: float, high: float | None = None) -> float:
        value = options.get(key, default)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ModelLoadError(f"model '{name}': {key} must be a number, not {value!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ModelLoadError(f"model '{name}': {key} must be {bound}, not {value!r}")
        return value

    new_tokens = options.get("max_new_tokens", DEFAULT_NEW_TOKENS)
    if not isinstance(new_tokens, int) or isinstance(new_tokens, bool) or new_tokens < 1:
        raise ModelLoadError(f"model '{name}': max_new_tokens must be a positive integer, not {new_tokens!r}")
    stop = options.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    if not all(isinstance(s, str) and s for s in stop):
        raise ModelLoadError(f"model '{name}': stop must be a string or a list of strings, not {options['stop']!r}")
    seed = options.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ModelLoadError(f"model '{name}': seed must be an integer, not {seed!r}")
    truncate = str(options.get("truncate", "error")).lower()
    if truncate not in TRUNCATE:
        raise ModelLoadError(f"model '{name}': truncate must be one of {', '.join(TRUNCATE)}, not {truncate!r}")
    return {
        "max_new_tokens": new_tokens,
        "temperature": number("temperature", 0.0, 0.0),
        "top_p": number("top_p", 1.0, 0.0, 1.0),
        "stop": stop,
        "seed": seed,
        "chat": str(options.get("chat", False)).lower() in ("true", "1", "yes"),
        "truncate": truncate,
    }
