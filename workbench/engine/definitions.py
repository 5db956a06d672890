"""Views, macros and prepared statements whose bodies call models.

DuckDB cannot store a view or macro that calls a model (a model is not a DuckDB function),
and a DuckDB prepared statement lives on one cursor while every call here runs on a cursor
of its own. So the engine keeps these definitions itself and writes them out in a
statement's syntax tree before planning: the optimizer and the inference cache then see
through a view to the model calls inside it, and the models run when the view is queried.

- `CREATE [OR REPLACE] VIEW v AS <query calling models>` and `CREATE MACRO f(a) AS <expr>`
  (or `AS TABLE <query>`) are stored in the table `workbench_definitions`, so a file
  database keeps them; `TEMP` ones live as long as the session. A view or macro that
  calls no model (and reads no definition of ours) is DuckDB's own, as written.
- `PREPARE p AS <statement>` is kept by the session (any statement: DuckDB's would vanish
  with its cursor); `EXECUTE p(args)` runs it with `$1`, `$2` ... (and `?` in order) bound
  to the arguments; `DEALLOCATE p` forgets it.
- `DROP VIEW` / `DROP MACRO` of one of ours removes the stored definition.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from workbench.errors import CatalogError, SQLSyntaxError, UnsupportedCall
from workbench.plan.builder import parse
from workbench.sql import params as sql_params
from workbench.sql import statements as st

TABLE = "workbench_definitions"
#: how deep views and macros may refer to one another before we call it a cycle
MAX_DEPTH = 32

_PREPARE = re.compile(r"^\s*PREPARE\s+(?P<name>\w+)\s+AS\s+(?P<body>.+?)\s*;?\s*$", re.I | re.S)
_EXECUTE = re.compile(r"^\s*EXECUTE\s+(?P<name>\w+)\s*(?:\((?P<args>.*)\))?\s*;?\s*$", re.I | re.S)
_DEALLOCATE = re.compile(r"^\s*DEALLOCATE\s+(?:PREPARE\s+)?(?P<name>\w+)\s*;?\s*$", re.I)
_DEFINING = re.compile(r"^\s*(CREATE|DROP|PREPARE|EXECUTE|DEALLOCATE)\b", re.I)
_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Definition:
    """One stored view or macro: its body as SQL text, and its parameters / column names."""

    name: str
    kind: str  # view | macro | table_macro
    body: str
    params: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    temporary: bool = False


class Definitions:
    """The session's definitions. `define` runs a statement that creates or drops one (and
    says so), `expand` writes them out in any other statement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stored: dict[str, Definition] | None = None  # read from the database on first use
        self._temporary: dict[str, Definition] = {}
        self._prepared: dict[str, str] = {}

    # -- what exists ----------------------------------------------------------------------
    def _all(self, cursor: Any) -> dict[str, Definition]:
        with self._lock:
            if self._stored is None:
                self._stored = _read(cursor)
            return {**self._stored, **self._temporary}

    def names(self, cursor: Any) -> set[str]:
        return set(self._all(cursor)) | set(self._prepared)

    # -- statements that define ---------------------------------------------------------
    def define(self, text: str, cursor: Any, calls_models: Any) -> str | None:
        """If `text` creates or drops one of our definitions, do it and return the line the
        user sees; otherwise None (the statement is DuckDB's). `calls_models(text)` says
        whether a piece of SQL calls a model."""
        if not _DEFINING.match(text):
            return None
        if m := _PREPARE.match(text):
            self._prepared[m["name"].lower()] = m["body"]
            return f"prepared statement {m['name']} stored"
        if m := _DEALLOCATE.match(text):
            if self._prepared.pop(m["name"].lower(), None) is None:
                raise CatalogError(f"no prepared statement named {m['name']}")
            return f"prepared statement {m['name']} deallocated"
        if _EXECUTE.match(text):
            return None
        try:
            tree = sqlglot.parse_one(text, read="duckdb")
        except sqlglot.errors.SqlglotError:
            return None  # DuckDB's own statement, and DuckDB's own error if any
        if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() in ("VIEW", "MACRO", "FUNCTION"):
            return self._drop(tree, cursor)
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() in ("VIEW", "MACRO", "FUNCTION"):
            return self._create(tree, cursor, calls_models)
        return None

    def _create(self, tree: exp.Create, cursor: Any, calls_models: Any) -> str | None:
        kind = tree.args["kind"].upper()
        target = tree.this
        if kind == "VIEW":
            table = target.this if isinstance(target, exp.Schema) else target
            columns = tuple(c.name for c in target.expressions) if isinstance(target, exp.Schema) else ()
            body_tree = tree.expression
            name, params = table.name, ()
            definition_kind = "view"
        else:
            if not isinstance(target, exp.UserDefinedFunction):
                return None
            name, columns = target.this.name, ()
            params = tuple(p.name for p in target.expressions)
            body_tree = tree.expression
            table_macro = any(
                isinstance(p, exp.ReturnsProperty) and p.args.get("is_table")
                for p in (tree.args.get("properties") or exp.Properties(expressions=[])).expressions
            )
            definition_kind = "table_macro" if table_macro else "macro"
        if body_tree is None:
            return None
        body = body_tree.sql(dialect="duckdb", normalize_functions=False)
        known = self._all(cursor)
        if name.lower() in known and not tree.args.get("replace"):
            if tree.args.get("exists"):
                return f"{definition_kind.replace('_', ' ')} {name} already exists"
            raise CatalogError(f"{definition_kind.replace('_', ' ')} {name} already exists (use CREATE OR REPLACE)")
        if not (calls_models(body) or _words(body) & set(known)):
            if name.lower() in known:
                self._remove(name, cursor)  # replaced by DuckDB's own
            return None
        properties = tree.args.get("properties") or exp.Properties(expressions=[])
        temporary = any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions)
        if kind == "VIEW" and _duckdb_has(cursor, name) and not tree.args.get("replace"):
            raise CatalogError(f"a table or view named {name} already exists")
        definition = Definition(name.lower(), definition_kind, body, params, columns, temporary)
        # the body must expand and plan: refuse a definition that cannot run
        self.expand(_use_of(definition), cursor, extra={definition.name: definition})
        if kind == "VIEW" and tree.args.get("replace") and _duckdb_has(cursor, name):
            cursor.fetch(f"DROP VIEW IF EXISTS {exp.to_identifier(name).sql(dialect='duckdb')}")
        self._store(definition, cursor)
        shown = "view" if kind == "VIEW" else "macro"
        return f"{shown} {name} created (it calls models: they run when it is used)"

    def _drop(self, tree: exp.Drop, cursor: Any) -> str | None:
        tables = tree.args.get("tables") or [tree.this]
        names = [t.name.lower() for t in tables if t is not None]
        known = self._all(cursor)
        ours = [n for n in names if n in known]
        if not ours:
            return None
        if len(ours) != len(names):
            raise UnsupportedCall("drop the views that call models and DuckDB's own views in separate statements")
        for n in ours:
            self._remove(n, cursor)
        kind = (tree.args.get("kind") or "view").lower()
        return f"{kind} {', '.join(ours)} dropped"

    def _store(self, d: Definition, cursor: Any) -> None:
        with self._lock:
            if d.temporary:
                self._temporary[d.name] = d
                return
            cursor.fetch(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR PRIMARY KEY, kind VARCHAR, body VARCHAR, "
                "params VARCHAR[], columns VARCHAR[])"
            )
            cursor.fetch(
                f"INSERT OR REPLACE INTO {TABLE} VALUES ($name, $kind, $body, $params, $columns)",
                {"name": d.name, "kind": d.kind, "body": d.body, "params": list(d.params), "columns": list(d.columns)},
            )
            assert self._stored is not None
            self._stored[d.name] = d

    def _remove(self, name: str, cursor: Any) -> None:
        with self._lock:
            name = name.lower()
            if self._temporary.pop(name, None) is not None:
                return
            cursor.fetch(f"DELETE FROM {TABLE} WHERE name = $name", {"name": name})
            if self._stored is not None:
                self._stored.pop(name, None)

    # -- using them ---------------------------------------------------------------------
    def expand(self, text: str, cursor: Any, *, extra: dict[str, Definition] | None = None) -> str:
        """`text` with every prepared statement it executes, view it reads and macro it calls
        written out (views over views and macros in macros too)."""
        if m := _EXECUTE.match(text):
            body = self._prepared.get(m["name"].lower())
            if body is None:
                return text  # DuckDB's own (and its error)
            text = _bind_arguments(body, m["args"] or "")
        known = {**self._all(cursor), **(extra or {})}
        if not known or not (_words(text) & set(known)):
            return text
        tree = parse(text)
        for _ in range(MAX_DEPTH):
            changed = _expand_once(tree, known)
            if not changed:
                return tree.sql(dialect="duckdb", normalize_functions=False)
        raise SQLSyntaxError("views or macros refer to one another in a cycle")


