"""What the optimizer knows of a model: a plain record, so rules and the cost model run
without torch or a loaded model (tests build profiles by hand; the engine builds them from
loaded models in workbench/engine/profiles.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.models.base import sql_input_type


@dataclass(frozen=True)
class LayerShape:
    """One layer of a chain the relational engine can run: `linear` (out, in), `embedding`
    (ids, dim), or `activation` (shape unused)."""

    kind: str
    shape: tuple[int, int] = (0, 0)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * 4  # float32 weights


@dataclass(frozen=True)
class ModelProfile:
    name: str
    input_kind: str  # text | ids | tensor
    output_type: str
    task: str = ""  # what the model does ('embed', 'generate', ...): which named options a call takes
    input_dim: int | None = None
    device: str = "cpu"
    batch_size: int | None = None  # fixed by the model's options
    tuned_batch_size: int | None = None  # the best measured so far
    max_batch: int = 128  # the largest batch the tuner tries
    weight_bytes: int = 0  # bytes the model holds in memory while it runs (offloaded: its window)
    layers: tuple[LayerShape, ...] = ()  # the relational chain; empty: none
    no_chain: str = ""  # why there is no relational chain
    hybrid_tail_bytes: int | None = None  # weights left to torch after the first layer; None: no split
    row_s: float = 1e-4  # torch seconds per row ...
    batch_s: float = 0.0  # ... and per batch
    char_s: float = 0.0  # text: seconds per character of input
    max_chars: float = 0.0  # text: characters past which inputs are truncated
    fingerprint: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def input_type(self) -> str:
        return sql_input_type(self.input_kind, self.input_dim)

    @property
    def linears(self) -> tuple[LayerShape, ...]:
        return tuple(layer for layer in self.layers if layer.kind == "linear")

    @property
    def macs(self) -> int:
        """Multiply-adds per input row of the chain."""
        return sum(a * b for a, b in (layer.shape for layer in self.linears))

    def default_batch(self, chosen: int | None = None) -> int:
        """The batch the cost model assumes: the one chosen, else the model's, else the best
        measured, else the largest the tuner tries."""
        return chosen or self.batch_size or self.tuned_batch_size or self.max_batch


@dataclass(frozen=True)
class RuntimeOption:
    """A runtime the model could run in besides eager torch (ONNX Runtime float32 or int8):
    its cost profile (measured once the form exists, else torch's scaled by a prior), the
    one-off seconds before it can run (export, quantization, loading) and the inputs its
    check against torch takes; `blocked` says why it cannot run (export or check failed)."""

    runtime: str  # 'onnx'
    precision: str  # 'float32' | 'int8'
    profile: ModelProfile
    setup_s: float = 0.0
    check_rows: int = 0
    blocked: str = ""
    forced: bool = False  # the model's options ask for this runtime (WITH (runtime = 'onnx'))
    reference: ModelProfile | None = None  # what the check compares with (None: eager torch)

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"


def runtime_key(fingerprint: str, runtime: str, precision: str) -> str:
    """The key what real runs taught is kept under, per runtime (torch keeps the fingerprint)."""
    return fingerprint if runtime == "torch" else f"{fingerprint}|{runtime}-{precision}"
