"""Run a transformers model whose weights exceed the memory budget, one unit at a time.

The model is built on the `meta` device from its config: no weight is in memory. Its
*units* are the blocks of its longest `nn.ModuleList` (BERT's `encoder.layer`, GPT-2's `h`:
any encoder or decoder made of repeated blocks) and every other top-level child that holds
weights (embeddings, final norm, pooler). A forward pre-hook on each unit reads its tensors
from the safetensors files into freshly allocated host memory (plain positional reads at the
offsets in the file header: only the bytes of that unit are ever touched, and the page
mapping of a multi-GB file never counts against the process), and a forward hook drops them
again once the unit has run. While one unit computes, a reader thread loads the next
(reads and torch both release the GIL), as long as both fit the budget's window; a unit too
big to share the window is loaded after the previous one is dropped.

Every unit fits: a tensor bigger than `piece_limit` (by default a quarter of the window; the
schedule's cost model picks it, runtime/schedule.py) is split before the schedule is built. An
embedding table is read only at the rows the batch needs (one positional read per distinct
token id), and a Linear (an LM head over a large vocabulary, or a wide feed-forward layer in a
small window) is streamed in blocks of output rows, the next block read while this one
computes: its output is the concatenation of the blocks' outputs (the LM head computed in
vocabulary chunks).

On CUDA the same runtime stages each unit in pinned host memory and copies it to the device
on a separate stream, so the copy of the next unit overlaps the current one's kernels.

Per unit it records bytes read, seconds waiting for IO and seconds computing, and emits
them on the telemetry stream (`bytes` disk -> cpu [-> cuda], and `layer` events).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import OutOfMemoryBudget

_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F64": torch.float64,
}


@dataclass(frozen=True)
class Entry:
    file: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_index(directory: str | Path) -> dict[str, Entry]:
    """Tensor name -> where its bytes are, from the headers of every .safetensors file."""
    index: dict[str, Entry] = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            lo, hi = info["data_offsets"]
            index[name] = Entry(str(path), _DTYPES[info["dtype"]], tuple(info["shape"]), 8 + n + lo, 8 + n + hi)
    return index


def read_into(entry: Entry, fd: int, slot: memoryview, offset: int) -> torch.Tensor:
    """The tensor's bytes read straight into `slot` at `offset`; the tensor is a view of them."""
    n = entry.nbytes
    done = 0
    while done < n:
        got = os.preadv(fd, [slot[offset + done : offset + n]], entry.start + done)
        if got <= 0:
            raise OSError(f"{entry.file}: file ends before the tensor's bytes")
        done += got
    count = n // torch.empty((), dtype=entry.dtype).element_size()
    flat = (
        torch.frombuffer(slot, dtype=entry.dtype, count=count, offset=offset)
        if count
        else torch.empty(0, dtype=entry.dtype)
    )
    return flat.reshape(entry.shape)


