"""Kills and interrupts timed from what the victim reports, never from when it started.

A delay measured from a process's start (or a cell's) says nothing about what the victim
is doing: on a busy machine the kill lands while it still imports torch, calibrates the
cost model or plans, before the work the test is about. So:

- `Forks` runs a writer that prints one line per commit, in a process forked per trial
  from one that imported workbench once (a fresh interpreter spends seconds importing
  before it writes anything), and SIGKILLs it at a random point after its first commit;
- `Interrupt` sends this process a SIGINT a random moment after the query under test has
  shown progress: a model batch done (a telemetry `progress` event), or DuckDB working on
  the statement (threads other than the main one burning CPU since the query began).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

READY_S = 300  # a fresh interpreter importing workbench on a loaded machine
COMMIT_S = 120  # the first commit of a writer: opens the database, loads a model, writes
DUCKDB_BUSY_S = 0.05  # CPU its threads spent on a statement: DuckDB is running it

_SERVER = """
import os, sys, traceback
import workbench

{body}

print("ready", flush=True)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:  # the writer: reports each commit on a line of its own, until killed
        code = 1
        try:
            write(*line.split())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(code)
    print(f"child {{pid}}", flush=True)
    print(f"exit {{os.waitpid(pid, 0)[1]}}", flush=True)
"""


class Forks:
    """A process that imports workbench once and forks one writer per trial.

    `body` defines `write(*args)`, which must print (and flush) one line after each commit
    and must not finish before it is killed. Use as a context manager."""

    def __init__(self, path: Path, body: str, *argv: str):
        path.write_text(_SERVER.format(body=textwrap.dedent(body)))
        self.proc = subprocess.Popen(
            [sys.executable, str(path), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        line = self._next(READY_S, "start")
        assert line == "ready", line

    def __enter__(self) -> Forks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float, waiting_for: str) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the writer said nothing for {timeout} s ({waiting_for})") from None
        if line is None:
            raise AssertionError(f"the fork server died ({waiting_for})")
        return line

    def kill_after(self, args: list[object], commits: int, delay: float) -> list[str]:
        """Fork a writer on `args`; once it has reported `commits` (>= 1) commits, wait
        `delay` seconds, SIGKILL it, and return every commit it reported. Fails unless the
        SIGKILL is what ended it (a writer that crashed or finished was not killed writing)."""
        assert commits >= 1
        self.proc.stdin.write(" ".join(map(str, args)) + "\n")
        self.proc.stdin.flush()
        pid, done = None, []
        while pid is None or len(done) < commits:
            line = self._next(COMMIT_S, f"commit {len(done) + 1} of {commits}")
            if line.startswith("child "):
                pid = int(line.split()[1])
            elif line.startswith("exit "):
                raise AssertionError(
                    f"the writer ended (wait status {line.split()[1]}) after {len(done)} "
                    f"commits, before it was killed: {done[-3:]}"
                )
            else:
                done.append(line)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        while not (line := self._next(COMMIT_S, "the killed writer's exit")).startswith("exit "):
            done.append(line)  # printed after a commit, before the kill
        status = int(line.split()[1])
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
            f"the writer was not killed writing (wait status {status})"
        )
        return done


class Interrupt:
    """SIGINT to this process `delay` seconds after the query under test shows progress.

    The signal: a model batch done (a `progress` event of the telemetry given to `armed`),
    or with `on_duckdb`, DuckDB running the statement (for a statement without models, which
    reports no progress: its threads burning CPU). Run the query inside `armed(...)`;
    `sent_at` says when the SIGINT went (None: the query ended before its progress showed,
    and it is never interrupted later)."""

    def __init__(self, delay: float, *, on_duckdb: bool = False, timeout: float = 120):
        self.delay, self.timeout, self.watch_duckdb = delay, timeout, on_duckdb
        self.progress = threading.Event()
        self.sent_at: float | None = None
        self._done = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def on_event(self, event) -> None:
        if event.kind == "progress" and event.data.get("rows_done", 0) > 0:
            self.progress.set()

    @contextlib.contextmanager
    def armed(self, telemetry=None) -> Iterator[Interrupt]:
        unsubscribe = telemetry.subscribe(self.on_event) if telemetry is not None else None
        self._thread.start()
        try:
            yield self
        finally:
            with self._lock:  # the query returned: no interrupt from now on
                self._done = True
            self._thread.join()
            if unsubscribe is not None:
                unsubscribe()

    def _cpu_of_other_threads(self) -> float:
        """CPU seconds of this process's threads but the main one (which only waits while
        DuckDB runs a statement) and this watcher."""
        mine = {threading.main_thread().native_id, threading.get_native_id()}
        return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id not in mine)

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        before = self._cpu_of_other_threads() if self.watch_duckdb else 0.0
        while not self.progress.wait(0.01):
            if self._done or time.monotonic() > deadline:
                return
            if self.watch_duckdb and self._cpu_of_other_threads() - before >= DUCKDB_BUSY_S:
                self.progress.set()
        end = time.monotonic() + self.delay
        while time.monotonic() < end:
            if self._done:
                return
            time.sleep(min(0.01, max(end - time.monotonic(), 0)))
        with self._lock:
            if not self._done:
                self.sent_at = time.perf_counter()
                os.kill(os.getpid(), signal.SIGINT)
