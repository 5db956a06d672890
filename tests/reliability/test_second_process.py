"""A second process opening the same database file gets a clear error at once, never a hang."""

import subprocess
import sys
import time

import pytest

import workbench
from workbench.errors import ExecutionError


def test_second_process_gets_a_clear_error_within_a_second(tmp_path, figures):
    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        start = time.perf_counter()
        with pytest.raises(ExecutionError, match="another process") as info:
            workbench.connect(str(db))
        took = time.perf_counter() - start
        figures["second process"] = (1, 0 if took < 1 else 1, f"clear error after {took * 1000:.0f} ms")
        assert took < 1.0 and len(str(info.value)) < 600
    finally:
        holder.kill()
