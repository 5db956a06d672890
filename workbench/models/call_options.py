"""Options one call passes by name: `gen(prompt, max_new_tokens := 20, seed := 1)`.

DuckDB's named-argument syntax (`name := value`, or `name => value`) after a model's
inputs sets, for that call alone, what the model's WITH options set for every call. Only
a task that lists an option takes it (today: generation's decoding options). The values
are constants, checked here when the statement is planned, so a wrong one is a one-line
error before any model runs; the model applies them (`Model.with_options`), and its
fingerprint includes them, so calls with different options never share cached outputs.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import InputTypeError

#: per task: option -> what its value must be (the checks below)
TASK_OPTIONS: dict[str, dict[str, str]] = {
    "generate": {
        "max_new_tokens": "a positive integer",
        "temperature": "a number of at least 0",
        "top_p": "a number between 0 and 1",
        "stop": "a string or a list of strings",
        "seed": "an integer",
        "chat": "true or false",
        "truncate": "'error' or 'left'",
    },
}

#: a call's options, in the order written: ((name, value), ...), values hashable
CallOptions = tuple[tuple[str, Any], ...]


def check(call_text: str, model_name: str, task: str, given: list[tuple[str, Any]]) -> CallOptions:
    """The options checked against the model's task: unknown names, repeats and values of
    the wrong type are refused with one line that names the call."""
    known = TASK_OPTIONS.get(task, {})
    seen: dict[str, Any] = {}
    for name, value in given:
        if name not in known:
            if not known:
                raise InputTypeError(f"{call_text}: model '{model_name}' (task '{task}') takes no named options")
            raise InputTypeError(
                f"{call_text}: model '{model_name}' has no option '{name}' (its options: {', '.join(known)})"
            )
        if name in seen:
            raise InputTypeError(f"{call_text}: option '{name}' is given twice")
        if not _valid(name, value):
            raise InputTypeError(f"{call_text}: {name} must be {known[name]}, not {_shown(value)}")
        seen[name] = tuple(value) if isinstance(value, list) else value
    return tuple(seen.items())


def _valid(name: str, value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "max_new_tokens":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if name == "temperature":
        return number and value >= 0
    if name == "top_p":
        return number and 0 <= value <= 1
    if name == "stop":
        items = value if isinstance(value, list) else [value]
        return bool(items) and all(isinstance(s, str) and s for s in items)
    if name == "seed":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "chat":
        return isinstance(value, bool)
    if name == "truncate":
        return value in ("error", "left")
    return False


def _shown(value: Any) -> str:
    return "NULL" if value is None else repr(value)
