"""Fuzzed statements through the magic in a subprocess shell: no deaths, only short errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

DRIVER = Path(__file__).with_name("fuzz_driver.py")
STATEMENTS = int(os.environ.get("WORKBENCH_FUZZ_STATEMENTS", "5000"))


def test_fuzzed_statements_never_kill_the_process_and_get_short_errors(figures):
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(STATEMENTS), "20261121"], capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # a process death shows here
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["fuzzed statements"] = (
        counts["statements"],
        counts["internal"] + counts["duckdb_internal"] + counts["health_failures"],
        f"{counts['ok']} ran, {counts['short']} short errors, {counts['health_checks']} health checks",
    )
    assert counts["statements"] >= STATEMENTS
    assert counts["internal"] == 0 and counts["duckdb_internal"] == 0, proc.stderr[-3000:]
    assert counts["health_failures"] == 0 and counts["health_checks"] >= STATEMENTS // 250
