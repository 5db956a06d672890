"""Real-browser tests of the JupyterLab front end: one JupyterLab server per test session,
driven by Playwright (python, sync API) through the system's Chromium.

Chromium comes from Debian (`tests/browser/ensure_chromium.sh`, run by `make unit`), or from
WB_CHROMIUM. We never run `playwright install`: the python package brings its own driver, and
we only launch an existing browser binary. Without Chromium, or without playwright, every test
of this directory is skipped and says why.

Screenshots, the JupyterLab log and small JSON figures go to tests/browser/artifacts/
(or $WB_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ARTIFACTS = Path(os.environ.get("WB_ARTIFACTS") or HERE / "artifacts")
LAB_START_TIMEOUT_S = 120.0
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Timeouts of the waits below, in milliseconds (a 2-core CI machine that also loads torch).
OPEN_TIMEOUT_MS = 90_000  # the notebook shows and its kernel is idle
CELL_TIMEOUT_MS = 180_000  # one cell runs


# -- is there a browser? ----------------------------------------------------------------------


def chromium_path() -> str | None:
    """WB_CHROMIUM if it names an executable file, else /usr/bin/chromium, else None."""
    wanted = os.environ.get("WB_CHROMIUM")
    if wanted:
        found = shutil.which(wanted)
        return found if found else None
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def _skip_reason() -> str | None:
    if chromium_path() is None:
        where = (
            f"WB_CHROMIUM={os.environ['WB_CHROMIUM']!r} is not an executable"
            if os.environ.get("WB_CHROMIUM")
            else "no /usr/bin/chromium"
        )
        return (
            f"browser tests need Chromium: {where} (run `bash tests/browser/ensure_chromium.sh` "
            "as root, or set WB_CHROMIUM)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"browser tests need playwright (pip install -e '.[test]'): {type(exc).__name__}: {exc}"
    return None


SKIP_REASON = _skip_reason()


@pytest.fixture(scope="session", autouse=True)
def _browser_tests_possible():
    """Skip every test of this directory, with the reason, when there is no browser to drive."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# -- the JupyterLab server --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


