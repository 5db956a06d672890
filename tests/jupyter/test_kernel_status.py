"""The kernel's status stays busy while a `%%dlsql` cell runs with its live widget.

A real kernel (jupyter_client) runs the cell; when the widget's `comm_open` arrives we do what
JupyterLab 4.4+ does ('Kernel Comms over subshells'): ask for a subshell on the control channel.
ipykernel answers that with `status: busy`/`idle` on iopub, and JupyterLab shows any iopub
status as the kernel's. We record every iopub status between the cell's `busy` and its own
`idle`: none may be `idle` (workbench.jupyter.live.KernelStaysBusy).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

SETUP = (
    "import workbench\ns = %dlsql --session\n"
    "s.sql(\"CALL load_dataset('pydoc'); ALTER MODEL minilm SET cache = 'off'\")"
)
CELL = "%%dlsql\nSELECT count(minilm(body)) AS n FROM pydoc WHERE id < 200"
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        for code in ("%load_ext workbench", SETUP):
            run(kc, code)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str, on_comm_open: Any = None) -> list[tuple[str, str | None, str]]:
    """Execute `code`; returns (execution_state, parent msg_type, parent msg_id == the cell's)
    of every iopub status, in order, until the cell's own idle. Fails on an error output."""
    msg_id = kc.execute(code)
    statuses: list[tuple[str, str | None, str]] = []
    errors = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=TIMEOUT_S)
        parent = msg["parent_header"] or {}
        kind = msg["msg_type"]
        if kind == "status":
            state = msg["content"]["execution_state"]
            statuses.append((state, parent.get("msg_type"), "cell" if parent.get("msg_id") == msg_id else "other"))
            if state == "idle" and parent.get("msg_id") == msg_id:
                break
        elif kind == "error" and parent.get("msg_id") == msg_id:
            errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        elif kind == "comm_open" and on_comm_open is not None:
            on_comm_open(msg)
    else:
        pytest.fail(f"cell did not finish within {TIMEOUT_S} s: {code!r}; statuses {statuses}")
    assert not errors, f"cell failed: {errors}"
    return statuses


def ask_for_subshell(kc: Any) -> Any:
    """What JupyterLab does when the kernel opens a widget's comm (once per comm target)."""
    sent: list[str] = []

    def on_comm_open(msg: Any) -> None:
        if not sent:
            req = kc.session.msg("create_subshell_request", {})
            kc.control_channel.send(req)
            sent.append(req["header"]["msg_id"])

    return on_comm_open, sent


def while_running(statuses: list[tuple[str, str | None, str]]) -> list[tuple[str, str | None, str]]:
    """The statuses after the cell's busy and before its idle."""
    start = statuses.index(("busy", "execute_request", "cell"))
    return statuses[start + 1 : -1]


def test_status_stays_busy_while_a_widget_cell_runs(kernel):
    on_comm_open, sent = ask_for_subshell(kernel)
    statuses = run(kernel, CELL, on_comm_open)
    assert sent, f"the live widget never opened its comm (no comm_open); statuses {statuses}"
    during = while_running(statuses)
    idle = [s for s in during if s[0] == "idle"]
    assert not idle, (
        f"the kernel published idle while the cell ran (JupyterLab's status bar would say Idle): {idle}; "
        f"all statuses {statuses}"
    )
    assert statuses[-1] == ("idle", "execute_request", "cell")


def test_the_subshell_request_alone_publishes_idle(kernel):
    """Why KernelStaysBusy exists: without it (widget off), the same request during a cell
    publishes idle. If this fails, ipykernel/JupyterLab changed and the workaround may go."""
    run(kernel, "%config DlsqlMagic.live = False")
    try:
        msg_id = kernel.execute("import time; time.sleep(3)")
        time.sleep(1.0)
        kernel.control_channel.send(kernel.session.msg("create_subshell_request", {}))
        statuses = []
        while True:
            msg = kernel.get_iopub_msg(timeout=TIMEOUT_S)
            parent = msg["parent_header"] or {}
            if msg["msg_type"] == "status":
                statuses.append((msg["content"]["execution_state"], parent.get("msg_type")))
                if parent.get("msg_id") == msg_id and msg["content"]["execution_state"] == "idle":
                    break
    finally:
        run(kernel, "%config DlsqlMagic.live = True")
    assert ("idle", "create_subshell_request") in statuses, statuses
