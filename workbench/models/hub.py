"""Models from the Hugging Face Hub: `CREATE MODEL m FROM 'hf://org/name[@revision]'`.

A hub name resolves to one commit and downloads into the standard Hugging Face cache (so
other tools share it): config, tokenizer and text files, and the weights, which are
safetensors unless the model allows pickle. The catalog stores the commit
(`hf://org/name@<sha>`), so a file database reopens exactly the snapshot it was made with,
from the cache and without a network request. The environment is read at call time
(`HF_ENDPOINT`, `HF_HOME`/`HF_HUB_CACHE`, `HF_TOKEN`, `HF_HUB_OFFLINE`): huggingface_hub
reads it once at import, and workbench/models/loading.py sets an offline default of its own
that must keep transformers local without blocking an explicit download here.

Downloads go file by file (weights last, so a snapshot whose weights are all present is
complete) and report progress as a line on stderr and, when the catalog has a session's
telemetry, as `download` events.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from workbench.errors import ModelLoadError
from workbench.models.offline import OFFLINE_DEFAULT, USER_OFFLINE

PREFIX = "hf://"
_SHA = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")
_BARE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(?:@\S+)?")
_FILE_SUFFIXES = {".safetensors", ".onnx", ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".json", ".txt"}
_TEXT = (".json", ".txt", ".model")  # configs, tokenizers (vocab.txt, merges.txt, spiece.model)
_PICKLE = (".bin", ".pt", ".pth")
_MODULE_DIR = re.compile(r"\d+_\w+")  # a sentence-transformers module folder (1_Pooling/)
_TRUE = {"1", "ON", "YES", "TRUE"}
_NET = threading.Lock()  # one download at a time: they lift huggingface_hub's offline switch


@dataclass(frozen=True)
class HubRef:
    """A hub model: its repo and revision (a branch, tag or commit; None for the default)."""

    repo: str
    revision: str | None = None
    bare: bool = False  # written without hf:// (so it may also have been meant as a local path)

    @property
    def source(self) -> str:
        return PREFIX + self.repo + (f"@{self.revision}" if self.revision else "")

    @property
    def label(self) -> str:
        rev = self.revision or "main"
        return f"{self.repo}@{rev[:7] if _SHA.fullmatch(rev) else rev}"


def is_hub(source: str) -> bool:
    return source.startswith(PREFIX)


def parse(name: str, path: str, revision: Any = None) -> HubRef | None:
    """The hub model `path` names: 'hf://org/name[@rev]', or a bare 'org/name[@rev]' when no
    such local path exists; None for a local path. `revision` is the model option."""
    if path.startswith(PREFIX):
        body, bare = path[len(PREFIX) :], False
    elif os.path.exists(os.path.expanduser(path)) or not _BARE.fullmatch(path):
        body, bare = "", False
    elif Path(path.split("@")[0]).suffix.lower() in _FILE_SUFFIXES:
        body, bare = "", False  # 'dir/model.onnx' is a missing file, not a repo
    else:
        body, bare = path, True
    if not body:
        if revision is not None:
            raise ModelLoadError(f"model '{name}': the revision option applies to hub models (hf://org/name)")
        return None
    repo, _, rev = body.partition("@")
    if repo.startswith(("datasets/", "spaces/")) or not _REPO.fullmatch(repo) or "--" in repo or ".." in repo:
        raise ModelLoadError(f"model '{name}': {path!r} is not a hub model name (hf://org/name or hf://org/name@rev)")
    if revision is not None:
        revision = str(revision)
        if rev and rev != revision:
            raise ModelLoadError(
                f"model '{name}': {path!r} names revision {rev!r} but the revision option {revision!r}"
            )
        rev = revision
    return HubRef(repo, rev or None, bare)


# -- the environment, read at call time ---------------------------------------------------
def cache_dir() -> Path:
    """The hub cache huggingface_hub would use with the environment as it is now."""
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def token() -> str | bool:
    """The user's token (HF_TOKEN, else the token file of HF_HOME); False for none."""
    env = os.environ
    found = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN")
    if found:
        return found.strip()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    path = Path(env.get("HF_TOKEN_PATH") or os.path.join(home, "token")).expanduser()
    try:
        return path.read_text().strip() or False
    except OSError:
        return False


