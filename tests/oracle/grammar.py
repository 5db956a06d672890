"""Statements generated from a small grammar of DuckDB SQL, with a fixed seed.

Each statement is one of a few templates (filter, aggregate, join, CTE, set operation,
window, subquery, DISTINCT, top-N), filled with typed expressions over the oracle's tables:
columns and model outputs (`digits(p.pixels).label`, `reg(p.pixels)`, `cls4(n.v).label`,
`vec4(n.v)[2]`, `emb(e.item).score`...) combined by arithmetic, CASE, COALESCE, string
functions, comparisons, IN, BETWEEN, IS NULL, AND / OR / NOT. Every statement calls a model.

Hazards the grammar stays clear of, so that a difference is the engine's: floats are never
compared for equality, grouped on or deduplicated; LIMIT comes only after an ORDER BY that
ends in a unique key; constants come from each leaf's own range so predicates select some rows.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tests.oracle.corpus import Case

SEED = 14
COUNT = 180
MODEL_CALL = re.compile(r"\b(digits|reg|cls4|vec4|emb)\(")


@dataclass(frozen=True)
class Leaf:
    sql: str  # `{a}` is the table's alias
    kind: str  # 'int', 'float' or 'str'
    values: tuple = ()  # ints: (lo, hi); floats: (lo, hi); strs: the values it takes


@dataclass(frozen=True)
class Source:
    table: str
    alias: str
    leaves: tuple[Leaf, ...]
    bound: tuple[str, ...] = ()  # predicates that keep the input small (one is picked, or none)

    def of(self, kind: str, model: bool | None = None) -> list[Leaf]:
        return [x for x in self.leaves if x.kind == kind and (model is None or bool(MODEL_CALL.search(x.sql)) == model)]


PX = Source(
    "px",
    "p",
    (
        Leaf("{a}.id", "int", (0, 301)),
        Leaf("{a}.label", "int", (0, 9)),
        Leaf("digits({a}.pixels).label", "int", (0, 9)),
        Leaf("digits({a}.pixels).score", "float", (0.95, 1.0)),
        Leaf("reg({a}.pixels)", "float", (0.0, 3.0)),
        Leaf("{a}.pixels[10]", "float", (0.0, 16.0)),
    ),
    bound=("{a}.id < 40", "{a}.id < 120", "{a}.id BETWEEN 200 AND 301", "{a}.id % 5 = 0"),
)
NUMS = Source(
    "nums",
    "n",
    (
        Leaf("{a}.id", "int", (0, 39)),
        Leaf("{a}.k", "int", (0, 3)),
        Leaf("{a}.g", "str", ("x", "y", "z")),
        Leaf("{a}.v[1]", "float", (-1.0, 1.0)),
        Leaf("cls4({a}.v).label", "str", ("lo", "mid", "hi")),
        Leaf("cls4({a}.v).score", "float", (0.5, 0.99)),
        Leaf("vec4({a}.v)[1]", "float", (-0.42, -0.05)),
        Leaf("vec4({a}.v)[3]", "float", (0.07, 0.3)),
    ),
)
EV = Source(
    "ev",
    "e",
    (
        Leaf("{a}.id", "int", (0, 59)),
        Leaf("{a}.qty", "int", (0, 4)),
        Leaf("{a}.item", "int", (0, 39)),
        Leaf("emb({a}.item).label", "int", (0, 2)),
        Leaf("emb({a}.item).score", "float", (0.35, 0.9)),
    ),
)
SOURCES = (PX, NUMS, EV)
#: joins on a key both sides share: (left, right, condition)
JOINS = (
    (PX, NUMS, "p.id = n.id"),
    (PX, EV, "p.id = e.id"),
    (NUMS, EV, "n.id = e.id"),
    (NUMS, EV, "n.k = e.qty"),
    (PX, EV, "digits(p.pixels).label = e.qty"),
)


class Generator:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    # -- expressions ------------------------------------------------------------------------
    def leaf(self, sources: list[Source], kind: str, model: bool | None = None) -> tuple[str, Leaf]:
        options = [(s, x) for s in sources for x in s.of(kind, model)]
        if not options:
            options = [(s, x) for s in sources for x in s.of(kind)]
        source, leaf = self.r.choice(options)
        return leaf.sql.format(a=source.alias), leaf

    def const(self, leaf: Leaf) -> str:
        if leaf.kind == "str":
            return f"'{self.r.choice(leaf.values)}'"
        lo, hi = leaf.values
        if leaf.kind == "int":
            return str(self.r.randint(lo, hi))
        return f"{self.r.uniform(lo, hi):.3f}"

    def expr(self, sources: list[Source], kind: str, depth: int = 2) -> str:
        if not any(s.of(kind) for s in sources):  # a table without text columns: text from a number
            return f"CAST({self.expr(sources, 'int', depth)} AS VARCHAR)"
        sql, leaf = self.leaf(sources, kind)
        if depth <= 0 or self.r.random() < 0.45:
            return sql
        r = self.r
        if kind == "int":
            return r.choice(
                [
                    lambda: f"{sql} + {r.randint(1, 9)}",
                    lambda: f"{sql} * {r.randint(2, 5)}",
                    lambda: f"{sql} % {r.randint(2, 4)}",
                    lambda: f"coalesce({sql}, -1)",
                    lambda: f"abs({sql} - {self.const(leaf)})",
                    lambda: f"CASE WHEN {self.pred(sources, depth - 1)} THEN {sql} ELSE {r.randint(-3, 3)} END",
                    lambda: f"greatest({sql}, {self.expr(sources, 'int', depth - 1)})",
                    lambda: f"length({self.expr(sources, 'str', depth - 1)})",
                ]
            )()
        if kind == "float":
            return r.choice(
                [
                    lambda: f"{sql} * {r.choice([2, 0.5, -1, 10])}",
                    lambda: f"{sql} + {self.expr(sources, 'int', depth - 1)}",
                    lambda: f"{sql} - {self.expr(sources, 'float', depth - 1)}",
                    lambda: f"coalesce({sql}, 0.0)",
                    lambda: f"abs({sql})",
                    lambda: f"CASE WHEN {self.pred(sources, depth - 1)} THEN {sql} ELSE {self.const(leaf)} END",
                    lambda: f"sqrt(abs({sql}))",
                ]
            )()
        return r.choice(
            [
                lambda: f"upper({sql})",
                lambda: f"{sql} || '_' || CAST({self.expr(sources, 'int', depth - 1)} AS VARCHAR)",
                lambda: f"coalesce({sql}, 'none')",
                lambda: f"CASE WHEN {self.pred(sources, depth - 1)} THEN {sql} ELSE 'other' END",
                lambda: f"left({sql}, 1)",
            ]
        )()

    def pred(self, sources: list[Source], depth: int = 2, model: bool | None = None) -> str:
        r = self.r
        if depth > 0 and r.random() < 0.3:
            a, b = self.pred(sources, depth - 1, model), self.pred(sources, depth - 1)
            return r.choice([f"({a} AND {b})", f"({a} OR {b})", f"NOT ({a})"])
        kind = r.choice([k for k in ("int", "int", "float", "str") if any(s.of(k) for s in sources)])
        sql, leaf = self.leaf(sources, kind, model)
        roll = r.random()
        if roll < 0.1:
            return f"{sql} IS {r.choice(['', 'NOT '])}NULL"
        if kind == "float":
            return f"{sql} {r.choice(['<', '>'])} {self.const(leaf)}"
        if kind == "str":
            if roll < 0.5:
                return f"{sql} {r.choice(['=', '<>'])} {self.const(leaf)}"
            return f"{sql} IN ({', '.join(sorted({self.const(leaf) for _ in range(2)}))})"
        if roll < 0.25:
            lo = int(self.const(leaf))
            return f"{sql} BETWEEN {lo} AND {lo + r.randint(0, 4)}"
        if roll < 0.4:
            return f"{sql} IN ({', '.join(sorted({self.const(leaf) for _ in range(3)}))})"
        return f"{sql} {r.choice(['=', '<>', '<', '>', '<=', '>='])} {self.const(leaf)}"

    def bound(self, source: Source) -> list[str]:
        if not source.bound or self.r.random() < 0.2:
            return []
        return [self.r.choice(source.bound).format(a=source.alias)]

    def items(self, sources: list[Source], n: int) -> list[str]:
        kinds = [self.r.choice(["int", "float", "str", "int"]) for _ in range(n)]
        out = []
        for i, kind in enumerate(kinds):
            if not any(s.of(kind) for s in sources):
                kind = "float"
            out.append(f"{self.expr(sources, kind)} AS c{i}")
        return out

    # -- statements ---------------------------------------------------------------------------
    def filter(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        where = self.bound(s) + ([self.pred([s], model=True)] if self.r.random() < 0.8 else [])
        sql = f"SELECT {s.alias}.id, {', '.join(self.items([s], self.r.randint(1, 3)))} FROM {s.table} {s.alias}"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        if self.r.random() < 0.5:
            return sql + f" ORDER BY {s.alias}.id", True
        return sql, False

    def aggregate(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        key = self.expr([s], self.r.choice(["int", "str"] if s.of("str") else ["int"]), depth=1)
        aggs = []
        for i in range(self.r.randint(1, 3)):
            f = self.expr([s], "float", 1)
            n = self.expr([s], "int", 1)
            aggs.append(
                self.r.choice(
                    [
                        "count(*)",
                        f"count({n})",
                        f"sum({f})",
                        f"avg({f})",
                        f"max({f})",
                        f"min({n})",
                        f"count(DISTINCT {n})",
                        f"bool_or({self.pred([s], 1)})",
                        f"list({n} ORDER BY {s.alias}.id)",
                        f"sum({n}) FILTER (WHERE {self.pred([s], 1)})",
                    ]
                )
                + f" AS a{i}"
            )
        sql = f"SELECT {key} AS grp, {', '.join(aggs)} FROM {s.table} {s.alias}"
        where = self.bound(s)
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        sql += " GROUP BY grp"
        if self.r.random() < 0.4:
            having = self.r.choice(["count(*) > 1", f"max({self.expr([s], 'float', 0)}) > 0"])
            sql += f" HAVING {having}"
        return sql + " ORDER BY grp", True

    def join(self) -> tuple[str, bool]:
        left, right, on = self.r.choice(JOINS)
        kind = self.r.choice(["JOIN", "JOIN", "LEFT JOIN"])
        if self.r.random() < 0.25:
            on += f" AND {self.pred([left, right], 1, model=True)}"
        both = [left, right]
        where = (["p.id < 60"] if left is PX and self.r.random() < 0.5 else []) + (
            [self.pred(both, 1)] if self.r.random() < 0.6 else []
        )
        keys = f"{left.alias}.id AS lid, {right.alias}.id AS rid"
        sql = f"SELECT {keys}, {', '.join(self.items(both, self.r.randint(1, 3)))} FROM {left.table} {left.alias} "
        sql += f"{kind} {right.table} {right.alias} ON {on}"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        return sql + " ORDER BY lid, rid NULLS FIRST", True

    def cte(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        inner = [f"{self.expr([s], k, 1)} AS {n}" for n, k in (("a", "int"), ("b", "float"))]
        where = self.bound(s)
        body = f"SELECT {s.alias}.id, {', '.join(inner)} FROM {s.table} {s.alias}"
        body += f" WHERE {' AND '.join(where)}" if where else ""
        outer = self.r.choice(
            [
                f"SELECT id, a + 1 AS a1, b * 2 AS b2 FROM t WHERE a {self.r.choice(['<', '>='])} "
                f"{self.r.randint(0, 5)}",
                "SELECT a, count(*) AS n, sum(b) AS total FROM t GROUP BY a",
                "SELECT t1.id, t2.id AS id2 FROM t t1 JOIN t t2 ON t1.a = t2.a AND t1.id < t2.id",
                f"SELECT id, b FROM t WHERE b > (SELECT avg(b) FROM t) AND a <> {self.r.randint(0, 3)}",
            ]
        )
        ordered = "ORDER BY" not in outer and self.r.random() < 0.5 and outer.startswith("SELECT id")
        return f"WITH t AS ({body}) {outer}" + (" ORDER BY id" if ordered else ""), ordered

    def setop(self) -> tuple[str, bool]:
        op = self.r.choice(["UNION", "UNION ALL", "INTERSECT", "EXCEPT", "EXCEPT ALL"])
        parts = []
        for _ in range(2):
            s = self.r.choice(SOURCES)
            where = self.bound(s) + [self.pred([s], 1)]
            parts.append(f"SELECT {self.expr([s], 'int', 1)} AS x FROM {s.table} {s.alias} WHERE {' AND '.join(where)}")
        ordered = op in ("UNION", "INTERSECT", "EXCEPT") and self.r.random() < 0.5
        return f" {op} ".join(parts) + (" ORDER BY x" if ordered else ""), ordered

    def window(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        part = self.expr([s], self.r.choice(["int", "str"] if s.of("str") else ["int"]), depth=0)
        f, n = self.expr([s], "float", 1), self.expr([s], "int", 1)
        fn = self.r.choice(
            ["row_number()", "count(*)", f"sum({f})", f"lag({n})", f"max({n})", f"first_value({n})", "rank()"]
        )
        over = f"OVER (PARTITION BY {part} ORDER BY {s.alias}.id)"
        where = self.bound(s)
        sql = f"SELECT {s.alias}.id, {fn} {over} AS w FROM {s.table} {s.alias}"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        return sql + f" ORDER BY {s.alias}.id", True

    def subquery(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        shape = self.r.choice(["in", "exists", "scalar"])
        o = self.r.choice(SOURCES) if shape == "in" else s  # ids of other tables overlap only below 40
        inner_alias = o.alias + "2"
        inner = Source(o.table, inner_alias, o.leaves, o.bound)
        where = self.bound(s) if shape != "in" else []
        if shape == "in":
            where.append(
                f"{s.alias}.id {self.r.choice(['IN', 'NOT IN'])} (SELECT {inner_alias}.id FROM {o.table} {inner_alias} "
                f"WHERE {self.pred([inner], 1, model=True)})"
            )
        elif shape == "exists":
            where.append(
                f"EXISTS (SELECT 1 FROM {o.table} {inner_alias} WHERE {inner_alias}.id = {s.alias}.id + 1 "
                f"AND {self.pred([inner], 1, model=True)})"
            )
        else:  # rows above the average of a model output
            leaf = self.r.choice(s.of("float", model=True))
            outer, avg = leaf.sql.format(a=s.alias), leaf.sql.format(a=inner_alias)
            where.append(f"{outer} > (SELECT avg({avg}) FROM {o.table} {inner_alias})")
        sql = (
            f"SELECT {s.alias}.id, {', '.join(self.items([s], 1))} FROM {s.table} {s.alias} WHERE {' AND '.join(where)}"
        )
        return sql + f" ORDER BY {s.alias}.id", True

    def distinct(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        kinds = [k for k in self.r.choice([["int"], ["int", "str"], ["str"]]) if s.of(k)] or ["int"]
        cols = [f"{self.expr([s], k, 1)} AS d{i}" for i, k in enumerate(kinds)]
        where = self.bound(s)
        sql = f"SELECT DISTINCT {', '.join(cols)} FROM {s.table} {s.alias}"
        return sql + (f" WHERE {' AND '.join(where)}" if where else ""), False

    def top(self) -> tuple[str, bool]:
        s = self.r.choice(SOURCES)
        key, _ = self.leaf([s], "int", model=True)
        direction = self.r.choice(["", " DESC"])
        where = self.bound(s)
        sql = f"SELECT {s.alias}.id, {key} AS k FROM {s.table} {s.alias}"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        sql += f" ORDER BY k{direction} NULLS LAST, {s.alias}.id LIMIT {self.r.randint(1, 12)}"
        return sql + (f" OFFSET {self.r.randint(1, 5)}" if self.r.random() < 0.3 else ""), True

    TEMPLATES = ("filter", "aggregate", "join", "cte", "setop", "window", "subquery", "distinct", "top")

    def statement(self) -> tuple[str, str, bool]:
        while True:
            name = self.r.choice(self.TEMPLATES)
            sql, ordered = getattr(self, name)()
            if MODEL_CALL.search(sql):
                return name, sql, ordered


def generated(seed: int = SEED, count: int = COUNT) -> list[Case]:
    """`count` statements, the same ones on every run for one seed."""
    g = Generator(seed)
    cases = []
    for i in range(count):
        name, sql, ordered = g.statement()
        cases.append(Case(f"gen-{name}-{i + 1}", sql, ordered=ordered))
    return cases