def _layout(entries: dict[str, Entry]) -> dict[str, int]:
    """Offsets of a unit's tensors inside a ring slot (64-byte aligned)."""
    out, at = {}, 0
    for key, e in entries.items():
        out[key] = at
        at += -(-e.nbytes // 64) * 64
    return out


@dataclass
class UnitStats:
    name: str
    bytes: int = 0
    io_wait_s: float = 0.0  # compute waited this long for the unit's weights
    read_s: float = 0.0  # the reader's time on it (overlapped or not)
    compute_s: float = 0.0


@dataclass
class RunStats:
    units: list[UnitStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(u.bytes for u in self.units)

    @property
    def io_wait_s(self) -> float:
        return sum(u.io_wait_s for u in self.units)

    @property
    def read_s(self) -> float:
        return sum(u.read_s for u in self.units)

    @property
    def compute_s(self) -> float:
        return sum(u.compute_s for u in self.units)


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's units in forward order: top-level children with weights, the repeated
    blocks of the longest ModuleList taking its place."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 1]
    if not lists:
        raise OutOfMemoryBudget("offloading needs a model made of repeated blocks (an nn.ModuleList of layers)")
    blocks_name, blocks = max(lists, key=lambda x: len(x[1]))
    units: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if child is blocks:
                units.extend((f"{full}.{i}", b) for i, b in enumerate(blocks))
            elif blocks_name.startswith(full + "."):
                walk(full + ".", child)  # the block list is deeper inside: keep its siblings apart
            elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
                units.append((full, child))

    walk("", model)
    own = [n for n, _ in model.named_parameters(recurse=False)]
    if own:
        raise OutOfMemoryBudget(f"offloading cannot place the model's own parameters {own[:2]}")
    return units


@dataclass(frozen=True)
class Piece:
    """A tensor too big for the window, read in parts: `rows` (an embedding table read at the
    token ids of the batch) or `blocks` (a Linear's weight read `block_rows` rows at a time)."""

    name: str
    how: str
    entry: Entry
    block_rows: int
    block_bytes: int
    bias_bytes: int
    bias: Entry | None = None


def read_rows(entry: Entry, fd: int, rows: list[int]) -> torch.Tensor:
    """Rows of a 2-D tensor in the file, one positional read each (in the order given)."""
    width = entry.shape[1]
    row = entry.nbytes // entry.shape[0]
    out = torch.empty((len(rows), width), dtype=entry.dtype)
    view = out.numpy().view(np.uint8).reshape(-1).data if out.numel() else memoryview(b"")
    for i, r in enumerate(rows):
        if not 0 <= r < entry.shape[0]:
            raise IndexError(f"row {r} is outside the table of {entry.shape[0]} rows")
        at, done = entry.start + r * row, 0
        while done < row:
            got = os.preadv(fd, [view[i * row + done : (i + 1) * row]], at + done)
            if got <= 0:
                raise OSError(f"{entry.file}: file ends before the tensor's bytes")
            done += got
    return out


def read_block(entry: Entry, fd: int, first: int, count: int) -> torch.Tensor:
    """`count` consecutive rows of a 2-D tensor from row `first`: one contiguous read."""
    row = entry.nbytes // entry.shape[0]
    start = entry.start + first * row
    part = Entry(entry.file, entry.dtype, (count, *entry.shape[1:]), start, start + count * row)
    buf = bytearray(max(part.nbytes, 1))
    return read_into(part, fd, memoryview(buf), 0)


class _PieceForward:
    """The forward of a split embedding or Linear: reads what it needs, computes, keeps nothing."""

    def __init__(
        self,
        piece: Piece,
        fd: Callable[[str], int],
        reader: ThreadPoolExecutor,
        record: Callable[[UnitStats], None],
    ):
        self.piece, self.fd, self.reader, self.record = piece, fd, reader, record

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        piece, fd = self.piece, self.fd(self.piece.entry.file)
        device = x.device
        if piece.how == "rows":
            ids = x.detach().to("cpu").reshape(-1)
            wanted, inverse = torch.unique(ids, return_inverse=True)
            table = read_rows(piece.entry, fd, wanted.tolist()).to(device)
            read = table.numel() * table.element_size()
            out = table[inverse].reshape(*x.shape, table.shape[-1])
        else:
            total = piece.entry.shape[0]
            bias = None
            if piece.bias is not None:
                bias = read_block(piece.bias, self.fd(piece.bias.file), 0, piece.bias.shape[0]).to(device)
            starts = list(range(0, total, piece.block_rows))
            reader = self.reader

            def load(first: int) -> torch.Tensor:
                return read_block(piece.entry, fd, first, min(piece.block_rows, total - first))

            parts = []
            pending = reader.submit(load, starts[0])
            for k, first in enumerate(starts):
                block = pending.result().to(device)
                if k + 1 < len(starts):  # the next block is read while this one computes
                    pending = reader.submit(load, starts[k + 1])
                b = None if bias is None else bias[first : first + block.shape[0]]
                parts.append(torch.nn.functional.linear(x, block, b))
                del block
            out = torch.cat(parts, dim=-1)
            read = piece.entry.nbytes + piece.bias_bytes
        self.record(UnitStats(piece.name, read, read_s=time.perf_counter() - t0))
        return out


class Offloaded:
    """A meta-device transformers model whose units stream from safetensors on each forward.

    `budget`: bytes of host (or device) memory for weights in flight plus activations.
    Raises OutOfMemoryBudget before anything is loaded when the largest unit plus the
    activations cannot fit.
    """

    def __init__(
        self,
        model: nn.Module,
        directory: str | Path,
        budget: int,
        *,
        device: str = "cpu",
        activation_bytes: int = 0,
        telemetry: Any = None,
        piece_limit: int | None = None,
    ):
        self.model = model.eval()
        self.device = device
        self.budget = budget
        self.telemetry = telemetry
        index = read_index(directory)
        if not index:
            raise OutOfMemoryBudget(f"{directory} has no .safetensors weights to stream")
        self.units = _units(model)
        self.plan: list[tuple[str, nn.Module, dict[str, Entry]]] = []
        names = set(index)
        # a tied tensor (an LM head sharing the input embeddings) is stored under one of its names
        aliases: dict[int, list[str]] = {}
        for full, p in model.named_parameters(remove_duplicate=False):
            aliases.setdefault(id(p), []).append(full)
        for unit_name, unit in self.units:
            entries = {}
            for key, t in [*unit.named_parameters(), *unit.named_buffers()]:
                full = f"{unit_name}.{key}"
                found = _find(full, names) or next(
                    (f for a in aliases.get(id(t), []) if (f := _find(a, names)) is not None), None
                )
                if found is None:
                    continue  # a buffer the checkpoint does not keep (position ids): built by the model
                entries[key] = index[found]
            self.plan.append((unit_name, unit, entries))
        self.window = budget - activation_bytes - overhead(budget)
        self._fds: dict[str, int] = {}
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="workbench-offload")
        self.pieces = self._split(piece_limit)
        self._materialize_missing_buffers()
        # a unit with nothing to read (a rotary embedding's computed frequencies) stays in memory
        # and out of the schedule: the schedule prefetches in forward order, which such a unit
        # (registered after the layers, called before them) would break
        self.plan = [p for p in self.plan if p[2]]
        self.layouts = [_layout(ent) for _, _, ent in self.plan]
        self.unit_bytes = [sum(-(-e.nbytes // 64) * 64 for e in ent.values()) for _, _, ent in self.plan]
        self.total_bytes = sum(self.unit_bytes) + sum(p.entry.nbytes + p.bias_bytes for p in self.pieces)
        # a streamed Linear's block and the next one are in memory next to its unit and the one prefetched
        self.window -= 2 * max((p.block_bytes for p in self.pieces), default=0)
        biggest = max(self.unit_bytes, default=0)
        if biggest > self.window:
            name = self.plan[self.unit_bytes.index(biggest)][0]
            self._reader.shutdown(wait=False)
            raise OutOfMemoryBudget(
                f"the model cannot run even one layer at a time in this budget: its largest unit ({name}) "
                f"holds {biggest / 1e6:,.1f} MB, the activations need {activation_bytes / 1e6:,.1f} MB and "
                f"{overhead(budget) / 1e6:,.0f} MB is reserved for the runtime, over the budget of "
                f"{budget / 1e6:,.1f} MB"
            )
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self.last = RunStats()
        self._running: dict[int, UnitStats] = {}  # the stats of the units now computing
        self._copy_stream = torch.cuda.Stream() if device.startswith("cuda") else None
        # On CUDA the ring is one pinned staging slot per unit in flight, each the size of the
        # largest unit (pinning is slow, so it is done once). On the CPU each unit gets its own
        # anonymous mapping of exactly its size, unmapped as soon as the unit's tensors are
        # dropped: what the weights hold is what is in flight, whatever the allocator does.
        if self._copy_stream is not None:
            slot = max(self.unit_bytes)
            self._ring = [
                torch.empty(slot, dtype=torch.uint8, pin_memory=True).numpy().data for _ in range(self.in_flight_limit)
            ]
        else:
            self._ring = []
        self._pool: list[mmap.mmap] = []
        self._slots: dict[int, mmap.mmap] = {}
        repeated = [b for (name, _, _), b in zip(self.plan, self.unit_bytes) if name.rsplit(".", 1)[-1].isdigit()]
        self._reuse_cap = max(repeated or self.unit_bytes or [0])
        for i, (_, unit, _) in enumerate(self.plan):
            unit.register_forward_pre_hook(self._pre_hook(i))
            unit.register_forward_hook(self._post_hook(i))

    @property
    def copies_on_own_stream(self) -> bool:
        """Host-to-device copies run on a CUDA stream of their own, overlapping compute."""
        return self._copy_stream is not None

    @property
    def in_flight_limit(self) -> int:
        """Units that may be in memory at once: the one computing and the next one, if both fit."""
        pairs = [a + b for a, b in zip(self.unit_bytes, self.unit_bytes[1:])]
        return 2 if pairs and max(pairs) <= self.window else 1

    def _split(self, limit: int | None) -> list[Piece]:
        """Take every embedding table and Linear bigger than `limit` out of its unit: the
        table is read at the rows a batch needs, the Linear streamed in blocks of rows."""
        if limit is None:
            limit = max(self.window // 4, 1)
        self.piece_limit = limit
        pieces: list[Piece] = []
        for unit_name, unit, entries in self.plan:
            for sub_name, sub in unit.named_modules():
                prefix = f"{sub_name}." if sub_name else ""
                entry = entries.get(f"{prefix}weight")
                if entry is None or entry.nbytes <= limit or len(entry.shape) != 2:
                    continue
                full = f"{unit_name}.{prefix}weight"
                if isinstance(sub, nn.Embedding) and sub.max_norm is None:
                    piece = Piece(full, "rows", entry, 0, 0, 0)
                elif isinstance(sub, nn.Linear):
                    bias = entries.get(f"{prefix}bias")
                    row = max(entry.nbytes // entry.shape[0], 1)
                    rows = max(1, min(entry.shape[0], max(limit // 2, row) // row))
                    piece = Piece(full, "blocks", entry, rows, rows * row, bias.nbytes if bias else 0, bias)
                else:
                    continue
                entries.pop(f"{prefix}weight")
                if piece.bias is not None:
                    entries.pop(f"{prefix}bias")
                sub.forward = _PieceForward(piece, self._fd, self._reader, lambda u: self.last.units.append(u))
                pieces.append(piece)
        return pieces

    def _materialize_missing_buffers(self) -> None:
        """Buffers the checkpoint does not store (e.g. position ids) are computed on the CPU
        once from the config, exactly as the model's constructor would."""
        for _, unit, entries in self.plan:
            for key, buf in list(unit.named_buffers()):
                if key not in entries and buf.is_meta:
                    parent, _, attr = key.rpartition(".")
                    owner = unit.get_submodule(parent) if parent else unit
                    if attr == "position_ids":
                        owner.register_buffer(
                            attr, torch.arange(buf.shape[-1]).expand(buf.shape).to(self.device), persistent=False
                        )
                    elif attr == "token_type_ids":
                        owner.register_buffer(
                            attr, torch.zeros(buf.shape, dtype=buf.dtype, device=self.device), persistent=False
                        )
                    else:
                        owner.register_buffer(attr, self._computed_buffer(owner, key, attr), persistent=False)

    def _computed_buffer(self, owner: nn.Module, key: str, attr: str) -> torch.Tensor:
        """A buffer its module computes from the config (a rotary embedding's inverse
        frequencies): the module built again on the CPU, which holds no weights."""
        try:
            fresh = type(owner)(config=self.model.config)
            value = getattr(fresh, attr)
        except Exception:  # noqa: BLE001 - any module that cannot be rebuilt from the config alone
            raise OutOfMemoryBudget(f"the checkpoint has no values for buffer {key}") from None
        if not isinstance(value, torch.Tensor) or value.is_meta or any(True for _ in fresh.parameters()):
            raise OutOfMemoryBudget(f"the checkpoint has no values for buffer {key}")
        return value.to(self.device)

    # -- loading ---------------------------------------------------------------------------
    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY)
        return fd

    def _load(self, i: int) -> tuple[dict[str, torch.Tensor], float]:
        t0 = time.perf_counter()
        layout = self.layouts[i]
        slot = self._ring[i % len(self._ring)] if self._ring else memoryview(self._mapping(i))
        host = {k: read_into(e, self._fd(e.file), slot, layout[k]) for k, e in self.plan[i][2].items()}
        if self._copy_stream is not None:  # host -> device on the copy stream, overlapping compute
            with torch.cuda.stream(self._copy_stream):
                tensors = {k: t.to(self.device, non_blocking=True) for k, t in host.items()}
                done = torch.cuda.Event()
                done.record(self._copy_stream)
            done.synchronize()
        else:
            tensors = host
        return tensors, time.perf_counter() - t0

    def _submit(self, i: int) -> None:
        if 0 <= i < len(self.plan) and i not in self._pending:
            self._pending[i] = self._reader.submit(self._load, i)

    def _pre_hook(self, i: int) -> Callable[..., None]:
        def hook(unit: nn.Module, _args: Any) -> None:
            stats = UnitStats(self.plan[i][0], self.unit_bytes[i])
            t0 = time.perf_counter()
            with self._lock:
                for k in [k for k in self._pending if k != i]:
                    # the model called units in another order than expected: a prefetched
                    # unit's slot may be the one unit i needs, so it is dropped, not kept
                    self._pending.pop(k).result()
                self._submit(i)
                future = self._pending.pop(i)
            tensors, stats.read_s = future.result()
            stats.io_wait_s = time.perf_counter() - t0
            unit.load_state_dict(tensors, strict=False, assign=True)
            if self.in_flight_limit == 2:  # prefetch the next unit while this one computes
                with self._lock:
                    self._submit(i + 1)
            stats.compute_s = -time.perf_counter()
            self.last.units.append(stats)
            self._running[i] = stats

        return hook

    def _mapping(self, i: int) -> mmap.mmap:
        """Unit i's host memory: a released mapping that fits (its pages are already there, so
        nothing is faulted or zeroed again), or a new one of the unit's size."""
        need = max(self.unit_bytes[i], 1)
        with self._lock:
            fitting = [m for m in self._pool if len(m) >= need]
            mm = min(fitting, key=len) if fitting else None
            if mm is not None:
                self._pool.remove(mm)
            self._slots[i] = mm = mm or mmap.mmap(-1, need)
        return mm

    def _release(self, i: int) -> None:
        """After unit i ran: keep its mapping for the next units if it is block-sized and
        fewer than the in-flight count are kept; a bigger one (embeddings) is unmapped."""
        with self._lock:
            mm = self._slots.pop(i, None)
            if mm is not None and len(mm) <= self._reuse_cap and len(self._pool) < self.in_flight_limit:
                self._pool.append(mm)
            # otherwise dropped here: unmapped once the unit's last tensor is gone

    def _post_hook(self, i: int) -> Callable[..., None]:
        def hook(unit: nn.Module, _args: Any, _out: Any) -> None:
            if self._copy_stream is not None:
                torch.cuda.current_stream().synchronize()
            stats = self._running.pop(i)
            stats.compute_s += time.perf_counter()
            for key in self.plan[i][2]:  # back to meta: the unit's weights are freed here
                parent, _, attr = key.rpartition(".")
                owner = unit.get_submodule(parent) if parent else unit
                old = getattr(owner, attr)
                meta = torch.empty(old.shape, dtype=old.dtype, device="meta")
                if isinstance(old, nn.Parameter):
                    setattr(owner, attr, nn.Parameter(meta, requires_grad=False))
                else:
                    owner.register_buffer(attr, meta)
            self._release(i)
            if self.in_flight_limit == 1:
                with self._lock:
                    self._submit(i + 1)
            if self.telemetry is not None and self.telemetry.active:
                self.telemetry.emit("bytes", source="disk", target="cpu", bytes=stats.bytes)
                if self.device != "cpu":
                    self.telemetry.emit("bytes", source="cpu", target=self.device, bytes=stats.bytes)
                self.telemetry.emit(
                    "layer",
                    name=stats.name,
                    bytes=stats.bytes,
                    io_wait_s=stats.io_wait_s,
                    read_s=stats.read_s,
                    compute_s=stats.compute_s,
                )

        return hook

    # -- running ---------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.last = RunStats()
        self._running = {}
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                return self.model(*args, **kwargs)
        finally:
            with self._lock:  # a failed forward leaves no prefetched unit behind
                for f in self._pending.values():
                    f.cancel()
                self._pending.clear()
            self.last.seconds = time.perf_counter() - t0

    def close(self) -> None:
        self._reader.shutdown(wait=True)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._ring = []
        self._pool.clear()
        self._slots.clear()


def overhead(budget: int) -> int:
    """What a query costs besides weights and activations (torch's thread pools and scratch
    buffers, the tokenizer's and Arrow's buffers: 30-50 MB measured): kept out of the window."""
    return min(48 * 2**20, budget // 3)


def _find(name: str, names: set[str]) -> str | None:
    """The checkpoint's key for a module tensor (checkpoints may add or drop a model prefix)."""
    if name in names:
        return name
    for key in names:
        if key.endswith("." + name):
            return key
    parts = name.split(".", 1)
    if len(parts) == 2 and parts[1] in names:
        return parts[1]
    return None


def build(
    directory: str | Path,
    budget: int,
    *,
    device: str = "cpu",
    activation_bytes: int = 0,
    telemetry: Any = None,
    causal_lm: bool = False,
    piece_limit: int | None = None,
) -> Offloaded:
    """An offloaded model for a transformers directory (config.json + *.safetensors); with
    `causal_lm`, the language model with its head (for generation)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
    with torch.device("meta"):
        model = (AutoModelForCausalLM if causal_lm else AutoModel).from_config(config)
    return Offloaded(
        model,
        directory,
        budget,
        device=device,
        activation_bytes=activation_bytes,
        telemetry=telemetry,
        piece_limit=piece_limit,
    )


def checkpoint_bytes(directory: str | Path) -> int:
    return sum(e.nbytes for e in read_index(directory).values())


def write_random_checkpoint(
    config: Any, directory: str | Path, seed: int = 0, std: float = 0.02, *, causal_lm: bool = False
) -> int:
    """Save a model of `config` with random weights as safetensors, one tensor at a time
    (a model of several GB never needs to fit in memory). Returns the bytes written. With
    `causal_lm`, the language model with its head (a tied head is stored once, as transformers does)."""
    from transformers import AutoModel, AutoModelForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        skeleton = (AutoModelForCausalLM if causal_lm else AutoModel).from_config(config)
    if causal_lm:
        config.architectures = [type(skeleton).__name__]
    config.save_pretrained(directory)
    seen: set[int] = set()
    tensors = []
    for k, t in skeleton.state_dict(keep_vars=True).items():
        if id(t) not in seen:  # tied tensors: the first name only
            seen.add(id(t))
            tensors.append((k, t))
    header: dict[str, Any] = {}
    offset = 0
    for key, t in tensors:
        n = t.numel() * t.element_size()
        header[key] = {
            "dtype": "F32" if t.dtype == torch.float32 else "I64",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    gen = torch.Generator().manual_seed(seed)
    with open(directory / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for key, t in tensors:
            if t.dtype == torch.int64:
                value = torch.arange(t.shape[-1]).expand(t.shape).contiguous()
            elif key.endswith(("LayerNorm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight", "norm.weight")):
                value = torch.ones(t.shape)
            elif key.endswith("bias") or "LayerNorm" in key or key.split(".")[-2].startswith("ln"):
                value = torch.zeros(t.shape)
            else:
                value = torch.randn(t.shape, generator=gen) * std
            f.write(np.ascontiguousarray(value.numpy()).tobytes())
    return offset
