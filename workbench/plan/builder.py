"""Build a `Plan` from a SQL statement that calls models.

How a model call can stand anywhere in SQL: each call `m(expr)` becomes a model operator
whose inputs are the distinct values of `expr`, computed by a DuckDB query over the part of
the statement `expr` depends on (its own source table where possible), with every WHERE
conjunct that needs no model pushed in. In the statement itself the call is replaced by a
lookup function that reads the operator's output, so every piece of SQL around the call
(WHERE, ORDER BY, GROUP BY, JOIN ON, nesting inside other functions) keeps its meaning.

Calls are processed innermost first, so `m1(m2(x))` runs m2, then m1 over m2's outputs.
Identical calls (same model, same input expression) share one operator and run once.

Building is pure: it reads the catalog's model signatures and asks its `Schema` for column
names and the type of an input query; it never writes to the database. Which operators a
piece of SQL reads is taken from the syntax tree (`reads_of`), never from its text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import Any, Protocol

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from workbench.errors import InputTypeError, SQLSyntaxError, UnsupportedCall, WorkbenchError
from workbench.models import call_options
from workbench.models.base import ARGUMENTS, arguments_of
from workbench.plan.nodes import InputQuery, ModelFilter, ModelOperator, Plan, lookup_name, operator_id

_SCOPES = (exp.Select, exp.Update, exp.Delete)
_ARRAY_TYPE = re.compile(r"^(?P<elem>[A-Z]+)(\(\d+,\s*\d+\))?\[(?P<n>\d*)\]$")
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_NUMERIC = {
    "FLOAT",
    "DOUBLE",
    "REAL",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "DECIMAL",
}


class Signature(Protocol):
    """What the builder needs to know of a model (a loaded `Model` or a planning record)."""

    @property
    def input_kind(self) -> str: ...  # text | ids | tensor

    @property
    def task(self) -> str: ...

    @property
    def input_dim(self) -> int | None: ...

    @property
    def device(self) -> str: ...

    @property
    def input_type(self) -> str: ...

    @property
    def output_type(self) -> str: ...


class Schema(Protocol):
    """The database as planning sees it: read only."""

    def columns_of(self, from_item: str) -> set[str] | None:
        """Column names a FROM item yields (lower case), or None when unknown."""

    def type_of(self, query: str, params: tuple[str, ...]) -> str:
        """The DuckDB type of the single column of `query` (no operator is called in it)."""


@dataclass
class _Source:
    alias: str
    node: exp.Expr
    null_supplying: bool


def parse(text: str) -> exp.Expr:
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except ParseError as exc:
        wrapped = _pivot_as_select(text)
        if wrapped is not None:
            return parse(wrapped)
        err = exc.errors[0] if exc.errors else {}
        where = f" (line {err.get('line')}, column {err.get('col')})" if err.get("line") else ""
        raise SQLSyntaxError(f"{err.get('description') or exc}{where}") from None
    except TokenError as exc:  # text DuckDB's tokenizer took but sqlglot's does not (a stray `$`)
        raise SQLSyntaxError(f"cannot read the SQL text: {exc}") from None
    if tree is None:
        raise SQLSyntaxError("empty statement")
    return tree


def _pivot_as_select(text: str) -> str | None:
    """DuckDB's PIVOT / UNPIVOT statement may end in ORDER BY / LIMIT / OFFSET, which sqlglot
    does not parse: the same statement as `SELECT * FROM (PIVOT ...) ORDER BY ...`."""
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except TokenError:
        return None
    if not tokens or tokens[0].text.upper() not in ("PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER"):
        return None
    depth = 0
    for tok in tokens:
        depth += {"(": 1, ")": -1}.get(tok.text, 0)
        if depth == 0 and tok.text.upper().split()[0] in ("ORDER", "LIMIT", "OFFSET"):
            return f"SELECT * FROM ({text[: tok.start]}) {text[tok.start :]}"
    return None


@functools.lru_cache(maxsize=256)
def parsed(text: str) -> exp.Expr:
    """A statement's tree, parsed once (rules read the same final SQL several times);
    callers that change the tree change a `.copy()`."""
    return parse(text)


def model_calls(tree: exp.Expr, names: set[str]) -> list[exp.Anonymous]:
    """Model calls in the order they must run: calls in JOIN ON first, then innermost first."""
    calls = [n for n in tree.find_all(exp.Anonymous) if n.name.lower() in names]

    def depth(node: exp.Expr) -> int:
        d = 0
        while node.parent is not None:
            node, d = node.parent, d + 1
        return d

    return sorted(calls, key=lambda n: (n.find_ancestor(exp.Join) is None, -depth(n)))


class PlanBuilder:
    """Turns one statement into a logical Plan (before any optimizer rule)."""

    def __init__(self, models: dict[str, Signature], schema: Schema):
        self.models = models
        self.schema = schema
        self.output_types: dict[int, str] = {}  # operator id -> its output type, for nested calls

    def build(self, text: str, tree: exp.Expr) -> Plan:
        names = set(self.models)
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW":
            raise UnsupportedCall("EXPLAIN the view's query, or a query of the view, not its CREATE VIEW")
        _name_model_columns(tree, names)
        for select in list(tree.find_all(exp.Select)):
            self._inline_aliases(select, names)
        # (model, input, options): calls with other options are other operators
        operators: dict[tuple[str, str, call_options.CallOptions], ModelOperator] = {}
        made: list[
            tuple[tuple[str, str, call_options.CallOptions], int, exp.Expr | None, _Source | None, list[exp.With]]
        ] = []
        for call in model_calls(tree, names):
            model_name = call.name.lower()
            call_text = _call_text(call)
            if isinstance(call.parent, (exp.Table, exp.From, exp.Join)):
                raise UnsupportedCall(
                    f"{call_text}: model '{model_name}' is a function, not a table; "
                    "call it in SELECT, WHERE, ORDER BY..."
                )
            options = _options_of(call, call_text, model_name, self.models[model_name].task)
            arg = _packed_arguments(call, call_text, model_name, self.models[model_name].input_kind)
            if isinstance(arg, exp.Null):  # `m(NULL)`: NULL of the model's input type, NULL out
                arg = arg.replace(
                    exp.cast(exp.Null(), exp.DataType.build(self.models[model_name].input_type, dialect="duckdb"))
                )
            key = (model_name, arg.sql(dialect="duckdb", normalize_functions=False), options)
            op = operators.get(key)
            why = _in_returning(call)
            if why is None:
                try:
                    query, scope, owner, reads = self._input_query(call, arg, names)
                    why = _reads_recursion(call, query)
                    if op is not None and op.id in reads:  # its rows come through its own outputs
                        why = "its input rows are filtered by its own outputs"
                except UnsupportedCall as exc:
                    why = f"its inputs cannot be computed apart from the statement ({exc})"
            if why is not None:  # the call runs where it stands: a streaming UDF (udf_centric)
                query, scope, owner, reads = InputQuery(key=key[1]), None, None, reads_of(arg)
            withs = _enclosing_withs(call)
            if op is None:
                op = self._operator(len(operators) + 1, model_name, call_text, query, reads, why or "")
                operators[key] = op = replace(op, options=options)
            elif why is not None:
                operators[key] = op = replace(op, streaming_only=op.streaming_only or why)
                call.replace(exp.Anonymous(this=lookup_name(op.id), expressions=[arg.copy()]))
                continue
            elif query not in op.inputs:
                operators[key] = op = replace(
                    op,
                    inputs=(*op.inputs, query),
                    reads=_merge_ids(op.reads, reads),
                    params=tuple(dict.fromkeys((*op.params, *_params(parsed(query.widest().sql()))))),
                )
            made.append((key, op.inputs.index(query), scope, owner, withs))
            call.replace(exp.Anonymous(this=lookup_name(op.id), expressions=[arg.copy()]))
        # now that every call reads its lookup: the WITH clauses each input query needs, and
        # the conjuncts on other calls' outputs (for order_predicates), in their final form
        for key, index, scope, owner, withs in made:
            op = operators[key]
            q = op.inputs[index]
            q = replace(q, with_sql=_with_sql(withs, [q.key, q.source or "", *q.filters, *q.pushable]))
            extra: list[str] = []
            if scope is not None and owner is not None:
                found = self._model_filters(scope, owner, op.id)
                q = replace(q, model_filters=found)
                extra = [p for _, f in found for p in _params(parsed(f"SELECT 1 WHERE {f}"))]
            inputs = tuple(q if i == index else other for i, other in enumerate(op.inputs))
            operators[key] = replace(op, inputs=inputs, params=tuple(dict.fromkeys((*op.params, *extra))))
        # (comments dropped: hints were read already, and sqlglot would print `/*+ x */` as `/* + x */`)
        final = tree.sql(dialect="duckdb", normalize_functions=False, comments=False)
        return Plan(
            sql=text,
            final_sql=final,
            operators=tuple(operators.values()),
            reads=reads_of(tree),
            params=tuple(_params(tree)),
        )

    def _model_filters(self, scope: exp.Expr, owner: _Source, own_id: int) -> tuple[ModelFilter, ...]:
        where = scope.args.get("where")
        if where is None:
            return ()
        sources = _sources(scope)
        own_cols = self._columns(owner)
        found: list[ModelFilter] = []
        for c in _conjuncts(where.this):
            ids = reads_of(c)
            if not ids or own_id in ids or not _pushable(c, set(), allow_lookups=True):
                continue
            if _only_from(c, owner, own_cols, len(sources) == 1):
                found.append((ids, c.sql(dialect="duckdb", normalize_functions=False)))
        return tuple(found)

    def _inline_aliases(self, select: exp.Select, names: set[str]) -> None:
        """Replace each use of a SELECT-list alias of a model output inside another
        expression by the aliased expression itself.

        A call reads its operator through a correlated subquery, and DuckDB cannot bind a
        lateral alias whose expression holds a subquery (`SELECT m(x).score AS sc, sc + 1`,
        `ORDER BY -sc`). The copies are the same call, so they share one operator. DuckDB's
        precedence is kept: a source column of the same name wins, except in ORDER BY; a bare
        `ORDER BY sc` / `GROUP BY sc` stays as written (DuckDB binds those itself).
        """

        def calls(node: exp.Expr) -> bool:
            return any(n.name.lower() in names for n in node.find_all(exp.Anonymous))

        if not any(calls(p) for p in select.expressions):
            return
        defined: dict[str, exp.Expr] = {}  # alias -> its expression, model calls written out
        columns: set[str] = set()
        for source in _sources(select):
            columns |= self._columns(source) or set()

        def inline(node: exp.Expr, *, alias_first: bool, own: str = "") -> None:
            for col in list(node.find_all(exp.Column)):
                name = col.name.lower()
                if col.table or name not in defined or name == own or col.find_ancestor(exp.Select) is not select:
                    continue
                if _lambda_param(col):
                    continue
                if alias_first or name not in columns:
                    col.replace(exp.paren(defined[name].copy(), copy=False))

        # in SELECT-list order, so an alias over an alias of a model output (`r * 2 AS r2,
        # r2 - r`) is written out in full
        for proj in list(select.expressions):
            name = proj.name.lower()
            if isinstance(proj, exp.Column) and not proj.table and name in defined and name not in columns:
                # the output column keeps the name the user wrote
                proj.replace(exp.alias_(defined[name].copy(), proj.name, quoted=proj.this.quoted))
                continue
            own = proj.alias.lower() if isinstance(proj, exp.Alias) else ""
            inline(proj.this if isinstance(proj, exp.Alias) else proj, alias_first=False, own=own)
            if isinstance(proj, exp.Alias) and calls(proj.this):
                defined[own] = proj.this
        if not defined:
            return
        for part in ("where", "having", "qualify"):
            if select.args.get(part) is not None:
                inline(select.args[part], alias_first=False)
        group = select.args.get("group")
        if group is not None:
            for g in group.expressions:
                if not isinstance(g, exp.Column):
                    inline(g, alias_first=False)
        order = select.args.get("order")
        if order is not None:
            for o in order.expressions:
                if not isinstance(o.this, exp.Column):
                    inline(o.this, alias_first=True)

    # -- one operator ------------------------------------------------------------------
    def _operator(
        self, n: int, model_name: str, call_text: str, query: InputQuery, reads: tuple[int, ...], why: str = ""
    ) -> ModelOperator:
        model = self.models[model_name]
        params = tuple(_params(parsed(query.widest().sql())))
        got = model.input_type
        if not why:
            typing = replace(query, filters=(), pushable=(), model_filters=(), after=())
            typing_sql = with_nulls(typing.sql(), self.output_types)
            try:
                got = self.schema.type_of(typing_sql, tuple(_params(parsed(typing_sql))))
            except WorkbenchError as exc:  # e.g. a column of a LATERAL's outer row, a comprehension's variable
                why = f"DuckDB cannot compute its inputs apart from the statement ({first_line(str(exc))})"
                params = ()
            else:
                _check_input_type(call_text, model_name, model, got)
                if got.strip('"') == "NULL":  # an untyped NULL input: NULL out, as DuckDB's functions do
                    got = model.input_type
        self.output_types[n] = model.output_type
        return ModelOperator(
            id=n,
            model=model_name,
            call=call_text,
            inputs=(query,),
            reads=reads,
            input_type=got,
            output_type=model.output_type,
            device=model.device,
            params=() if why else params,
            streaming_only=why,
        )

    def _input_query(
        self, call: exp.Expr, arg: exp.Expr, names: set[str]
    ) -> tuple[InputQuery, exp.Expr | None, _Source | None, tuple[int, ...]]:
        """The logical input query of one call (no filter pushed yet, not deduplicated), the
        scope it reads from, the single source owning its columns (if there is one) and the
        operators its key and source read."""
        expr_sql = arg.sql(dialect="duckdb", normalize_functions=False)
        cols = _own_columns(arg) + self._correlated_columns(arg)
        bound = _lambda_refs(arg)
        if bound:
            return self._lambda_input(call, arg, bound, names)
        scope = call.find_ancestor(*_SCOPES)
        if not cols or scope is None:
            sub = any(isinstance(n, exp.Select) for n in arg.walk())
            return self._with(InputQuery(key=expr_sql, subquery_key=sub), call), None, None, reads_of(arg)
        # find the scope whose sources own the columns (walking out for correlated calls)
        while scope is not None:
            sources = _sources(scope)
            aliases = {s.alias for s in sources}
            qualifiers = {c.table.lower() for c in cols if c.table}
            if qualifiers <= aliases:
                break
            scope = scope.parent.find_ancestor(*_SCOPES) if scope.parent else None
        if scope is None:
            raise UnsupportedCall(f"{_call_text(call)}: cannot tell which table its input comes from")
        where = scope.args.get("where")
        all_conjuncts = _conjuncts(where.this) if where is not None else []
        aggregated = any(isinstance(n, (exp.AggFunc, exp.Window)) for n in arg.walk())
        # an aggregate input must see exactly the filtered rows, so conjuncts on outputs of
        # calls already planned are part of its meaning, not an optimization
        conjuncts = [c for c in all_conjuncts if _pushable(c, names, allow_lookups=aggregated)]

        owner = None if aggregated else self._single_source(sources, cols)
        if owner is not None:
            own_cols = self._columns(owner)
            keep = [c for c in conjuncts if _only_from(c, owner, own_cols, len(sources) == 1)]
            from_sql = _source_sql(owner)
            source_reads = reads_of(owner.node)
        else:
            keep = [
                c for c in conjuncts if all((not col.table) or col.table.lower() in aliases for col in _own_columns(c))
            ]
            from_clause = _from_clause(scope)
            source_reads = _merge_ids(
                *(reads_of(s.node) for s in sources), *(reads_of(j) for j in scope.args.get("joins") or [])
            )
            if from_clause is None:
                raise UnsupportedCall(f"{_call_text(call)}: cannot find the rows its input comes from")
            from_sql = from_clause
            if any(
                c.find(exp.Anonymous) is not None and c.find(exp.Anonymous).name.lower() in names
                for c in (j.args.get("on") for j in scope.args.get("joins") or [])
                if c is not None
            ):
                raise UnsupportedCall(
                    f"{_call_text(call)}: this combination of model calls in JOIN ON is not supported"
                )
        keep_sql = tuple(c.sql(dialect="duckdb", normalize_functions=False) for c in keep)
        reads = _merge_ids(reads_of(arg), source_reads)
        if aggregated:
            if len(keep) != len(all_conjuncts):
                raise UnsupportedCall(f"{_call_text(call)}: an aggregate input with a model in WHERE is not supported")
            group = scope.args.get("group")
            group_sql = group.sql(dialect="duckdb", normalize_functions=False) if group is not None else ""
            reads = _merge_ids(reads, *(reads_of(c) for c in keep))
            return (
                self._with(
                    InputQuery(key=expr_sql, source=from_sql, filters=keep_sql, group=group_sql, aggregated=True), call
                ),
                None,
                None,
                reads,
            )
        return self._with(InputQuery(key=expr_sql, source=from_sql, pushable=keep_sql), call), scope, owner, reads

    def _lambda_input(
        self, call: exp.Expr, arg: exp.Expr, bound: list[exp.Expr], names: set[str]
    ) -> tuple[InputQuery, exp.Expr | None, _Source | None, tuple[int, ...]]:
        """The inputs of a call inside a lambda (`list_transform(l, x -> m(x))`): its key
        over every element of the lists the lambda runs on, `SELECT key FROM (SELECT
        unnest(l) AS x FROM <the lists' rows>)`."""
        lam = _binding_lambda(bound[0])
        fn = lam.parent if lam is not None else None
        params = [p.name for p in lam.expressions] if lam is not None else []
        others = [c for c in _own_columns(arg) if not _lambda_param(c)]
        if fn is None or len(params) != 1 or others or {c.name.lower() for c in bound} != {params[0].lower()}:
            raise UnsupportedCall(
                f"{_call_text(call)}: a model call inside a lambda may read only the lambda's one "
                "parameter; unnest the list in a subquery and call the model there"
            )
        lists = fn.expressions[:1] if isinstance(fn, exp.Anonymous) else [fn.this]
        if not lists or not isinstance(lists[0], exp.Expr) or lists[0] is lam:
            raise UnsupportedCall(f"{_call_text(call)}: cannot tell which list the lambda runs over")
        q, _, _, reads = self._input_query(call, lists[0], names)
        if q.aggregated:
            raise UnsupportedCall(f"{_call_text(call)}: a model call in a lambda over an aggregate is not supported")
        rows = replace(q, with_sql="", pushable=(), model_filters=(), distinct=False).sql()
        source = (
            f"(SELECT unnest(k) AS {exp.to_identifier(params[0]).sql(dialect='duckdb')} FROM ({rows})) AS __wb_lambda"
        )
        key = arg.sql(dialect="duckdb", normalize_functions=False)
        query = InputQuery(key=key, source=source, in_lambda=True)
        return self._with(query, call), None, None, _merge_ids(reads, reads_of(arg))

    def _correlated_columns(self, arg: exp.Expr) -> list[exp.Column]:
        """Columns a subquery inside `arg` takes from outside it (`m((SELECT v FROM t WHERE
        t.id = n))` reads `n` of the call's own rows): they tie the input to the call's scope."""
        found = []
        for col in arg.find_all(exp.Column):
            inner = col.find_ancestor(exp.Select)
            if inner is None or not is_inside(inner, arg) or _lambda_param(col):
                continue
            if not any(self._resolves(col, select) for select in _selects_between(col, arg)):
                found.append(col)
        return found

    def _resolves(self, col: exp.Column, select: exp.Expr) -> bool:
        sources = _sources(select)
        if col.table:
            return col.table.lower() in {s.alias for s in sources}
        known = [self._columns(s) for s in sources]
        return any(c is None or col.name.lower() in c for c in known) or not sources

    @staticmethod
    def _with(q: InputQuery, call: exp.Expr) -> InputQuery:
        return replace(q, with_sql=_with_sql(_enclosing_withs(call), [q.key, q.source or "", *q.filters, *q.pushable]))

    def _single_source(self, sources: list[_Source], cols: list[exp.Column]) -> _Source | None:
        qualifiers = {c.table.lower() for c in cols if c.table}
        unqualified = [c.name.lower() for c in cols if not c.table]
        if len(qualifiers) > 1:
            return None
        if qualifiers:
            (alias,) = qualifiers
            candidates = [s for s in sources if s.alias == alias]
        elif len(sources) == 1:
            candidates = sources
        else:
            candidates = [s for s in sources if (own := self._columns(s)) is not None and set(unqualified) <= own]
        if unqualified and qualifiers and candidates:
            own = self._columns(candidates[0])
            if own is not None and not set(unqualified) <= own:
                return None
        if len(candidates) != 1 or candidates[0].null_supplying:
            return None
        return candidates[0]

    def _columns(self, source: _Source) -> set[str] | None:
        return self.schema.columns_of(_source_sql(source))


def _name_model_columns(tree: exp.Expr, names: set[str]) -> None:
    """Give unaliased output columns that call a model the name the user wrote.

    Otherwise DuckDB would name them after our lookup functions.
    """
    for select in tree.find_all(exp.Select):
        for i, proj in enumerate(select.expressions):
            if isinstance(proj, (exp.Alias, exp.Star)) or proj.find(exp.Columns) is not None:
                continue  # COLUMNS(...) names its columns after the columns it expands to
            if any(n.name.lower() in names for n in proj.find_all(exp.Anonymous)):
                text = proj.sql(dialect="duckdb", normalize_functions=False)
                select.expressions[i].replace(exp.alias_(proj.copy(), text, quoted=True))


def _in_returning(call: exp.Expr) -> str | None:
    """RETURNING reads the rows as the statement changed them: a call there can only run
    where it stands (as a streaming UDF)."""
    if call.find_ancestor(exp.Returning) is not None:
        return "it is in RETURNING, which reads the rows as the statement changed them"
    return None


def _reads_recursion(call: exp.Expr, query: InputQuery) -> str | None:
    """Whether a call's input query reads a recursive CTE it stands in (rows that exist only
    while the recursion runs), and so can only run where it stands."""
    names = set()
    cte = call.find_ancestor(exp.CTE)
    while cte is not None:
        if isinstance(cte.parent, exp.With) and cte.parent.args.get("recursive"):
            names.add(cte.alias_or_name.lower())
        cte = cte.find_ancestor(exp.CTE)
    if not names:
        return None
    text = f"SELECT {query.key}" + (f" FROM {query.source}" if query.source else "")
    if any(t.name.lower() in names for t in parse(text).find_all(exp.Table)):
        return "it reads a recursive CTE's rows, which exist only while the recursion runs"
    return None


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _options_of(call: exp.Expr, call_text: str, model_name: str, task: str) -> call_options.CallOptions:
    """The call's named options (`max_new_tokens := 20`), checked and taken out of its
    arguments, so what is left are its inputs."""
    named = [a for a in call.expressions if isinstance(a, (exp.PropertyEQ, exp.Kwarg))]
    if not named:
        return ()
    if any(isinstance(a, (exp.PropertyEQ, exp.Kwarg)) for a in call.expressions[: len(call.expressions) - len(named)]):
        raise InputTypeError(f"{call_text}: named options come after the model's inputs")
    given = [(a.this.name.lower(), _constant(a.expression, call_text, a.this.name.lower())) for a in named]
    found = call_options.check(call_text, model_name, task, given)
    call.set("expressions", call.expressions[: len(call.expressions) - len(named)])
    return found


def _constant(value: exp.Expr, call_text: str, name: str) -> Any:
    """An option's value as Python: a number, string, boolean, NULL or list of them."""
    if isinstance(value, exp.Literal):
        if value.is_string:
            return value.this
        text = value.this
        return int(text) if re.fullmatch(r"\d+", text) else float(text)
    if isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal) and not value.this.is_string:
        return -_constant(value.this, call_text, name)
    if isinstance(value, exp.Boolean):
        return bool(value.this)
    if isinstance(value, exp.Null):
        return None
    if isinstance(value, exp.Array):
        return [_constant(v, call_text, name) for v in value.expressions]
    raise InputTypeError(
        f"{call_text}: option '{name}' takes a constant, not {value.sql(dialect='duckdb')} "
        "(a value computed per row would make every row its own model)"
    )


