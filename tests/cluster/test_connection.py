"""Connecting sessions to a cluster, without starting one: the setting, the magic's option,
and that a session without a cluster never imports Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench.engine.config import Config
from workbench.errors import ClusterError, ParameterError
from workbench.jupyter import command

ROOT = Path(__file__).resolve().parents[2]


def test_a_session_without_a_cluster_never_imports_ray():
    code = (
        "import sys, workbench\n"
        "s = workbench.connect()\n"
        "s.sql(\"CALL load_dataset('digits')\")\n"
        "s.sql('SELECT digits(pixels).label FROM digits WHERE id < 5').pl()\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.parametrize(
    "value, spec",
    [
        ("ray://10.0.0.5:10001", "ray://10.0.0.5:10001"),
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        ("AUTO", "auto"),
        ("local", "local"),
        ("none", None),
    ],
)
def test_set_cluster_keeps_the_spec_in_the_config(value, spec):
    config, shown = Config().with_setting("cluster", value)
    assert config.cluster == spec
    assert shown == f"cluster = {spec or 'none'}"


def test_a_bad_cluster_spec_is_one_clear_error():
    with pytest.raises(ParameterError, match="cluster must be"):
        Config().with_setting("cluster", "http://somewhere")


def test_a_cluster_nobody_answers_is_a_cluster_error_and_the_session_stays_local():
    with workbench.connect() as s:
        with pytest.raises(ClusterError, match="cannot connect|one cluster at a time"):
            s.sql("SET cluster = '127.0.0.1:1'")
        assert s.cluster is None and s.engine.cluster is None


def test_the_magic_takes_a_cluster():
    cmd = command.parse("--cluster local", "SELECT 1")
    assert cmd.cluster == "local" and cmd.sql == "SELECT 1"
    assert command.parse("--cluster none", "SELECT 1").cluster == "none"
    with pytest.raises(command.UsageError, match="--cluster"):
        command.parse("--cluster ftp://x", "SELECT 1")
