"""A SOQL subset for the stand-in org (tokenizer, parser, evaluator), parsed and evaluated the way the real API
does (SOSL, which reuses the tokenizer and parser for its RETURNING clause: ``sosl``).

SOQL: ``SELECT f1, f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]``; conditions ``= != <> < <= > >=``, ``[NOT] IN (...)``, ``LIKE`` (``%`` ``_``),
``AND`` / ``OR`` / ``NOT``, parentheses; mixing AND and OR without parentheses is refused, as in real SOQL.
Literals: strings with SOQL escapes (``\\' \\" \\\\ \\n \\r \\t \\b \\f \\uXXXX``; ``\\%`` ``\\_`` only
inside LIKE; any other backslash is MALFORMED_QUERY), numbers, ``true/false/null``, dates ``2024-05-01``
and datetimes ``2024-05-01T10:00:00Z``. String ``=`` is a case-insensitive EXACT comparison: phone
numbers are not normalised, so ``Phone = '9999999999'`` does not match ``+91 99999 99999``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standins.salesforce.schema import TEXT_TYPES, FieldSpec, ObjectSpec, Schema, normalize_id
from standins.salesforce.values import format_datetime, parse_datetime


class QueryError(Exception):
    """A query the API refuses with 400: errorCode (MALFORMED_QUERY, INVALID_FIELD, ...) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- tokens --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\d:T]))
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<string>')
    """,
    re.VERBOSE,
)
_SIMPLE_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


#: A whole string literal: any character but a quote or a backslash, or a backslash and the one after it.
_STRING_RE = re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'", re.DOTALL)


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The raw body of the string literal opening at ``start`` and the index after its closing quote."""
    match = _STRING_RE.match(text, start)
    if match is None:
        raise QueryError("MALFORMED_QUERY", f"unterminated string literal at position {start}")
    return match.group(1), match.end()


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        match = _TOKEN_RE.match(text, index)
        if not match or match.lastgroup is None:
            raise QueryError("MALFORMED_QUERY", f"unexpected token: '{text[index : index + 20]}'")
        kind = match.lastgroup
        if kind == "string":
            raw, index = _read_string(text, index)
            tokens.append(Token("string", raw, match.start()))
            continue
        if kind != "ws":
            tokens.append(Token(kind, match.group(), match.start()))
        index = match.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def unescape(raw: str, *, like: bool = False) -> list[tuple[str, bool]]:
    """The characters of a string literal, each with "was escaped"; invalid escapes are MALFORMED_QUERY."""
    out: list[tuple[str, bool]] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char != "\\":
            out.append((char, False))
            index += 1
            continue
        following = raw[index + 1 : index + 2]
        if following in _SIMPLE_ESCAPES:
            out.append((_SIMPLE_ESCAPES[following], True))
            index += 2
        elif following == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[index + 2 : index + 6]):
            out.append((chr(int(raw[index + 2 : index + 6], 16)), True))
            index += 6
        elif following in ("%", "_") and like:
            out.append((following, True))
            index += 2
        else:
            raise QueryError(
                "MALFORMED_QUERY",
                f"Invalid string literal '{raw[:40]}'. Illegal character sequence '\\{following}' in string literal.",
            )
    return out


def _plain(raw: str) -> str:
    if "\\" not in raw:  # nothing escaped: the literal is its text (read-ahead queries hold thousands)
        return raw
    return "".join(char for char, _ in unescape(raw))


def _like_regex(raw: str) -> re.Pattern[str]:
    parts = []
    for char, escaped in unescape(raw, like=True):
        if not escaped and char == "%":
            parts.append(".*")
        elif not escaped and char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


# --- conditions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    spec: FieldSpec
    op: str
    value: Any


@dataclass(frozen=True)
class InList:
    spec: FieldSpec
    values: tuple[Any, ...]
    negate: bool

    @functools.cached_property
    def keys(self) -> frozenset[Any]:
        """The values' comparable forms (``_key``), built once: a read-ahead lists thousands of numbers."""
        return frozenset(_key(self.spec, v) for v in self.values if v is not None)

    @functools.cached_property
    def has_null(self) -> bool:
        return any(v is None for v in self.values)

    def has(self, value: Any) -> bool:
        if value is None:
            return self.has_null
        return _key(self.spec, value) in self.keys


@dataclass(frozen=True)
class Like:
    spec: FieldSpec
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND / OR
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Compare | InList | Like | BoolOp | Not


@dataclass
class Query:
    sobject: ObjectSpec
    fields: list[FieldSpec]
    count_only: bool = False
    where: Condition | None = None
    order: list[tuple[FieldSpec, bool, bool]] = field(default_factory=list)  # spec, descending, nulls_last
    limit: int | None = None
    offset: int = 0


_KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "LIMIT",
        "OFFSET",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "RETURNING",
        "FIND",
    }
)


