"""The `%%dlsql` cell magic and `%dlsql` line magic.

Thin on purpose: parse options (command.py), hand the text to the notebook's Session, and
display the Result. `@no_var_expand` keeps IPython's `{}`/`$` expansion away from SQL;
`:name` reads a notebook variable as a bound DuckDB parameter.
"""

from __future__ import annotations

import contextlib
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Integer, Unicode

from workbench.errors import DlsqlError, WorkbenchError, shorten
from workbench.jupyter import command
from workbench.session import Session


@magics_class
class DlsqlMagic(Magics):
    display_limit = Integer(20, config=True, help="Rows shown under a %%dlsql cell (all rows stay in -o).")
    database = Unicode(":memory:", config=True, help="Database of the notebook's session: ':memory:' or a file.")
    batch_size = Integer(0, config=True, help="Model batch size; 0 picks it by measurement.")
    live = Bool(True, config=True, help="Show the live progress/memory widget while a model query runs.")

    def __init__(self, shell: Any):
        super().__init__(shell)
        self._session: Session | None = None
        self._configured: str | None = None  # the `database` setting the session was opened for

    def reset(self) -> None:
        """Close the notebook's session; the next cell opens a fresh one."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def session(self, database: str | None = None) -> Session:
        """The notebook's session. `--db PATH` switches it (and later cells stay there);
        a new `%config DlsqlMagic.database` takes effect on the next cell."""
        wanted = database
        if wanted is None:
            configured_changed = self._configured != self.database
            wanted = self.database if (self._session is None or configured_changed) else self._session.database
        self._configured = self.database
        if self._session is None or self._session.database != wanted:
            if self._session is not None:
                self._session.close()
            self._session = Session(wanted)
        return self._session

    def _live(self, session: Session) -> Any:
        """The live widget in a notebook kernel (front ends draw it); nothing elsewhere."""
        kernel = getattr(self.shell, "kernel", None)
        if not self.live or kernel is None:
            return contextlib.nullcontext()
        from workbench.jupyter.live import LiveDisplay

        return LiveDisplay(session.telemetry, kernel=kernel)

    @no_var_expand
    @line_cell_magic
    def dlsql(self, line: str, cell: str | None = None) -> Any:
        """Run dlsql (DuckDB SQL + model statements). Options: -o NAME, --limit N, --db PATH,
        --batch-size N, --paradigm NAME, --cluster SPEC, --deadline D, --async, --session."""
        try:
            cmd = command.parse(line, cell)
            session = self.session(cmd.database)
            if cmd.cluster is not None:  # the session keeps it, as after SET cluster = ...
                session.set("cluster", cmd.cluster)
            if cmd.session:
                return session
            if not cmd.sql.strip():
                raise command.UsageError("nothing to run: write SQL after %dlsql, or under %%dlsql")
            assert self.shell is not None  # a magic runs inside a shell
            ns = self.shell.user_ns
            if cmd.run_async or cmd.deadline_ms is not None:
                if cmd.paradigm:
                    raise command.UsageError(
                        "--paradigm applies to queries run now; in scheduled queries "
                        "write /*+ paradigm(model, NAME) */ in the SQL"
                    )
                future = session.submit(cmd.sql, params=ns, deadline_ms=cmd.deadline_ms)
                if cmd.run_async:
                    return future
                result = future.result()
                if cmd.output:
                    ns[cmd.output] = result.pl()
                result.display_limit = cmd.limit or self.display_limit
                return result
            with self._live(session):  # the cell's batch size, else the notebook's (%config)
                result = session.sql(
                    cmd.sql,
                    params=ns,
                    namespace=ns,
                    paradigm=cmd.paradigm,
                    batch_size=cmd.batch_size or self.batch_size or None,
                )
        except WorkbenchError as exc:
            raise DlsqlError(type(exc).__name__, shorten(str(exc))) from None
        except KeyboardInterrupt:
            raise DlsqlError("QueryInterrupted", "query interrupted; nothing was saved") from None
        except Exception as exc:  # a bug of ours: still one short line, the kernel lives on
            raise DlsqlError("InternalError", shorten(f"{type(exc).__name__}: {exc}")) from None
        if cmd.output:
            ns[cmd.output] = result.pl()
        result.display_limit = cmd.limit or self.display_limit
        return result


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(DlsqlMagic)