def _packed_arguments(call: exp.Expr, call_text: str, model_name: str, input_kind: str) -> exp.Expr:
    """The call's one input: its argument, or its arguments packed into one STRUCT (a
    reranker's `score(query, doc)`, a zero-shot classifier's `zs(text, labels)`)."""
    names = arguments_of(input_kind)
    given = call.expressions
    if not names:
        if len(given) != 1:
            raise InputTypeError(f"{call_text}: model '{model_name}' takes one input, got {len(given)}")
        return given[0]
    if len(given) != len(names):
        raise InputTypeError(
            f"{call_text}: model '{model_name}' takes {len(names)} inputs ({', '.join(names)}), got {len(given)}"
        )
    types = dict(ARGUMENTS[input_kind])

    def typed(name: str, arg: exp.Expr) -> exp.Expr:
        # an untyped NULL or [] takes the argument's type: `zs(NULL, ['a'])` is NULL, `zs(t, [])` empty
        if isinstance(arg, exp.Null) or (isinstance(arg, exp.Array) and not arg.expressions):
            return exp.cast(arg.copy(), exp.DataType.build(types[name], dialect="duckdb"))
        return arg.copy()

    packed = exp.Struct(
        expressions=[exp.PropertyEQ(this=exp.to_identifier(n), expression=typed(n, a)) for n, a in zip(names, given)]
    )
    call.set("expressions", [packed])
    return packed