class SoqlParser:
    def __init__(self, tokens: list[Token], schema: Schema) -> None:
        self.tokens = tokens
        self.index = 0
        self.schema = schema

    # token helpers
    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "ident" and self.current.upper in words

    def expect_keyword(self, word: str) -> None:
        if not self.at_keyword(word):
            self.unexpected()
        self.advance()

    def expect_punct(self, char: str) -> None:
        if self.current.kind != "punct" or self.current.text != char:
            self.unexpected()
        self.advance()

    def unexpected(self) -> None:
        shown = self.current.text or "<EOF>"
        raise QueryError("MALFORMED_QUERY", f"unexpected token: '{shown}'")

    # schema helpers
    def sobject(self) -> ObjectSpec:
        token = self.advance()
        if token.kind != "ident" or token.upper in _KEYWORDS:
            raise QueryError("MALFORMED_QUERY", f"unexpected token: '{token.text or '<EOF>'}'")
        spec = self.schema.obj(token.text)
        if spec is None:
            raise QueryError(
                "INVALID_TYPE",
                f"sObject type '{token.text}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name. Please reference your WSDL or "
                "the describe call for the appropriate names.",
            )
        return spec

    def field_name(self) -> str:
        token = self.advance()
        if token.kind != "ident" or token.upper in _KEYWORDS:
            raise QueryError("MALFORMED_QUERY", f"unexpected token: '{token.text or '<EOF>'}'")
        return token.text

    @staticmethod
    def resolve(obj: ObjectSpec, name: str) -> FieldSpec:
        spec = obj.field(name)
        if spec is None:
            raise QueryError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a custom "
                "field, be sure to append the '__c' after the custom field name. Please reference your WSDL "
                "or the describe call for the appropriate names.",
            )
        return spec

    def number(self) -> int:
        token = self.advance()
        if token.kind != "number" or not token.text.isdigit():
            raise QueryError("MALFORMED_QUERY", f"unexpected token: '{token.text or '<EOF>'}'")
        return int(token.text)

    # grammar
    def condition(self, obj: ObjectSpec) -> Condition:
        first = self.negation(obj)
        if not self.at_keyword("AND", "OR"):
            return first
        op = self.current.upper
        parts = [first]
        while self.at_keyword(op):
            self.advance()
            parts.append(self.negation(obj))
        if self.at_keyword("AND", "OR"):
            # Real SOQL refuses "a AND b OR c": the precedence must be spelled out with parentheses.
            self.unexpected()
        return BoolOp(op, tuple(parts))

    def negation(self, obj: ObjectSpec) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.negation(obj))
        if self.current.kind == "punct" and self.current.text == "(":
            self.advance()
            inner = self.condition(obj)
            self.expect_punct(")")
            return inner
        return self.comparison(obj)

    def comparison(self, obj: ObjectSpec) -> Condition:
        spec = self.resolve(obj, self.field_name())
        if spec.type == "textarea":
            raise QueryError("INVALID_FIELD", f"field '{spec.name}' can not be filtered in a query call")
        if self.at_keyword("LIKE"):
            self.advance()
            token = self.advance()
            if token.kind != "string" or spec.type not in TEXT_TYPES | {"id", "reference"}:
                raise QueryError(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid operator on field '{spec.name}' or value for LIKE",
                )
            return Like(spec, _like_regex(token.text))
        negate = False
        if self.at_keyword("NOT"):
            self.advance()
            negate = True
            if not self.at_keyword("IN"):
                self.unexpected()
        if self.at_keyword("IN"):
            self.advance()
            self.expect_punct("(")
            values = [self.literal(spec)]
            while self.current.kind == "punct" and self.current.text == ",":
                self.advance()
                values.append(self.literal(spec))
            self.expect_punct(")")
            return InList(spec, tuple(values), negate)
        if self.current.kind != "op":
            self.unexpected()
        op = self.advance().text
        return Compare(spec, "!=" if op == "<>" else op, self.literal(spec))

    def literal(self, spec: FieldSpec) -> Any:
        token = self.advance()
        kind = token.kind
        if kind == "ident" and token.upper == "NULL":
            return None
        if spec.type in ("id", "reference"):
            if kind != "string":
                raise _type_error(spec, "string", quoted=True)
            text = _plain(token.text)
            record_id = normalize_id(text)
            if record_id is None:
                raise QueryError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text[:40]}")
            return record_id
        if spec.type in TEXT_TYPES:
            if kind != "string":
                raise _type_error(spec, "string", quoted=True)
            return _plain(token.text)
        if spec.type == "boolean":
            if kind != "ident" or token.upper not in ("TRUE", "FALSE"):
                raise _type_error(spec, "boolean", quoted=False)
            return token.upper == "TRUE"
        if spec.type in ("int", "double"):
            if kind != "number":
                raise _type_error(spec, "number", quoted=False)
            return float(token.text) if "." in token.text else int(token.text)
        if spec.type == "date":
            if kind != "date":
                raise _type_error(spec, "date", quoted=False)
            return token.text
        if spec.type == "datetime":
            moment = parse_datetime(token.text) if kind == "datetime" else None
            if moment is None:
                raise _type_error(spec, "datetime", quoted=False)
            return format_datetime(moment)
        raise _type_error(spec, spec.type, quoted=False)

    def order_by(self, obj: ObjectSpec) -> list[tuple[FieldSpec, bool, bool]]:
        self.expect_keyword("ORDER")
        self.expect_keyword("BY")
        order = []
        while True:
            spec = self.resolve(obj, self.field_name())
            descending = False
            if self.at_keyword("ASC", "DESC"):
                descending = self.advance().upper == "DESC"
            nulls_last = descending
            if self.at_keyword("NULLS"):
                self.advance()
                if not self.at_keyword("FIRST", "LAST"):
                    self.unexpected()
                nulls_last = self.advance().upper == "LAST"
            order.append((spec, descending, nulls_last))
            if not (self.current.kind == "punct" and self.current.text == ","):
                return order
            self.advance()

    def field_list(self, obj: ObjectSpec) -> list[FieldSpec]:
        specs = [self.resolve(obj, self.field_name())]
        while self.current.kind == "punct" and self.current.text == ",":
            self.advance()
            specs.append(self.resolve(obj, self.field_name()))
        return specs

    def tail(self, query: Query) -> None:
        """WHERE / ORDER BY / LIMIT / OFFSET, in that order, each optional."""
        if self.at_keyword("WHERE"):
            self.advance()
            query.where = self.condition(query.sobject)
        if self.at_keyword("ORDER"):
            query.order = self.order_by(query.sobject)
        if self.at_keyword("LIMIT"):
            self.advance()
            query.limit = self.number()
        if self.at_keyword("OFFSET"):
            self.advance()
            query.offset = self.number()


