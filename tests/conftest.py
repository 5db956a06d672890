"""Shared fixtures: a real engine session with the real datasets, and a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.testing.globalipapp import start_ipython

import workbench


@pytest.fixture(scope="session", autouse=True)
def _onnx_exports(tmp_path_factory):
    """Models exported to ONNX go to a directory of the test run's own, never the user's cache."""
    import os

    old = os.environ.get("WORKBENCH_ONNX_CACHE")
    os.environ["WORKBENCH_ONNX_CACHE"] = str(tmp_path_factory.mktemp("onnx"))
    yield
    if old is None:
        os.environ.pop("WORKBENCH_ONNX_CACHE", None)
    else:
        os.environ["WORKBENCH_ONNX_CACHE"] = old


@pytest.fixture(scope="session")
def data_session():
    """One session with pydoc and digits loaded (read-only use in tests)."""
    s = workbench.connect()
    s.sql("CALL load_dataset('pydoc'); CALL load_dataset('digits')")
    yield s
    s.close()


@pytest.fixture(scope="module")
def digits_session():
    """A session of the test module's own with digits loaded (its tests may change it)."""
    s = workbench.connect()
    s.sql("CALL load_dataset('digits')")
    yield s
    s.close()


@pytest.fixture
def session():
    s = workbench.connect()
    yield s
    s.close()


@pytest.fixture(scope="session")
def _ipython():
    ip = start_ipython()
    ip.run_line_magic("load_ext", "workbench")
    return ip


@pytest.fixture
def shell(_ipython):
    """The IPython shell with the extension loaded and a fresh in-memory database."""
    magic = _ipython.magics_manager.registry["DlsqlMagic"]
    magic.reset()
    magic.display_limit, magic.database, magic.batch_size = 20, ":memory:", 0
    _ipython.run_cell("%%dlsql\nCALL load_dataset('pydoc'); CALL load_dataset('digits')")
    return _ipython


def run(shell, cell: str):
    """Run a cell; return (success, result value or error)."""
    r = shell.run_cell(cell, store_history=False)
    return r.success, (r.result if r.success else r.error_in_exec)


# -- figures of the reliability suite, printed at the end of the run ---------------------------
FIGURES: dict[str, list] = {}


@pytest.fixture
def figures():
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(f"{'case':<40} {'trials':>7} {'failures':>9}  figure")
    for name, (trials, failures, figure) in FIGURES.items():
        terminalreporter.write_line(f"{name:<40} {trials:>7} {failures:>9}  {figure}")