def _check_input_type(call_text: str, model_name: str, model: Signature, got: str) -> None:
    if got.strip('"') == "NULL":
        return
    if model.input_kind == "image":
        if got not in ("BLOB", "VARCHAR"):
            raise InputTypeError(
                f"{call_text}: model '{model_name}' expects image bytes (BLOB) or a path (VARCHAR), got {got}"
            )
        return
    if model.input_kind in ARGUMENTS:
        want = model.input_type
        if got.replace('"', "") != want.replace('"', ""):
            args = ", ".join(f"{n} {t}" for n, t in ARGUMENTS[model.input_kind])
            raise InputTypeError(f"{call_text}: model '{model_name}' takes ({args}), got {got}"[:300])
        return
    if model.input_kind == "text":
        if got != "VARCHAR":
            raise InputTypeError(f"{call_text}: model '{model_name}' expects VARCHAR input, got {got}")
        return
    if model.input_kind == "ids":
        if got not in _INTEGERS:
            raise InputTypeError(f"{call_text}: model '{model_name}' expects an integer id, got {got}")
        return
    m = _ARRAY_TYPE.match(got)
    if not m or m.group("elem") not in _NUMERIC:
        raise InputTypeError(f"{call_text}: model '{model_name}' expects {model.input_type} input, got {got}")
    n = m.group("n")
    if n and model.input_dim and int(n) != model.input_dim:
        raise InputTypeError(f"{call_text}: model '{model_name}' expects {model.input_type} input, got {got}")