def _type_error(spec: FieldSpec, type_name: str, *, quoted: bool) -> QueryError:
    how = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    return QueryError(
        "INVALID_QUERY_FILTER_OPERATOR",
        f"value of filter criterion for field '{spec.name}' must be of type {type_name} and {how}",
    )


def parse_soql(text: str, schema: Schema) -> Query:
    """Parse ``text`` against ``schema``; raises ``QueryError`` like the API's 400 answers."""
    parser = SoqlParser(tokenize(text), schema)
    parser.expect_keyword("SELECT")
    count_only = False
    names: list[str] = []
    if parser.at_keyword("COUNT"):
        parser.advance()
        parser.expect_punct("(")
        parser.expect_punct(")")
        count_only = True
    else:
        names.append(parser.field_name())
        while parser.current.kind == "punct" and parser.current.text == ",":
            parser.advance()
            names.append(parser.field_name())
    parser.expect_keyword("FROM")
    obj = parser.sobject()
    fields = [parser.resolve(obj, name) for name in names]
    query = Query(obj, list({spec.name: spec for spec in fields}.values()), count_only)
    parser.tail(query)
    if parser.current.kind != "eof":
        parser.unexpected()
    return query


# --- evaluation ----------------------------------------------------------------------------------------


def _key(spec: FieldSpec, value: Any) -> Any:
    """Comparable form: text case-insensitively; everything else as stored."""
    if isinstance(value, str) and spec.type in TEXT_TYPES:
        return value.casefold()
    return value


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def matches(condition: Condition | None, record: dict[str, Any]) -> bool:
    """Whether ``record`` (canonical field names) satisfies ``condition``."""
    if condition is None:
        return True
    if isinstance(condition, BoolOp):
        results = (matches(part, record) for part in condition.parts)
        return all(results) if condition.op == "AND" else any(results)
    if isinstance(condition, Not):
        return not matches(condition.part, record)
    value = record.get(condition.spec.name)
    if isinstance(condition, Like):
        return isinstance(value, str) and condition.pattern.fullmatch(value) is not None
    if isinstance(condition, InList):
        found = condition.has(value)
        return not found if condition.negate else found
    if condition.value is None or value is None:
        both_null = condition.value is None and value is None
        return both_null if condition.op == "=" else (not both_null if condition.op == "!=" else False)
    left, right = _key(condition.spec, value), _key(condition.spec, condition.value)
    try:
        return _OPS[condition.op](left, right)
    except TypeError:
        return False


def _sort(records: list[dict[str, Any]], order: list[tuple[FieldSpec, bool, bool]]) -> list[dict[str, Any]]:
    ordered = list(records)
    for spec, descending, nulls_last in reversed(order):
        present = [r for r in ordered if r.get(spec.name) is not None]
        absent = [r for r in ordered if r.get(spec.name) is None]
        present.sort(key=lambda r, s=spec: _key(s, r[s.name]), reverse=descending)  # type: ignore[misc]
        ordered = present + absent if nulls_last else absent + present
    return ordered


def select(query: Query, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The matching records, ordered, offset and limited (full records; projection is the caller's)."""
    found = _sort([r for r in records if matches(query.where, r)], query.order)
    end = None if query.limit is None else query.offset + query.limit
    return found[query.offset : end]
