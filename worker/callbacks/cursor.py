"""The grammar's position in a phrase's tokens: look-ahead helpers shared by the rule families
(`clock.ClockRules` for times of day, `parse._Walk` for days, dates and the walk itself)."""

from __future__ import annotations

from typing import Literal

from worker.callbacks.lexicon import Tag, Tok
from worker.callbacks.spec import Spec

LastKind = Literal["day", "part", "other"] | None


class Cursor:
    """Tokens, the position in them, and the `Spec` being filled. `last` remembers whether the previous
    reading was a day or a part of day, because only there may a plain number be an hour ("kal 11",
    "raat 8", "tonight 8")."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.spec = Spec(words=len(toks))
        self.last: LastKind = None

    def tag(self, k: int = 0) -> Tag | None:
        """The tag k tokens ahead (negative: behind), None outside the phrase."""
        j = self.i + k
        return self.toks[j].tag if 0 <= j < len(self.toks) else None

    def text(self, k: int = 0) -> str:
        return self.toks[self.i + k].text

    def sval(self, k: int = 0) -> str:
        return str(self.toks[self.i + k].value)

    def value(self, k: int = 0) -> object:
        return self.toks[self.i + k].value

    def num(self, k: int = 0) -> int:
        value = self.toks[self.i + k].value
        assert isinstance(value, int)
        return value

    def fval(self, k: int = 0) -> float:
        value = self.toks[self.i + k].value
        assert isinstance(value, int | float)
        return float(value)

    def is_word_number(self, k: int) -> bool:
        return self.tag(k) is Tag.NUM and not self.text(k).isdigit()

    def unit_is(self, k: int, *units: str) -> bool:
        return self.tag(k) is Tag.UNIT and self.sval(k) in units

    def done(self, n: int, kind: LastKind) -> bool:
        self.i += n
        self.last = kind
        return True

    def quantity(self, k: int) -> tuple[float | None, int] | None:
        """A quantity k tokens ahead: (value, tokens used); value None for "a few"/"kuch"."""
        t0, t1 = self.tag(k), self.tag(k + 1)
        if t0 is Tag.FEW:
            return None, 1
        if t0 is Tag.ARTICLE and t1 is Tag.FEW:
            return None, 2
        if t0 is Tag.FRACNUM:
            return self.fval(k), 2 if t1 is Tag.ARTICLE else 1  # "half an hour"
        if t0 is Tag.DECIMAL:
            return self.fval(k), 1
        if t0 is Tag.FRAC and t1 is Tag.NUM:
            return self.num(k + 1) + self.fval(k), 2  # "sadhe teen ghante"
        if t0 is Tag.FRAC and t1 is Tag.UNIT:
            return 1 + self.fval(k), 1  # "paune ghante" = 3/4 hour, "sava ghanta" = 1 1/4
        if t0 is Tag.NUM and t1 is Tag.AND and self.tag(k + 2) is Tag.ARTICLE and self.tag(k + 3) is Tag.FRACNUM:
            return self.num(k) + self.fval(k + 3), 4  # "2 and an half hours"
        if t0 is Tag.NUM:
            return (self.num(k) + 0.5, 2) if t1 is Tag.ANDHALF else (float(self.num(k)), 1)
        if t0 is Tag.ARTICLE:
            return 1.0, 1  # "in an hour"
        return None