def _call_text(call: exp.Expr) -> str:
    """The call as the user wrote it (parameters shown in their `:name` spelling)."""
    args = ", ".join(a.sql(dialect="duckdb", normalize_functions=False) for a in call.expressions)
    return re.sub(r"\$(\w+)", r":\1", f"{call.name.lower()}({args})")


def _is_lookup(name: str) -> bool:
    return operator_id(name) is not None


def reads_of(node: exp.Expr) -> tuple[int, ...]:
    """The operators a piece of a planned statement reads, from its tree: the ids of the
    lookup functions it calls, in id order."""
    found = {operator_id(f.name) for f in node.find_all(exp.Anonymous)}
    return tuple(sorted(i for i in found if i is not None))


def _merge_ids(*groups: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted({i for g in groups for i in g}))


def with_nulls(sql: str, output_types: dict[int, str]) -> str:
    """`sql` with every operator's lookup call replaced by a NULL of the operator's declared
    output type, so planning can type and count a query that nests calls before any model
    ran (and without defining anything in the database)."""
    if "__wb_lookup_" not in sql.lower():
        return sql
    tree = parse(sql)

    def typed_null(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Anonymous):
            op_id = operator_id(node.name)
            if op_id is not None and op_id in output_types:
                return exp.Cast(this=exp.Null(), to=exp.DataType.build(output_types[op_id], dialect="duckdb"))
        return node

    return tree.transform(typed_null).sql(dialect="duckdb", normalize_functions=False)


