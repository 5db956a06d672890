"""TypeScript declarations of the plan JSON, generated from its JSON Schema.

`plan.schema.json` (next to this file) is the one description of `Plan.to_dict()`, the
`application/vnd.workbench.plan+json` output that labextension/ renders. This module turns
it into labextension/src/schema.ts: an interface per object of the schema (the plan, its
operators and input queries, the tree nodes), a type per other definition (`Paradigm`,
`PlanNode`, ...), and the constants `PLAN_MIME_TYPE`, `PARADIGMS` and `PARADIGM_COLOURS`
(from the schema's `x-mime-type` and `x-colours`). Pure Python, no npm:

    python -m workbench.plan.schema_ts          # rewrite labextension/src/schema.ts
    python -m workbench.plan.schema_ts --check  # exit 1 if it is not up to date

tests/plan/test_schema.py fails when the checked-in file differs from `generate()`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("plan.schema.json")
TS_PATH = Path(__file__).resolve().parents[2] / "labextension" / "src" / "schema.ts"

_PRIMITIVES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def paradigms(schema: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The paradigm enum, in the schema's order."""
    return tuple((schema or load_schema())["$defs"]["paradigm"]["enum"])


def paradigm_colours(schema: dict[str, Any] | None = None) -> dict[str, str]:
    """Each paradigm's colour (`x-colours` of the paradigm definition)."""
    return dict((schema or load_schema())["$defs"]["paradigm"]["x-colours"])


def _is_interface(definition: dict[str, Any]) -> bool:
    return definition.get("type") == "object" and "properties" in definition


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _type_name(name: str, definition: dict[str, Any]) -> str:
    """`inputQuery` (an object) -> `IInputQuery`; `paradigm` -> `Paradigm`."""
    return ("I" if _is_interface(definition) else "") + _pascal(name)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(value)


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else _literal(name)


def _union(parts: list[str]) -> str:
    return " | ".join(dict.fromkeys(parts)) or "never"


def _element(ts: str) -> str:
    """A type as the element of an array type: a union in parentheses (`(A | B)[]`)."""
    depth = 0
    for i, ch in enumerate(ts):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and ts.startswith(" | ", i):
            return f"({ts})"
    return ts


def _comment(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    text = " ".join(text.split()).replace("*/", "*\\/")
    return [f"{indent}/** {text} */"]


class _Generator:
    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.defs: dict[str, dict[str, Any]] = schema.get("$defs", {})

    def ref(self, ref: str) -> str:
        prefix = "#/$defs/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in self.defs:
            raise ValueError(f"unsupported $ref {ref!r}")
        name = ref[len(prefix) :]
        return _type_name(name, self.defs[name])

    def ts(self, s: dict[str, Any] | bool, indent: str = "") -> str:
        """The TypeScript type of a (sub)schema."""
        if s is True or s == {}:
            return "unknown"
        if s is False:
            return "never"
        if "$ref" in s:
            return self.ref(s["$ref"])
        if "const" in s:
            return _literal(s["const"])
        if "enum" in s:
            return _union([_literal(v) for v in s["enum"]])
        for combinator in ("oneOf", "anyOf"):
            if combinator in s:
                return _union([self.ts(sub, indent) for sub in s[combinator]])
        types = s.get("type")
        if types is None:
            return "unknown"
        parts = []
        for t in [types] if isinstance(types, str) else types:
            if t in _PRIMITIVES:
                parts.append(_PRIMITIVES[t])
            elif t == "array":
                parts.append(self.array(s, indent))
            elif t == "object":
                parts.append(self.object(s, indent))
            else:
                raise ValueError(f"unsupported type {t!r}")
        return _union(parts)

    def array(self, s: dict[str, Any], indent: str) -> str:
        if "prefixItems" in s:
            items = [self.ts(sub, indent) for sub in s["prefixItems"]]
            if s.get("items", True) is not False:
                items.append(f"...{_element(self.ts(s.get('items', True), indent))}[]")
            return f"[{', '.join(items)}]"
        if s.get("maxItems") == 0:
            return "[]"
        return f"{_element(self.ts(s.get('items', True), indent))}[]"

    def object(self, s: dict[str, Any], indent: str) -> str:
        if "properties" in s:
            inner = indent + "  "
            lines = self.members(s, inner)
            return "{\n" + "\n".join(lines) + f"\n{indent}}}"
        extra = s.get("additionalProperties", True)
        value = self.ts(extra, indent)
        names = s.get("propertyNames")
        if isinstance(names, dict) and ("$ref" in names or "enum" in names):
            return f"{{ [key in {self.ts(names, indent)}]?: {value} }}"
        return f"{{ [key: string]: {value} }}"

    def members(self, s: dict[str, Any], indent: str) -> list[str]:
        required = set(s.get("required", ()))
        lines: list[str] = []
        for name, sub in s["properties"].items():
            optional = "" if name in required else "?"
            lines += _comment(sub.get("description") if isinstance(sub, dict) else None, indent)
            lines.append(f"{indent}{_key(name)}{optional}: {self.ts(sub, indent)};")
        return lines

    def declaration(self, name: str, definition: dict[str, Any]) -> list[str]:
        lines = _comment(definition.get("description"), "")
        if _is_interface(definition):
            lines.append(f"export interface {name} {{")
            lines += self.members(definition, "  ")
            lines.append("}")
        else:
            lines.append(f"export type {name} = {self.ts(definition)};")
        return lines

    def module(self) -> str:
        schema = self.schema
        colours = paradigm_colours(schema)
        if list(colours) != list(paradigms(schema)):
            raise ValueError("x-colours must name every paradigm of the enum, in its order")
        out = [
            "/*",
            " * GENERATED by workbench/plan/schema_ts.py from workbench/plan/plan.schema.json: do not edit.",
            " * Regenerate with `python -m workbench.plan.schema_ts` (tests/plan/test_schema.py checks it).",
            " *",
            " * The types of `Plan.to_dict()`, the application/vnd.workbench.plan+json output.",
            " */",
            "",
            "/** The MIME type of a workbench plan. */",
            f"export const PLAN_MIME_TYPE = {_literal(schema['x-mime-type'])};",
            "",
        ]
        defs = dict(self.defs)
        paradigm = defs.pop("paradigm")
        out += self.declaration("Paradigm", paradigm) + [""]
        out += [
            "/** The paradigms in the order the optimizer lists them. */",
            "export const PARADIGMS: readonly Paradigm[] = [",
            ",\n".join(f"  {_literal(p)}" for p in paradigms(schema)),
            "];",
            "",
            "/** The colour of each paradigm (`x-colours` in the schema). */",
            "export const PARADIGM_COLOURS: Readonly<Record<Paradigm, string>> = {",
            ",\n".join(f"  {_key(p)}: {_literal(c)}" for p, c in colours.items()),
            "};",
            "",
        ]
        for name, definition in defs.items():
            out += self.declaration(_type_name(name, definition), definition) + [""]
        root = {k: v for k, v in schema.items() if k != "$defs"}
        out += self.declaration("I" + _pascal(schema.get("title", "Plan")), root)
        return "\n".join(out) + "\n"


def generate(schema: dict[str, Any] | None = None) -> str:
    """The text of labextension/src/schema.ts for the schema (by default plan.schema.json)."""
    return _Generator(schema if schema is not None else load_schema()).module()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the TypeScript file is not up to date")
    parser.add_argument("--out", type=Path, default=TS_PATH)
    args = parser.parse_args(argv)
    text = generate()
    current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is out of date: run python -m workbench.plan.schema_ts", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