def offline() -> bool:
    """Whether the user asked for offline mode (not the default loading.py sets)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(var)
        if value is None or (value == OFFLINE_DEFAULT and USER_OFFLINE.get(var) is None):
            continue
        if value.strip().upper() in _TRUE:
            return True
    return False


@contextmanager
def _online() -> Iterator[None]:
    """huggingface_hub refuses every request while its import-time offline flag is set (by
    loading.py's default): lift it for this download only."""
    from huggingface_hub import constants

    with _NET:
        saved = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = False
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = saved


# -- resolving and downloading ------------------------------------------------------------
def fetch(name: str, ref: HubRef, *, allow_pickle: bool = False, telemetry: Any = None) -> tuple[Path, HubRef]:
    """The local snapshot directory of `ref` and `ref` pinned to its commit, downloading
    what is missing. A commit already in the cache needs no network at all."""
    cache = cache_dir()
    storage = cache / ("models--" + ref.repo.replace("/", "--"))
    rev = ref.revision or "main"
    if _SHA.fullmatch(rev) and _complete(storage / "snapshots" / rev, allow_pickle):
        return (storage / "snapshots" / rev).resolve(), HubRef(ref.repo, rev)
    if offline():
        return _cached(name, ref, storage, allow_pickle, "HF_HUB_OFFLINE is set")
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub import errors as hf

    url, auth = endpoint(), token()
    try:
        with _online():
            info = HfApi(endpoint=url, token=auth).model_info(ref.repo, revision=rev, files_metadata=True)
            sha = str(info.sha)
            sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
            files = _select(name, ref, sizes, allow_pickle)
            snapshot = storage / "snapshots" / sha
            missing = [f for f in files if not (snapshot / f).exists()]
            progress = Progress(f"{ref.repo}@{sha[:7]}", missing, sizes, telemetry)
            for i, f in enumerate(missing):
                progress.start(f)
                hf_hub_download(
                    ref.repo,
                    f,
                    revision=sha,
                    cache_dir=str(cache),
                    endpoint=url,
                    token=auth,
                    tqdm_class=progress.bar,
                )
                if f == "config.json" and any(_is_weights(g) for g in missing[i + 1 :]):
                    _refuse_remote_code(name, ref, snapshot / f)  # before the weights come
            if missing:
                progress.finish()
    except (hf.GatedRepoError, hf.DisabledRepoError) as exc:
        raise _gated(name, ref, url, exc) from None
    except hf.RepositoryNotFoundError:
        where = f"no local path {ref.repo!r} and no" if ref.bare else "no"
        raise _error(name, f"{where} model repo {ref.repo!r} on {url} (a private repo needs HF_TOKEN)") from None
    except hf.RevisionNotFoundError:
        raise _error(name, f"{ref.repo} has no revision {rev!r} (a branch, tag or commit)") from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status in (401, 403):
            raise _gated(name, ref, url, exc) from None
        return _cached(name, ref, storage, allow_pickle, f"the hub at {url} answered HTTP {status}")
    except hf.HFValidationError:
        raise _error(name, f"{ref.repo!r} is not a valid hub repo name") from None
    except (OSError, hf.LocalEntryNotFoundError) as exc:  # connection refused, DNS, timeouts
        return _cached(name, ref, storage, allow_pickle, f"cannot reach the hub at {url} ({_reason(exc)})")
    except Exception as exc:  # httpx errors that are not OSErrors (e.g. a timeout)
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            return _cached(name, ref, storage, allow_pickle, f"cannot reach the hub at {url} ({_reason(exc)})")
        raise
    if not _SHA.fullmatch(rev):  # remember the branch's commit, as huggingface_hub does (offline use)
        _write_ref(storage, rev, sha)
    return (storage / "snapshots" / sha).resolve(), HubRef(ref.repo, sha)


def cached_dir(source: str, allow_pickle: bool = False) -> Path | None:
    """The complete cached snapshot a catalog source names, without any network; else None."""
    if not is_hub(source):
        return None
    repo, _, rev = source[len(PREFIX) :].partition("@")
    storage = cache_dir() / ("models--" + repo.replace("/", "--"))
    sha = _commit_of(storage, rev or "main")
    d = storage / "snapshots" / sha if sha else None
    return d.resolve() if d is not None and _complete(d, allow_pickle) else None


def _cached(name: str, ref: HubRef, storage: Path, allow_pickle: bool, why: str) -> tuple[Path, HubRef]:
    """The hub cannot answer: the snapshot the cache holds for the revision, or a clear error."""
    sha = _commit_of(storage, ref.revision or "main")
    if sha and _complete(storage / "snapshots" / sha, allow_pickle):
        if not _SHA.fullmatch(ref.revision or ""):
            note = f"workbench: {why}; using the cached {ref.repo}@{sha[:7]}"
            _write_line(sys.stderr, note[:300] + "\n")
        return (storage / "snapshots" / sha).resolve(), HubRef(ref.repo, sha)
    raise _error(name, f"{why}, and {ref.label} is not in the hub cache ({storage.parent})")


def _commit_of(storage: Path, rev: str) -> str | None:
    if _SHA.fullmatch(rev):
        return rev
    try:
        sha = (storage / "refs" / rev).read_text().strip()
    except OSError:
        return None
    return sha if _SHA.fullmatch(sha) else None


def _write_ref(storage: Path, rev: str, sha: str) -> None:
    path = storage / "refs" / rev
    try:
        if path.exists() and path.read_text().strip() == sha:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(sha)
        os.replace(tmp, path)
    except OSError:
        pass  # only the offline fallback for a branch name needs it


def _is_weights(path: str) -> bool:
    return path.endswith(".safetensors") or path.endswith(_PICKLE)


def _select(name: str, ref: HubRef, sizes: dict[str, int], allow_pickle: bool) -> list[str]:
    """The files a model needs, weights last: text files and weights at the top level or in a
    sentence-transformers module folder (not onnx/, openvino/, README, pickle unless allowed)."""

    def wanted(path: str) -> bool:
        folder, _, _ = path.rpartition("/")
        return folder == "" or (_MODULE_DIR.fullmatch(folder) is not None)

    files = [f for f in sizes if wanted(f)]
    text = sorted(f for f in files if f.endswith(_TEXT))
    safetensors = sorted(f for f in files if f.endswith(".safetensors"))
    pickled = sorted(f for f in files if f.endswith(_PICKLE) and "training_args" not in f)
    if safetensors:
        return text + safetensors
    if pickled and not allow_pickle:
        raise _error(
            name,
            f"{ref.label} has only pickle weights ({pickled[0]}), which can run code when loaded; "
            "add WITH (allow_pickle = true) if you trust the repo",
        )
    if not pickled:
        raise _error(name, f"{ref.label} has no model weights (.safetensors) to load")
    return text + pickled


def _complete(d: Path, allow_pickle: bool) -> bool:
    """A snapshot directory holds a whole model: downloads put weights last, so it is complete
    when its weights are (every shard an index names, or a weights file)."""
    if not d.is_dir():
        return False
    folders = [d, *(p for p in d.iterdir() if p.is_dir() and _MODULE_DIR.fullmatch(p.name))]
    for folder in folders:
        for index in folder.glob("*.index.json"):
            try:
                shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
            except (OSError, ValueError):
                return False
            if index.name.endswith(".safetensors.index.json") or allow_pickle:
                return all((folder / s).exists() for s in shards)
    suffixes = (".safetensors", *_PICKLE) if allow_pickle else (".safetensors",)
    return any(p.name.endswith(suffixes) and p.exists() for folder in folders for p in folder.iterdir())


def _refuse_remote_code(name: str, ref: HubRef, config: Path) -> None:
    try:
        auto_map = json.loads(config.read_text()).get("auto_map")
    except (OSError, ValueError):
        return  # the loader reports a bad config
    if auto_map:
        raise _error(name, f"{ref.label} asks to run its own Python code (auto_map); remote code is never run")


def _gated(name: str, ref: HubRef, url: str, exc: Exception) -> ModelLoadError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    how = "check HF_TOKEN" if token() else "set HF_TOKEN"
    return _error(
        name,
        f"{ref.repo} is gated or private (HTTP {status}): accept its terms at {url}/{ref.repo} and {how}",
    )


def _error(name: str, text: str) -> ModelLoadError:
    return ModelLoadError(f"model '{name}': {' '.join(text.split())}"[:300])


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None and str(exc).startswith(("Got:", "An error happened", "Cannot find")):
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:120]


