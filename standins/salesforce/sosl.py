"""A SOSL subset for the stand-in org: ``FIND`` parsed and matched the way the real API does.

SOSL: ``FIND {query} [IN ALL|NAME|EMAIL|PHONE FIELDS] [RETURNING Obj(f1, f2 [WHERE ...] [ORDER BY ...]
[LIMIT n]), ...] [LIMIT n]``. Reserved characters ``? & | ! { } [ ] ( ) ^ ~ * : \\ " ' + -`` must be
escaped with a backslash (``*`` and ``?`` are accepted unescaped as wildcards, ``"`` as phrase quotes and
``( )`` as grouping outside a phrase); the sandbox refuses other unescaped reserved characters with
MALFORMED_SEARCH (the real engine may be more lenient; escaping is always correct).

The query (SOQL and SOSL Reference, "FIND {SearchQuery}"): words and ``"quoted phrases"``, combined with
``AND``, ``OR``, ``AND NOT`` (case-insensitive; a quoted "and" / "or" is a word) and parentheses, evaluated
parentheses first, then AND / AND NOT from right to left, then OR; words with no operator between them are
ANDed (the documented default). An unclosed quote is MALFORMED_SEARCH (``FIND {"John Smith}`` "will not
succeed"). A query longer than 10,000 characters returns no rows (no error); longer than 4,000 characters
its operators are removed and every word / phrase is ORed, as documented.

Matching, per operand (a quoted phrase, or a run of words with no operator between them): text fields
match when every word is a token of some searched field (a phrase: the words in order, adjacent, in one
field); PHONE fields match when the record's phone digits END WITH the operand's digits, so
``FIND {9812345678 OR 9876543210}`` finds either number however it was typed, and ``{\\+91 98123\\-45678}``
is one number. How the real engine matches differently formatted numbers is (unconfirmed), as is treating
an unquoted run of words as one number for phone fields.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from standins.salesforce.schema import TEXT_TYPES, FieldSpec, ObjectSpec, Schema
from standins.salesforce.soql import Query, QueryError, SoqlParser, tokenize

_SOSL_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")
_SOSL_WILDCARDS = set("*?")
SEARCH_GROUPS = ("ALL", "NAME", "EMAIL", "PHONE")
# SOQL and SOSL Reference, "FIND {SearchQuery}": longer than 10,000 characters returns no rows; longer than
# 4,000 characters has its logical operators removed (AND, AND NOT and parentheses fall back to OR).
SEARCH_NO_ROWS_OVER = 10_000
SEARCH_NO_OPERATORS_OVER = 4_000
_INCOMPLETE = "No search term found. The search term must be enclosed in braces."


@dataclass(frozen=True)
class Term:
    """One operand of a search query: a run of plain words, or a quoted phrase.

    ``text`` is the unescaped text (phone matching takes its digits); ``words`` are the lower-cased
    words text fields are matched against, with ``*`` / ``?`` wildcards (escaped ones are dropped)."""

    text: str
    words: tuple[str, ...]
    phrase: bool

    @functools.cached_property
    def digits(self) -> str:
        """The digits phone fields are matched against (their last digits), computed once per search."""
        return _digits(self.text)

    @functools.cached_property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_word_pattern(w) for w in self.words)


@dataclass(frozen=True)
class AllOf:
    parts: tuple[SearchExpr, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[SearchExpr, ...]

    @functools.cached_property
    def suffixes(self) -> tuple[frozenset[str], tuple[int, ...]] | None:
        """For an OR of plain terms (a many-number phone search): the terms' digits and their lengths, so a
        phone is matched against all of them at once; None when some part is not a term."""
        if not all(isinstance(part, Term) for part in self.parts):
            return None
        digits = frozenset(part.digits for part in self.parts if isinstance(part, Term) and part.digits)
        return digits, tuple(sorted({len(d) for d in digits}))


@dataclass(frozen=True)
class Without:
    """``keep AND NOT drop``."""

    keep: SearchExpr
    drop: SearchExpr


SearchExpr = Term | AllOf | AnyOf | Without


@dataclass
class Search:
    term: str  # the raw text between the braces
    group: str
    returning: list[Query]
    limit: int | None = None
    expr: SearchExpr | None = None  # None: the search string is too long to return any row


@dataclass(frozen=True)
class _SToken:
    kind: str  # word / phrase / ( / )
    text: str  # unescaped text
    match_text: str  # the text for word matching: escaped wildcards turned into separators
    literal: bool  # quoted or escaped: never an operator

    def operator(self) -> str | None:
        if self.kind == "word" and not self.literal and self.text.upper() in ("AND", "OR", "NOT"):
            return self.text.upper()
        return None


class _SearchLexer:
    """Splits the text between ``FIND {`` and ``}`` into words, phrases and parentheses."""

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.index = start
        self.tokens: list[_SToken] = []
        self.chars: list[str] = []  # the word being read
        self.match_chars: list[str] = []
        self.escaped = False  # the word being read holds an escaped character
        self.phrase: list[str] | None = None  # the open phrase's words (text)
        self.phrase_match: list[str] = []

    def run(self) -> int:
        """Read up to the closing brace; returns the index after it."""
        while self.index < len(self.text):
            char = self.text[self.index]
            if char == "\\":
                self.escape()
                continue
            self.index += 1
            if char == "}":
                if self.phrase is not None:
                    raise QueryError("MALFORMED_SEARCH", "Invalid or incomplete phrase: a quote is not closed")
                self.end_word()
                return self.index
            if char.isspace():
                self.end_word()
            elif char == '"':
                self.quote()
            elif char in "()" and self.phrase is None:
                self.end_word()
                self.tokens.append(_SToken(char, char, char, literal=False))
            elif char in _SOSL_RESERVED and char not in _SOSL_WILDCARDS:
                raise QueryError(
                    "MALFORMED_SEARCH",
                    f"Invalid search term: reserved character '{char}' must be escaped with a backslash",
                )
            else:
                self.chars.append(char)
                self.match_chars.append(char)
        raise QueryError("MALFORMED_SEARCH", _INCOMPLETE)

    def escape(self) -> None:
        if self.index + 1 >= len(self.text):
            raise QueryError("MALFORMED_SEARCH", _INCOMPLETE)
        char = self.text[self.index + 1]
        self.index += 2
        self.chars.append(char)
        # An escaped * or ? is a literal character, which the index treats as punctuation (a separator).
        self.match_chars.append(" " if char in _SOSL_WILDCARDS else char)
        self.escaped = True

    def end_word(self) -> None:
        if self.chars:
            text, match_text = "".join(self.chars), "".join(self.match_chars)
            if self.phrase is not None:
                self.phrase.append(text)
                self.phrase_match.append(match_text)
            else:
                self.tokens.append(_SToken("word", text, match_text, literal=self.escaped))
        self.chars, self.match_chars, self.escaped = [], [], False

    def quote(self) -> None:
        self.end_word()
        if self.phrase is None:
            self.phrase, self.phrase_match = [], []
            return
        self.tokens.append(_SToken("phrase", " ".join(self.phrase), " ".join(self.phrase_match), literal=True))
        self.phrase = None


def _words(match_text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[\w*?]+", match_text.casefold()))


def _term(tokens: list[_SToken]) -> Term:
    return Term(
        " ".join(t.text for t in tokens),
        tuple(w for t in tokens for w in _words(t.match_text)),
        phrase=tokens[0].kind == "phrase",
    )


class _SearchParser:
    """Operators as documented: parentheses first, then AND / AND NOT (right to left), then OR; words with
    no operator between them are one operand (for text fields: all words; for phone fields: one number)."""

    def __init__(self, tokens: list[_SToken]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, offset: int = 0) -> _SToken | None:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def fail(self) -> QueryError:
        token = self.peek()
        shown = token.text if token else "<end of search term>"
        return QueryError("MALFORMED_SEARCH", f"Invalid search term: unexpected '{shown[:40]}'")

    def parse(self) -> SearchExpr:
        expr = self.any_of()
        if self.peek() is not None:
            raise self.fail()
        return expr

    def any_of(self) -> SearchExpr:
        parts = [self.all_of()]
        while (token := self.peek()) is not None and token.operator() == "OR":
            self.index += 1
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all_of(self) -> SearchExpr:
        left = self.unit()
        token = self.peek()
        if token is None or token.kind == ")" or token.operator() == "OR":
            return left
        negate = False
        if token.operator() == "AND":
            self.index += 1
            following = self.peek()
            negate = following is not None and following.operator() == "NOT"
            self.index += 1 if negate else 0
        right = self.all_of()  # right to left, as the reference says AND and AND NOT are evaluated
        return Without(left, right) if negate else AllOf((left, right))

    def unit(self) -> SearchExpr:
        token = self.peek()
        if token is None or token.kind == ")" or token.operator() in ("AND", "OR"):
            raise self.fail()
        if token.kind == "(":
            self.index += 1
            inner = self.any_of()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise self.fail()
            self.index += 1
            return inner
        if token.kind == "phrase":
            self.index += 1
            return _term([token])
        run = []
        while (word := self.peek()) is not None and word.kind == "word" and word.operator() not in ("AND", "OR"):
            run.append(word)
            self.index += 1
        return _term(run)


def _without_operators(tokens: list[_SToken]) -> SearchExpr:
    """Over 4,000 characters: operators and grouping are dropped and every word or phrase is OR-ed."""
    kept = []
    for index, token in enumerate(tokens):
        after_and = index > 0 and tokens[index - 1].operator() == "AND"
        if token.kind in ("(", ")") or token.operator() in ("AND", "OR") or (token.operator() == "NOT" and after_and):
            continue
        kept.append(_term([token]))
    if not kept:
        raise QueryError("MALFORMED_SEARCH", _INCOMPLETE)
    return kept[0] if len(kept) == 1 else AnyOf(tuple(kept))


def _search_expr(text: str) -> tuple[str, SearchExpr | None, int]:
    """The raw search query of ``FIND {...}``, its expression (None when too long for any row) and the
    index after the closing brace."""
    match = re.match(r"\s*FIND\s*\{", text, re.IGNORECASE)
    if not match:
        raise QueryError("MALFORMED_SEARCH", _INCOMPLETE)
    lexer = _SearchLexer(text, match.end())
    end = lexer.run()
    raw = text[match.end() : end - 1]
    searched = "".join(t.text for t in lexer.tokens if t.kind in ("word", "phrase") and t.operator() is None)
    if len(searched.replace("*", "").replace("?", "").strip()) < 2:
        raise QueryError("MALFORMED_SEARCH", "search term must be longer than one character")
    if len(raw) > SEARCH_NO_ROWS_OVER:
        return raw, None, end
    if len(raw) > SEARCH_NO_OPERATORS_OVER:
        return raw, _without_operators(lexer.tokens), end
    return raw, _SearchParser(lexer.tokens).parse(), end


def parse_sosl(text: str, schema: Schema) -> Search:
    raw, expr, index = _search_expr(text)
    parser = SoqlParser(tokenize(text[index:]), schema)
    group = "ALL"
    if parser.at_keyword("IN"):
        parser.advance()
        if not parser.at_keyword(*SEARCH_GROUPS):
            parser.unexpected()
        group = parser.advance().upper
        parser.expect_keyword("FIELDS")
    returning: list[Query] = []
    if parser.at_keyword("RETURNING"):
        parser.advance()
        while True:
            obj = parser.sobject()
            query = Query(obj, [obj.fields["id"]])
            if parser.current.kind == "punct" and parser.current.text == "(":
                parser.advance()
                query.fields = parser.field_list(obj)
                parser.tail(query)
                parser.expect_punct(")")
            returning.append(query)
            if not (parser.current.kind == "punct" and parser.current.text == ","):
                break
            parser.advance()
    else:
        returning = [Query(spec, [spec.fields["id"]]) for spec in schema.objects.values() if spec.searchable]
    search = Search(raw, group, returning, expr=expr)
    if parser.at_keyword("LIMIT"):
        parser.advance()
        search.limit = parser.number()
    if parser.current.kind != "eof":
        parser.unexpected()
    return search


def _searched_fields(obj: ObjectSpec, group: str) -> tuple[list[FieldSpec], list[FieldSpec]]:
    """(text fields, phone fields) that a search group looks at."""
    texts = [s for s in obj.fields.values() if s.type in TEXT_TYPES and s.type != "phone"]
    phones = [s for s in obj.fields.values() if s.type == "phone"]
    table = {
        "ALL": (texts, phones),
        "NAME": ([s for s in texts if s.name_field or s.name in ("FirstName", "LastName")], []),
        "EMAIL": ([s for s in texts if s.type == "email"], []),
        "PHONE": ([], phones),
    }
    return table[group]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


@dataclass(frozen=True)
class _Indexed:
    """A record as the search index holds it: each text field's tokens, each phone field's digits."""

    fields: tuple[tuple[str, ...], ...]
    phones: tuple[str, ...]


def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(re.escape(word).replace(r"\*", r"\w*").replace(r"\?", r"\w"))


def _has_run(tokens: tuple[str, ...], patterns: list[re.Pattern[str]]) -> bool:
    width = len(patterns)
    return any(
        all(p.fullmatch(t) for p, t in zip(patterns, tokens[start : start + width], strict=True))
        for start in range(len(tokens) - width + 1)
    )


def _term_hit(term: Term, indexed: _Indexed) -> bool:
    wanted = term.digits
    if wanted and any(phone.endswith(wanted) for phone in indexed.phones):
        return True
    if not term.words or not indexed.fields:
        return False
    patterns = list(term.patterns)
    if term.phrase:
        return any(_has_run(tokens, patterns) for tokens in indexed.fields)
    every = {t for tokens in indexed.fields for t in tokens}
    return all(any(p.fullmatch(t) for t in every) for p in patterns)


def _evaluate(expr: SearchExpr, indexed: _Indexed) -> bool:
    if isinstance(expr, Term):
        return _term_hit(expr, indexed)
    if isinstance(expr, AllOf):
        return all(_evaluate(part, indexed) for part in expr.parts)
    if isinstance(expr, AnyOf):
        if expr.suffixes is not None:
            digits, lengths = expr.suffixes
            if any(phone[-n:] in digits for phone in indexed.phones for n in lengths if len(phone) >= n):
                return True
            if not indexed.fields:
                return False  # no term can match by words either
        return any(_evaluate(part, indexed) for part in expr.parts)
    return _evaluate(expr.keep, indexed) and not _evaluate(expr.drop, indexed)


def search_matcher(search: Search, obj: ObjectSpec) -> Callable[[dict[str, Any]], bool]:
    """Whether a record of ``obj`` matches the search query in the searched field group (fields picked once)."""
    texts, phones = _searched_fields(obj, search.group)
    expr = search.expr
    if expr is None:
        return lambda _record: False

    def hit(record: dict[str, Any]) -> bool:
        indexed = _Indexed(
            tuple(tuple(re.findall(r"\w+", str(record.get(s.name) or "").casefold())) for s in texts),
            tuple(_digits(str(record.get(s.name) or "")) for s in phones),
        )
        return _evaluate(expr, indexed)

    return hit
