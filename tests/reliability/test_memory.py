"""A 512 MB memory budget: queries over 100,000 rows finish under it or stop with a clear error."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, torch, workbench
    from workbench.runtime.memory import rss
    wide = int(sys.argv[1])
    s = workbench.connect(memory_budget="512MB")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, wide))
    s.register_model("m", net, task="embed" if wide > 10 else "classify")
    s.sql("SELECT m(list_transform(range(64), j -> 1.0::FLOAT))")  # warm: model, tuner, DuckDB
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the present RSS
        f.write("5")
    baseline = rss()
    query = ("SELECT count(m(list_transform(range(64), j -> ((i * 31 + j * 7) % 101)::FLOAT))) AS n "
             "FROM range(100000) t(i)")
    try:
        n = s.sql(query).pl()["n"][0]
        outcome = {"completed": True, "rows": int(n)}
    except workbench.OutOfMemoryBudget as exc:
        outcome = {"completed": False, "error": str(exc)}
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024  # peak RSS since the reset, in bytes
    outcome.update(baseline=baseline, peak=peak, alive=s.sql("SELECT 1 AS x").pl()["x"][0] == 1)
    print(json.dumps(outcome))
""")

BUDGET = 512 * 2**20


def run_case(wide):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(wide)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]  # never killed by the operating system
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_small_outputs_complete_under_the_budget(figures):
    out = run_case(10)
    grown = out["peak"] - out["baseline"]
    figures["memory: 100k rows, 10 outputs"] = (
        1,
        0 if out["completed"] else 1,
        f"peak {grown / 2**20:,.0f} MB over baseline, budget 512 MB",
    )
    assert out["completed"] and out["rows"] == 100_000 and out["alive"]
    assert grown <= BUDGET * 1.10


def test_huge_outputs_stop_with_a_clear_error(figures):
    out = run_case(8192)  # 100,000 x 8,192 floats = 3.3 GB of outputs
    grown = out["peak"] - out["baseline"]
    figures["memory: 100k rows, 8192 outputs"] = (
        1,
        0 if not out["completed"] else 1,
        f"stopped at {grown / 2**20:,.0f} MB over baseline",
    )
    assert not out["completed"] and "out of memory budget" in out["error"] and out["alive"]
    assert len(out["error"]) < 400