def _read(cursor: Any) -> dict[str, Definition]:
    try:
        rows = cursor.fetch(f"SELECT name, kind, body, params, columns FROM {TABLE}").to_pylist()
    except Exception:  # noqa: BLE001 - no definition was ever stored in this database
        return {}
    return {
        r["name"]: Definition(r["name"], r["kind"], r["body"], tuple(r["params"] or ()), tuple(r["columns"] or ()))
        for r in rows
    }


def _duckdb_has(cursor: Any, name: str) -> bool:
    rows = cursor.fetch(
        "SELECT 1 FROM duckdb_tables() WHERE lower(table_name) = lower($n) "
        "UNION ALL SELECT 1 FROM duckdb_views() WHERE lower(view_name) = lower($n)",
        {"n": name},
    )
    return rows.num_rows > 0


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORDS.findall(text)}


def _use_of(d: Definition) -> str:
    """A statement that uses a definition (to check it expands and parses)."""
    if d.kind == "view":
        return f"SELECT * FROM {exp.to_identifier(d.name).sql(dialect='duckdb')}"
    args = ", ".join("NULL" for _ in d.params)
    if d.kind == "table_macro":
        return f"SELECT * FROM {d.name}({args})"
    return f"SELECT {d.name}({args})"


def _ctes_around(node: exp.Expr) -> set[str]:
    names: set[str] = set()
    parent = node.parent
    while parent is not None:
        w = parent.args.get("with_") or parent.args.get("with")
        if isinstance(w, exp.With):
            names |= {c.alias_or_name.lower() for c in w.expressions}
        parent = parent.parent
    return names