# User settings of the test server: no news or update checks, and every cell in the DOM
# (windowingMode 'none': no virtual scrolling that would take cells out of the page).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclass
class LabServer:
    """A running JupyterLab: its address, token and root folder (where notebooks go)."""

    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log_path: Path
    started_in_s: float
    notebooks: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        req = urllib.request.Request(
            self.base_url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        if method in ("POST", "PUT", "PATCH"):
            req.data = b""
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def write_notebook(self, name: str, sources: list[str]) -> str:
        """Write an nbformat-4 notebook of code cells (python 3 kernel) into the root folder;
        returns its name relative to the root."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
        if not name.endswith(".ipynb"):
            name += ".ipynb"
        nbformat.write(nb, str(self.root / name))
        self.notebooks.append(name)
        return name

    def shutdown_kernels(self) -> None:
        """End every session and kernel (between tests: each kernel holds torch in memory)."""
        try:
            for sess in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{sess['id']}", timeout=30)
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)
        except (urllib.error.URLError, OSError):
            pass


def _stop_lab(proc: subprocess.Popen, lab: LabServer | None) -> None:
    """Stop the server and everything it started (kernels run in sessions of their own, so we
    collect its children first and end the ones still alive afterwards)."""
    children = []
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        pass
    if proc.poll() is None and lab is not None:
        lab.shutdown_kernels()
        try:
            lab.api("POST", "/api/shutdown")
        except (urllib.error.URLError, OSError):
            pass
    for sig, wait in ((None, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        if sig is not None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        try:
            if child.is_running():
                child.terminate()
        except Exception:
            pass
    try:
        import psutil

        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            child.kill()
    except Exception:
        pass


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, artifacts_dir) -> LabServer:
    """JupyterLab from this venv on a free localhost port, with a random token, rooted in a
    temporary folder, with its own config, data, runtime, settings, workspaces and IPython
    folders there (the user's own settings and extensions do not leak in). Ended at the end."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    dirs = {name: base / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for d in (root, *dirs.values()):
        d.mkdir()
    for rel, values in LAB_SETTINGS.items():
        _write_json(dirs["settings"] / rel, values)

    port, token = _free_port(), secrets.token_hex(24)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "BROWSER": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("JUPYTER_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.shutdown_no_activity_timeout=0",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI runs as root
        cmd.append("--ServerApp.allow_root=True")
    log_path = artifacts_dir / "jupyterlab.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    lab = None
    try:
        lab = LabServer(proc, port, token, root, log_path, 0.0)
        deadline = t0 + LAB_START_TIMEOUT_S
        last_error: object = None
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited (code {proc.returncode}) before answering /api/status; "
                    f"log {log_path}:\n{lab.log_tail()}"
                )
            try:
                lab.api("GET", "/api/status", timeout=2)
                break
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab did not answer /api/status within {LAB_START_TIMEOUT_S:.0f} s "
                    f"(last error: {last_error}); log {log_path}:\n{lab.log_tail()}"
                )
            time.sleep(0.25)
        lab.started_in_s = time.monotonic() - t0
        print(f"\nJupyterLab up in {lab.started_in_s:.1f} s on port {port} (log: {log_path})")
        yield lab
    finally:
        _stop_lab(proc, lab)
        log.close()


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.console_errors = []  # what the page logged as errors: shown in failure messages
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.console_errors.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        context.close()


def _test_slug(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")[:100]


@pytest.fixture
def notebook(request, lab_server, page, artifacts_dir):
    """A factory: `notebook(["cell 1", "cell 2"])` writes a notebook named after the test,
    opens it in the lab, waits for its kernel to be idle and returns a `Notebook`. At the end
    of the test every kernel is shut down (each one holds torch in memory)."""
    slug = _test_slug(request)
    opened: list[Notebook] = []

    def open_notebook(sources: list[str], name: str | None = None) -> Notebook:
        nb_name = lab_server.write_notebook(name or f"{slug}-{len(opened)}", sources)
        nb = Notebook(page, lab_server, nb_name, artifacts_dir, slug, len(sources))
        nb.open()
        opened.append(nb)
        return nb

    try:
        yield open_notebook
    finally:
        if opened and getattr(request.node, "rep_call_failed", False):
            try:
                opened[-1].screenshot("at-failure")
            except Exception:
                pass
        lab_server.shutdown_kernels()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item.rep_call_failed = True


# -- driving a notebook -----------------------------------------------------------------------

# The state of cell i in one round trip: its prompt ("[ ]:", "[*]:", "[3]:"), the kernel's
# status as the toolbar's execution indicator shows it (data-status: initializing, connecting,
# unknown, busy, idle, ...), the kernel name of the toolbar ("No Kernel" until a session exists:
# the indicator says "idle" for a moment then, too), and whether a dialog is open.
_CELL_STATE_JS = """
([i]) => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const cells = nb ? nb.querySelectorAll(':scope .jp-Cell') : [];
  const cell = cells[i];
  const prompt = cell ? cell.querySelector('.jp-InputArea-prompt') : null;
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {
    cells: cells.length,
    prompt: prompt ? prompt.textContent.trim() : null,
    kernel: ind ? ind.getAttribute('data-status') : null,
    kernel_name: (() => {
      const k = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar-kernelName');
      return k ? k.textContent.trim() : null; })(),
    dialog: !!document.querySelector('.jp-Dialog'),
  };
}
"""

_EXEC_COUNT = re.compile(r"\[(\d+)\]")


class Notebook:
    """One open notebook in the lab page: run cells, wait for them, read outputs, screenshots."""

    def __init__(self, page, lab: LabServer, name: str, artifacts: Path, slug: str, n_cells: int):
        self.page, self.lab, self.name = page, lab, name
        self.artifacts, self.slug, self.n_cells = artifacts, slug, n_cells
        self.screenshots: list[Path] = []

    # -- locators --
    @property
    def panel(self):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first

    @property
    def cells(self):
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def cell(self, i: int):
        return self.cells.nth(i)

    def output(self, i: int):
        """The output area of cell i (all its outputs)."""
        return self.cell(i).locator(".jp-OutputArea")

    def state(self, i: int = 0) -> dict:
        return self.page.evaluate(_CELL_STATE_JS, [i])

    def where(self) -> str:
        """Context for failure messages: the last screenshot and the page's console errors."""
        shot = self.screenshots[-1] if self.screenshots else "(none)"
        errors = getattr(self.page, "console_errors", [])
        tail = "\n  ".join(errors[-8:]) if errors else "(none)"
        return f"last screenshot: {shot}\nbrowser console errors:\n  {tail}"

    # -- opening --
    def open(self) -> None:
        url = f"{self.lab.base_url}/lab/tree/{self.name}?reset&token={self.lab.token}"
        self.page.goto(url, wait_until="domcontentloaded", timeout=OPEN_TIMEOUT_MS)
        deadline = time.monotonic() + OPEN_TIMEOUT_MS / 1000
        state: dict = {}
        while time.monotonic() < deadline:
            self.dismiss_dialogs()
            state = self.state(0)
            if (
                state["cells"] >= self.n_cells
                and state["kernel"] == "idle"
                and state["kernel_name"] not in (None, "", "No Kernel")
                and self.server_kernel_state() == "idle"
            ):
                break
            self.page.wait_for_timeout(250)
        else:
            self.screenshot("open-timeout")
            raise AssertionError(
                f"notebook {self.name} did not show {self.n_cells} cells with an idle kernel within "
                f"{OPEN_TIMEOUT_MS / 1000:.0f} s; last seen {state}\n{self.where()}\n"
                f"lab log tail:\n{self.lab.log_tail(15)}"
            )
        self.dismiss_dialogs()

    def server_kernel_state(self) -> str | None:
        """The execution state the server reports for this notebook's kernel (None: no session)."""
        try:
            for sess in self.lab.api("GET", "/api/sessions"):
                if sess.get("path") == self.name and sess.get("kernel"):
                    return sess["kernel"].get("execution_state")
        except (urllib.error.URLError, OSError, ValueError):
            pass
        return None

    def dismiss_dialogs(self) -> None:
        """Close any modal dialog (kernel selection, ...) with its default/accept button, and
        any toast notification (news, updates)."""
        page = self.page
        for _ in range(3):
            dialog = page.locator(".jp-Dialog")
            if dialog.count() == 0:
                break
            btn = dialog.locator(".jp-Dialog-footer button.jp-mod-accept")
            try:
                (btn.first if btn.count() else dialog.locator(".jp-Dialog-footer button").last).click(timeout=2000)
            except Exception:
                page.keyboard.press("Escape")
            page.wait_for_timeout(200)
        toasts = page.locator(".Toastify__toast .jp-toast-button, .Toastify__close-button")
        for k in range(toasts.count()):
            try:
                toasts.nth(k).click(timeout=1000)
            except Exception:
                pass

    # -- running --
    def _exec_count(self, i: int) -> int | None:
        m = _EXEC_COUNT.search(self.state(i)["prompt"] or "")
        return int(m.group(1)) if m else None

    def trigger_cell(self, i: int) -> str:
        """Run cell i (click into its editor, Shift+Enter) and return at once. Returns the
        prompt seen before, for `wait_cell`."""
        before = self.state(i)["prompt"] or ""
        cell = self.cell(i)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")
        return before

    def wait_cell(self, i: int, before: str = "", timeout_ms: int = CELL_TIMEOUT_MS) -> int:
        """Wait until cell i shows an execution count other than `before` (so: it ran and
        finished) and the kernel is idle. Returns the execution count."""
        deadline = time.monotonic() + timeout_ms / 1000
        state: dict = {}
        while time.monotonic() < deadline:
            state = self.state(i)
            prompt = state["prompt"] or ""
            m = _EXEC_COUNT.search(prompt)
            if m and prompt != before and state["kernel"] in ("idle", None):
                return int(m.group(1))
            if state["dialog"]:
                self.dismiss_dialogs()
            self.page.wait_for_timeout(100)
        shot = self.screenshot(f"cell{i}-timeout")
        raise AssertionError(
            f"cell {i} of {self.name} did not finish within {timeout_ms / 1000:.0f} s: "
            f"expected its prompt to show an execution count, saw {state}; "
            f"screenshot {shot}\n{self.where()}"
        )

    def run_cell(self, i: int, timeout_ms: int = CELL_TIMEOUT_MS) -> int:
        """Run cell i and wait until it finished; returns its execution count."""
        return self.wait_cell(i, self.trigger_cell(i), timeout_ms)

    def run_all(self, timeout_ms: int = CELL_TIMEOUT_MS) -> None:
        """Run every cell in order, each waited for (a failing cell does not stop the next)."""
        for i in range(self.state(0)["cells"]):
            self.run_cell(i, timeout_ms)

    def output_text(self, i: int) -> str:
        out = self.output(i)
        return out.inner_text() if out.count() else ""

    def errors_in_output(self, i: int) -> str:
        """The text of error outputs of cell i ('' when none)."""
        err = self.cell(i).locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        return "\n".join(err.nth(k).inner_text() for k in range(err.count()))

    # -- artifacts --
    def screenshot(self, label: str, cell: int | None = None) -> Path:
        """A screenshot of the page (1400x1000) named after the test and `label`; with `cell`,
        that cell is scrolled into view first. Never fails the test by itself."""
        path = self.artifacts / f"{self.slug}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}.png"
        try:
            if cell is not None:
                self.cell(cell).scroll_into_view_if_needed(timeout=5_000)
            self.page.screenshot(path=str(path), timeout=15_000)
        except Exception as exc:
            path = path.with_name(f"{path.name} (not taken: {type(exc).__name__})")
        self.screenshots.append(path)
        return path

    def write_json(self, label: str, data: Any) -> Path:
        path = self.artifacts / f"{self.slug}-{label}.json"
        _write_json(path, data)
        return path