def _params(tree: exp.Expr) -> list[str]:
    names = [p.name for p in tree.find_all(exp.Placeholder, exp.Parameter) if p.name]
    return list(dict.fromkeys(names))


def _own_columns(node: exp.Expr) -> list[exp.Column]:
    """Columns of `node` that belong to its own scope (not to a subquery inside it)."""
    found = []
    for col in node.find_all(exp.Column):
        inner = col.find_ancestor(exp.Select)
        if inner is None or not is_inside(inner, node):
            found.append(col)
    return found


def _lambda_param(col: exp.Column) -> bool:
    """Whether a column is a parameter of a lambda around it (`x -> ...`)."""
    return not col.table and _binding_lambda(col) is not None


def _lambda_refs(node: exp.Expr) -> list[exp.Expr]:
    """References in `node` to parameters of lambdas around it (sqlglot reads them as bare
    identifiers); a lambda inside `node` is part of the input, like any expression."""
    found: list[exp.Expr] = []
    for ident in node.find_all(exp.Identifier):
        parent = ident.parent
        if isinstance(parent, exp.Column) and parent.table:
            continue
        if isinstance(parent, (exp.Dot, exp.Alias, exp.Table, exp.Lambda)) and not isinstance(parent, exp.Column):
            continue
        ref = parent if isinstance(parent, exp.Column) else ident
        lam = _binding_lambda(ref)
        if lam is not None and not is_inside(lam, node):  # a lambda around the call, not inside its input
            found.append(ref)
    return found