def _expand_once(tree: exp.Expr, known: dict[str, Definition]) -> bool:
    changed = False
    for table in list(tree.find_all(exp.Table)):
        fn = table.this
        if isinstance(fn, exp.Anonymous):  # FROM f(args): a table macro
            d = known.get(fn.name.lower())
            if d is not None and d.kind == "table_macro":
                body = _substitute(parse(d.body), d, fn.expressions)
                table.replace(
                    exp.Subquery(
                        this=body, alias=table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(d.name))
                    )
                )
                changed = True
            continue
        d = known.get(table.name.lower())
        if d is None or d.kind != "view" or table.args.get("db") or table.name.lower() in _ctes_around(table):
            continue
        if not isinstance(table.parent, (exp.From, exp.Join)):
            raise UnsupportedCall(f"{d.name} is a view that calls models: it can be read, not changed")
        alias = table.args.get("alias")
        if alias is None:
            alias = exp.TableAlias(this=exp.to_identifier(table.name))
        if d.columns and not alias.columns:
            alias.set("columns", [exp.to_identifier(c) for c in d.columns])
        table.replace(exp.Subquery(this=parse(d.body), alias=alias))
        changed = True
    for call in list(tree.find_all(exp.Anonymous)):
        d = known.get(call.name.lower())
        if d is None or d.kind != "macro" or isinstance(call.parent, exp.Table):
            continue
        call.replace(exp.paren(_substitute(parse(f"SELECT {d.body}").expressions[0], d, call.expressions), copy=False))
        changed = True
    return changed


def _substitute(body: exp.Expr, d: Definition, args: list[exp.Expr]) -> exp.Expr:
    """A macro's body with its parameters replaced by the call's arguments."""
    if len(args) != len(d.params):
        raise SQLSyntaxError(f"macro {d.name} takes {len(d.params)} argument(s), got {len(args)}")
    values = {p.lower(): a for p, a in zip(d.params, args)}

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in values:
            return exp.paren(values[node.name.lower()].copy(), copy=False)
        return node

    return body.transform(swap)


def _bind_arguments(body: str, args_text: str) -> str:
    """A prepared statement's text with `$1`, `$2`... (and each `?` in order) replaced by the
    EXECUTE arguments, and `$name` by a named one (`name := value`): SQL expressions, as
    DuckDB takes them."""
    args_text = sql_params.rewrite(args_text, 0, st.tokenize(args_text))[0]  # `:n` -> `$n`
    given = parse(f"SELECT {args_text}").expressions if args_text.strip() else []
    named = {a.this.name.lower(): a.expression for a in given if isinstance(a, exp.PropertyEQ)}
    args = [a for a in given if not isinstance(a, exp.PropertyEQ)]
    tree = parse(body)
    order = iter(range(len(args)))

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder):
            name = node.this or ""
            if name and not name.isdigit():  # `$lo`: EXECUTE p(lo := 3), else the call's params
                found = named.get(name.lower())
                return node if found is None else exp.paren(found.copy(), copy=False)
            index = int(name) - 1 if name else next(order, len(args))
            if not 0 <= index < len(args):
                raise SQLSyntaxError(f"the prepared statement needs more than {len(args)} argument(s)")
            return exp.paren(args[index].copy(), copy=False)
        return node

    return tree.transform(swap).sql(dialect="duckdb", normalize_functions=False)