# -- progress -----------------------------------------------------------------------------
def _interactive(stream: IO[str]) -> bool:
    return "ipykernel" in sys.modules or bool(getattr(stream, "isatty", lambda: False)())


def _write_line(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed stream never stops a download


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


class Progress:
    """One download's files and bytes: a line on stderr (redrawn in a terminal or notebook,
    every `quiet_interval` seconds elsewhere, and a last line), and `download` telemetry events
    (repo, files_done, files_total, bytes_done, bytes_total, finished).

    While a subscriber of `telemetry` draws downloads itself (the session's text progress bar,
    the `%%dlsql` live widget: listeners with `draws_downloads = True`), the stderr line would
    be a second copy of the same fact, so only the events go out (every `interval` seconds)."""

    def __init__(
        self,
        label: str,
        files: list[str],
        sizes: dict[str, int],
        telemetry: Any = None,
        stream: IO[str] | None = None,
        *,
        interval: float = 0.2,
        quiet_interval: float = 10.0,
    ):
        self.label, self.sizes, self.telemetry = label, sizes, telemetry
        self.stream = stream or sys.stderr
        self.files_total, self.files_done = len(files), 0
        self.bytes_total = sum(sizes.get(f, 0) for f in files)
        self._done_bytes = self._current = 0
        self._file = ""
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._last = 0.0
        self._redraw = _interactive(self.stream)
        self._quiet = self._drawn_elsewhere(telemetry)  # no stderr line: a subscriber draws the events
        self._interval = interval if self._redraw or self._quiet else quiet_interval
        self._drawn = False
        self.bar = self._bar_class()

    @property
    def bytes_done(self) -> int:
        return self._done_bytes + min(self._current, self.sizes.get(self._file, 0) or self._current)

    def start(self, file: str) -> None:
        with self._lock:
            if self._file:
                self.files_done += 1
                self._done_bytes += self.sizes.get(self._file, 0)
            self._file, self._current = file, 0
        self._report(force=self.files_done == 0)

    def add(self, n: float) -> None:
        with self._lock:
            self._current = max(0, self._current + int(n))
        self._report()

    def finish(self) -> None:
        with self._lock:
            if self._file:
                self.files_done += 1
                self._done_bytes += self.sizes.get(self._file, 0)
            self._file, self._current = "", 0
        seconds = time.perf_counter() - self._started
        text = f"downloaded {self.label}: {self.files_done} files, {_mb(self.bytes_done)} MB in {seconds:.1f} s"
        if not self._quiet:
            _write_line(self.stream, f"\r{text}\x1b[K\n" if self._redraw else text + "\n")
        self._emit(finished=True)

    def line(self) -> str:
        return (
            f"downloading {self.label}: {self.files_done}/{self.files_total} files, "
            f"{_mb(self.bytes_done)}/{_mb(self.bytes_total)} MB"
        )

    def _report(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        if self._redraw and not self._quiet:
            _write_line(self.stream, f"\r{self.line()}\x1b[K")
            self._drawn = True
        elif not self._quiet:
            _write_line(self.stream, self.line() + "\n")
        self._emit(finished=False)

    def _emit(self, finished: bool) -> None:
        if self.telemetry is not None:
            self.telemetry.emit(
                "download",
                repo=self.label,
                files_done=self.files_done,
                files_total=self.files_total,
                bytes_done=self.bytes_done,
                bytes_total=self.bytes_total,
                finished=finished,
            )

    @staticmethod
    def _drawn_elsewhere(telemetry: Any) -> bool:
        """Whether a subscriber of `telemetry` draws `download` events itself (it says so
        with a `draws_downloads` attribute)."""
        listeners = getattr(telemetry, "listeners", ()) if telemetry is not None else ()
        return any(getattr(listener, "draws_downloads", False) for listener in listeners)

    def _bar_class(self) -> type:
        """A tqdm stand-in for huggingface_hub: it counts the bytes written to disk."""
        progress = self

        class Bar:
            def __init__(self, *args: Any, **kwargs: Any):
                self.n = int(kwargs.get("initial") or 0)
                self.total = kwargs.get("total")
                if self.n:
                    progress.add(self.n)

            def __enter__(self) -> Bar:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def update(self, n: float | None = 1) -> None:
                self.n += int(n or 0)
                progress.add(n or 0)

            def update_transfer(self, n: float | None = 1) -> None:
                return None  # network bytes: `update` counts what reaches the disk

            def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
                return None

            set_transfer_postfix_str = set_description = set_description_str = set_postfix_str

            def refresh(self) -> None:
                return None

            def close(self) -> None:
                return None

        return Bar