def _binding_lambda(col: exp.Expr) -> exp.Lambda | None:
    lam = col.find_ancestor(exp.Lambda)
    while lam is not None and col.name.lower() not in {p.name.lower() for p in lam.expressions}:
        lam = lam.find_ancestor(exp.Lambda)
    return lam


def _selects_between(node: exp.Expr, top: exp.Expr) -> list[exp.Expr]:
    """The SELECTs around `node` inside `top`, innermost first."""
    found: list[exp.Expr] = []
    select = node.find_ancestor(exp.Select)
    while select is not None and is_inside(select, top):
        found.append(select)
        select = select.parent.find_ancestor(exp.Select) if select.parent else None
    return found


def is_inside(inner: exp.Expr | None, node: exp.Expr) -> bool:
    while inner is not None:
        if inner is node:
            return True
        inner = inner.parent
    return False


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    if isinstance(condition, exp.And):
        return list(condition.flatten())
    return [condition]


def _pushable(conjunct: exp.Expr, names: set[str], *, allow_lookups: bool = False) -> bool:
    """Whether a conjunct can filter a call's input rows: no subquery or aggregate, no model
    call, and no other call's output unless `allow_lookups`."""
    if any(isinstance(n, (exp.Subquery, exp.Exists, exp.Select, exp.AggFunc, exp.Window)) for n in conjunct.walk()):
        return False
    return not any(
        n.name.lower() in names or (_is_lookup(n.name) and not allow_lookups) for n in conjunct.find_all(exp.Anonymous)
    )


