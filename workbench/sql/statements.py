"""Split dlsql text into statements and recognise the model statements.

dlsql is DuckDB SQL plus a few statements of our own. Those are parsed here from sqlglot's
DuckDB tokens (so strings, comments and `;` inside strings behave exactly as in SQL);
everything else is passed to DuckDB as written, so no DuckDB syntax is lost in translation.

    CREATE [OR REPLACE] MODEL name FROM 'path' [WITH (key = value, ...)]
    CREATE [OR REPLACE] MODEL name FROM PYTHON variable [WITH (...)]
    DROP MODEL [IF EXISTS] name
    SHOW MODELS
    DESCRIBE MODEL name
    ALTER MODEL name SET key = value [, key = value ...]
    EXPLAIN [ANALYZE] statement
    CALL procedure(args)          -- when `procedure` is a workbench procedure
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from workbench.errors import SQLSyntaxError

_DIALECT = DuckDB()


@dataclass(frozen=True)
class Statement:
    """One statement of a dlsql text; `start` is its offset in the whole text."""

    text: str
    start: int


@dataclass(frozen=True)
class Sql(Statement):
    """Plain DuckDB SQL, possibly calling models as functions."""

    tokens: tuple[Token, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class CreateModel(Statement):
    name: str = ""
    path: str | None = None
    python_var: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    replace: bool = False


@dataclass(frozen=True)
class DropModel(Statement):
    name: str = ""
    if_exists: bool = False


@dataclass(frozen=True)
class ShowModels(Statement):
    pass


@dataclass(frozen=True)
class DescribeModel(Statement):
    name: str = ""


@dataclass(frozen=True)
class AlterModel(Statement):
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Explain(Statement):
    analyze: bool = False
    statement: Statement | None = None


@dataclass(frozen=True)
class Setting(Statement):
    """SET of a workbench setting (e.g. `SET memory_budget_cpu = '512MB'`)."""

    name: str = ""
    value: Any = None


@dataclass(frozen=True)
class Call(Statement):
    """CALL of a workbench procedure (e.g. `CALL load_dataset('pydoc')`)."""

    procedure: str = ""
    args: tuple[Any, ...] = ()


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """sqlglot's DuckDB tokens, with positions relative to the whole text.

    sqlglot reads commands it does not parse (EXPLAIN, CALL) as one keyword plus the raw
    rest of the text; we tokenize that rest as well, so it splits and classifies like SQL.
    """
    try:
        raw = _DIALECT.tokenize(text)
    except TokenError as exc:
        raise SQLSyntaxError(f"cannot read the SQL text: {exc}") from None
    tokens: list[Token] = []
    for tok in raw:
        tok.start += offset
        tok.end += offset
        tokens.append(tok)
        if tok.token_type == TokenType.COMMAND:
            tok.token_type = TokenType.VAR
            rest = tok.end + 1 - offset
            return tokens + tokenize(text[rest:], offset + rest)
    return tokens


def split(
    text: str, procedures: frozenset[str] = frozenset(), settings: frozenset[str] = frozenset()
) -> list[Statement]:
    """Split `text` at top-level semicolons and classify each statement.

    `procedures` and `settings` name the workbench's own CALL procedures and SET settings;
    other CALLs and SETs are DuckDB's.
    """
    tokens = tokenize(text)
    statements: list[Statement] = []
    current: list[Token] = []
    for tok in [*tokens, None]:
        if tok is None or tok.token_type == TokenType.SEMICOLON:
            if current:
                start, end = current[0].start, current[-1].end + 1
                statements.append(classify(text[start:end], start, current, procedures, settings))
            current = []
        else:
            current.append(tok)
    return statements


def classify(
    text: str,
    start: int,
    tokens: list[Token],
    procedures: frozenset[str] = frozenset(),
    settings: frozenset[str] = frozenset(),
) -> Statement:
    words = [_word(t) for t in tokens[:4]]
    if words[:1] == ["explain"]:
        analyze = len(words) > 1 and words[1] == "analyze"
        rest = tokens[2:] if analyze else tokens[1:]
        if not rest:
            raise SQLSyntaxError("EXPLAIN needs a statement to explain")
        inner_start = rest[0].start
        inner = classify(text[inner_start - start :], inner_start, rest, procedures, settings)
        return Explain(text, start, analyze=analyze, statement=inner)
    parser = _ModelStatementParser(text, start, tokens)
    if words[:2] == ["create", "model"] or words[:4] == ["create", "or", "replace", "model"]:
        return parser.create_model()
    if words[:2] == ["drop", "model"]:
        return parser.drop_model()
    if words[:2] == ["show", "models"]:
        parser.expect_end(2)
        return ShowModels(text, start)
    if words[:2] in (["describe", "model"], ["desc", "model"]):
        return parser.describe_model()
    if words[:2] == ["alter", "model"]:
        return parser.alter_model()
    if words[:1] == ["call"] and len(words) > 1 and words[1] in procedures:
        return parser.call()
    if words[:1] == ["set"] and len(words) > 1 and words[1] in settings:
        return parser.setting()
    return Sql(text, start, tokens=tuple(tokens))


def _word(tok: Token) -> str:
    return tok.text.lower() if tok.token_type != TokenType.STRING else ""


class _ModelStatementParser:
    """A tiny recursive-descent parser over the tokens of one model statement."""

    def __init__(self, text: str, start: int, tokens: list[Token]):
        self.text, self.start, self.tokens, self.i = text, start, tokens, 0

    # -- statements -------------------------------------------------------------------
    def create_model(self) -> CreateModel:
        self.keyword("create")
        replace = self.accept("or")
        if replace:
            self.keyword("replace")
        self.keyword("model")
        name = self.name("model name")
        self.keyword("from")
        path = var = None
        if self.accept("python"):
            var = self.name("Python variable name")
        else:
            path = self.string("a quoted path or PYTHON variable")
        options = self.with_options() if self.accept("with") else {}
        self.expect_end()
        return CreateModel(
            self.text,
            self.start,
            name=name,
            path=path,
            python_var=var,
            options=options,
            replace=replace,
        )

    def drop_model(self) -> DropModel:
        self.keyword("drop")
        self.keyword("model")
        if_exists = self.accept("if")
        if if_exists:
            self.keyword("exists")
        name = self.name("model name")
        self.expect_end()
        return DropModel(self.text, self.start, name=name, if_exists=if_exists)

    def describe_model(self) -> DescribeModel:
        self.i = 2
        name = self.name("model name")
        self.expect_end()
        return DescribeModel(self.text, self.start, name=name)

    def alter_model(self) -> AlterModel:
        self.i = 2
        name = self.name("model name")
        self.keyword("set")
        options = self.assignments(end=None)
        self.expect_end()
        return AlterModel(self.text, self.start, name=name, options=options)

    def call(self) -> Call:
        self.i = 1
        proc = self.name("procedure name")
        self.symbol(TokenType.L_PAREN, "(")
        args: list[Any] = []
        while not self.peek_type(TokenType.R_PAREN):
            args.append(self.value())
            if not self.peek_type(TokenType.R_PAREN):
                self.symbol(TokenType.COMMA, ",")
        self.symbol(TokenType.R_PAREN, ")")
        self.expect_end()
        return Call(self.text, self.start, procedure=proc, args=tuple(args))

    def setting(self) -> Setting:
        self.i = 1
        name = self.name("setting name").lower()
        tok = self.next("'=' or TO")
        if tok.token_type != TokenType.EQ and tok.text.lower() != "to":
            self.fail(tok, "'=' or TO")
        value = self.value()
        self.expect_end()
        return Setting(self.text, self.start, name=name, value=value)

    # -- pieces -----------------------------------------------------------------------
    def with_options(self) -> dict[str, Any]:
        self.symbol(TokenType.L_PAREN, "(")
        options = self.assignments(end=TokenType.R_PAREN)
        self.symbol(TokenType.R_PAREN, ")")
        return options

    def assignments(self, end: TokenType | None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        while self.i < len(self.tokens) and not self.peek_type(end):
            key = self.name("option name").lower()
            self.symbol(TokenType.EQ, "=")
            options[key] = self.value()
            if self.peek_type(TokenType.COMMA):
                self.i += 1
            else:
                break
        return options

    def value(self) -> Any:
        tok = self.next("a value")
        if tok.token_type == TokenType.STRING:
            return tok.text
        if tok.token_type == TokenType.NUMBER:
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        if tok.token_type == TokenType.DASH:
            number = self.value()
            if isinstance(number, (int, float)):
                return -number
        word = tok.text.lower()
        if word in ("true", "false"):
            return word == "true"
        if word == "null":
            return None
        if tok.text.isidentifier():
            return tok.text
        self.fail(tok, "a value")

    def keyword(self, word: str) -> None:
        tok = self.next(word.upper())
        if tok.text.lower() != word:
            self.fail(tok, word.upper())

    def accept(self, word: str) -> bool:
        if self.i < len(self.tokens) and _word(self.tokens[self.i]) == word:
            self.i += 1
            return True
        return False

    def name(self, what: str) -> str:
        tok = self.next(what)
        if tok.token_type == TokenType.STRING or not (
            tok.token_type == TokenType.IDENTIFIER or tok.text.isidentifier()
        ):
            self.fail(tok, what)
        return tok.text

    def string(self, what: str) -> str:
        tok = self.next(what)
        if tok.token_type != TokenType.STRING:
            self.fail(tok, what)
        return tok.text

    def symbol(self, kind: TokenType, shown: str) -> None:
        tok = self.next(f"'{shown}'")
        if tok.token_type != kind:
            self.fail(tok, f"'{shown}'")

    def peek_type(self, kind: TokenType | None) -> bool:
        return kind is not None and self.i < len(self.tokens) and self.tokens[self.i].token_type == kind

    def next(self, what: str) -> Token:
        if self.i >= len(self.tokens):
            raise SQLSyntaxError(f"expected {what} at the end of: {self.text.strip()}")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect_end(self, at: int | None = None) -> None:
        if at is not None:
            self.i = at
        if self.i < len(self.tokens):
            self.fail(self.tokens[self.i], "the end of the statement")

    def fail(self, tok: Token, expected: str):
        raise SQLSyntaxError(
            f"expected {expected} but found '{tok.text}' (line {tok.line}, column "
            f"{tok.col - len(tok.text) + 1}) in: {self.text.strip()}"
        )