def _only_from(conjunct: exp.Expr, source: _Source, own: set[str] | None, sole: bool) -> bool:
    for col in _own_columns(conjunct):
        if col.table:
            if col.table.lower() != source.alias:
                return False
        elif not sole and (own is None or col.name.lower() not in own):
            return False
        elif sole and own is not None and col.name.lower() not in own:
            return False
    return True


def _sources(scope: exp.Expr) -> list[_Source]:
    items: list[tuple[exp.Expr, str]] = []
    if isinstance(scope, (exp.Update, exp.Delete)):
        items.append((scope.this, ""))
    from_ = scope.args.get("from_") or scope.args.get("from")
    if from_ is not None:
        items.append((from_.this, ""))
    joins = scope.args.get("joins") or []
    sides = [(j.this, (j.side or "").upper()) for j in joins]
    result = [_Source(_alias(node), node, False) for node, _ in items]
    for node, side in sides:
        if side in ("RIGHT", "FULL"):
            for s in result:
                s.null_supplying = True
        result.append(_Source(_alias(node), node, side in ("LEFT", "FULL")))
    return result


def _alias(node: exp.Expr) -> str:
    return (node.alias_or_name or "").lower()


def _source_sql(source: _Source) -> str:
    return source.node.sql(dialect="duckdb", normalize_functions=False)


def _from_clause(scope: exp.Expr) -> str | None:
    from_ = scope.args.get("from_") or scope.args.get("from")
    if from_ is None:
        return None
    parts = [from_.this.sql(dialect="duckdb", normalize_functions=False)]
    parts += [j.sql(dialect="duckdb", normalize_functions=False) for j in scope.args.get("joins") or []]
    return " ".join(parts)


def _enclosing_withs(node: exp.Expr) -> list[exp.With]:
    """The WITH clauses around a node, outermost first."""
    withs = []
    parent = node.parent
    while parent is not None:
        w = parent.args.get("with_") or parent.args.get("with")
        if isinstance(w, exp.With):
            withs.append(w)
        parent = parent.parent
    withs.reverse()
    return withs


def _with_sql(withs: list[exp.With], texts: list[str]) -> str:
    """One WITH clause (DuckDB takes one) with the CTEs `texts` read, directly or through
    other CTEs; an input query carries no CTE it does not read."""
    ctes = [c for w in withs for c in w.expressions]
    by_name = {c.alias_or_name.lower(): c for c in ctes}

    def refs(text: str) -> set[str]:
        return {n for n in by_name if re.search(rf"\b{re.escape(n)}\b", text, re.IGNORECASE)}

    needed: set[str] = set()
    todo = refs(" ".join(texts))
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= refs(by_name[name].this.sql(dialect="duckdb", normalize_functions=False))
    keep = [c for c in ctes if c.alias_or_name.lower() in needed]
    if not keep:
        return ""
    recursive = any(w.args.get("recursive") for w in withs)
    body = ", ".join(c.sql(dialect="duckdb", normalize_functions=False) for c in keep)
    return f"WITH {'RECURSIVE ' if recursive else ''}{body}"
