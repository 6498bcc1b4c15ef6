"""Turn a callback phrase into lexicon tokens.

The text is normalised (`lexicon.normalise`), split into machine date-times ("2024-12-26T11:00:00+05:30"),
clock times ("10:30", "9.30", "15:23:24", "15h00"), dates ("26/12", "26-12-2024"), fractions of an hour
("1/4h"), ordinals ("25th"), numbers and words; then words are matched against `lexicon.PHRASES`, longest
phrase first. A word no table knows becomes an UNKNOWN token: the grammar turns that into an unparsed
reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.callbacks.lexicon import LONGEST_PHRASE, PHRASES, Tag, Tok, normalise


@dataclass(frozen=True)
class IsoValue:
    """A machine date-time: the date, the time if given, and the UTC offset in minutes if given (None:
    a naive time, read in the workspace zone)."""

    year: int
    month: int
    day: int
    clock: tuple[int, int, int] | None
    offset_minutes: int | None


_PIECE = re.compile(
    r"(?P<iso>\d{4}-\d{1,2}-\d{1,2}(?:(?:t|\s+)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?)"
    r"(?![\d:])"
    r"|(?P<utcoff>\+\d{2}:?\d{2})(?![\d:])"
    r"|(?P<clock>\d{1,2}[:.]\d{2}(?::\d{2})?)(?!\d|[.:]\d)"
    r"|(?P<hclock>\d{1,2})h(?P<hmin>\d{2})?(?![a-z\d])"
    r"|(?P<frac>[13])/(?P<den>[24])(?=\s*h)"
    r"|(?P<slashiso>\d{4}/\d{1,2}/\d{1,2})(?![\d/])"
    r"|(?P<dotdate>\d{1,2}\.\d{1,2}\.\d{4})(?![\d.])"
    r"|(?P<date>\d{1,2}[/-]\d{1,2}(?:[/-]\d{2,4})?)(?!\d|[/-]\d)"
    r"|(?P<decimal>\d{1,2}\.\d)(?!\d|\.\d)"
    r"|(?P<ord>\d{1,2})(?:st|nd|rd|th)(?![^\W\d_])"
    r"|(?P<num>\d+)"
    r"|(?P<word>(?:[^\W\d_]|[\u0900-\u097f])+)"
)
# "2-3 pm" is a span of hours, not the 2nd of March
_HOUR_SPAN_AFTER = re.compile(r"\s*(?:am|pm|baje|bje|oclock|o clock|ke beech|ke bich|beech|baje tak|के बीच|बजे)")
_HOUR_SPAN_BEFORE = re.compile(r"(?:\bat|\baround|\babout|\bapprox\w*|\bfrom|\bbetween|\blagbhag|\bkareeb)\s*$")
_DATE_CUE_BEFORE = re.compile(r"(?:\bon|\bdate|\btarikh)\s*$")
# "in 1h" is a duration; "15h" alone or "at 15h" is a 24-hour clock time
_DURATION_BEFORE = re.compile(r"(?:\bin|\bafter|\bwithin|\bfor)\s*$")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})$")
_CLOCK_MARK_BEFORE = re.compile(r"(?:\bat|\baround|\bby)\s*$")
_DURATION_AFTER = re.compile(r"^\s*(?:later|baad|bad|ke baad|mein|me|from now|hence)\b")


def _h_clock_alone(hour: int, before: str, after: str) -> bool:
    """ "15h" / "at 9h" is a clock time; "1h later", "in 2h", "2h baad" are durations."""
    if _DURATION_BEFORE.search(before) or _DURATION_AFTER.match(after):
        return False
    return hour >= 13 or bool(_CLOCK_MARK_BEFORE.search(before))


def _iso(raw: str) -> IsoValue:
    date_part, _, rest = _split_iso(raw)
    year, month, day = (int(p) for p in date_part.split("-"))
    if not rest:
        return IsoValue(year, month, day, None, None)
    offset: int | None = None
    if rest.endswith("z"):
        offset, rest = 0, rest[:-1]
    elif found := _OFFSET.search(rest):
        sign = 1 if found.group(1) == "+" else -1
        offset = sign * (int(found.group(2)) * 60 + int(found.group(3)))
        rest = rest[: found.start()]
    parts = rest.split(":")
    second = int(float(parts[2])) if len(parts) > 2 else 0
    return IsoValue(year, month, day, (int(parts[0]), int(parts[1]), second), offset)


def _split_iso(raw: str) -> tuple[str, str, str]:
    """ "2024-12-26t11:00z" -> ("2024-12-26", "t", "11:00z"); a bare date -> (date, "", "")."""
    found = re.match(r"(\d{4}-\d{1,2}-\d{1,2})(?:(t|\s+)(.*))?$", raw)
    assert found is not None
    return found.group(1), found.group(2) or "", found.group(3) or ""


def _pieces(text: str) -> list[str | Tok]:
    """Numbers, clock times, dates and ordinals become tokens; words stay strings for phrase matching."""
    out: list[str | Tok] = []
    norm = normalise(text)
    for m in _PIECE.finditer(norm):
        kind, raw = m.lastgroup, m.group(0)
        if m.group("hclock") is not None:
            kind = "hclock"
        if m.group("frac") is not None:
            kind = "frac"
        if kind == "utcoff":  # "Thu, 26 Dec 2024 11:00:00 +0530"
            found = _OFFSET.search(raw)
            assert found is not None
            out.append(Tok(Tag.ZONE, int(found.group(2)) * 60 + int(found.group(3)), raw))
        elif kind == "slashiso":
            year, month, day = (int(p) for p in raw.split("/"))
            out.append(Tok(Tag.ISO, IsoValue(year, month, day, None, None), raw))
        elif kind == "dotdate":
            day, month, year = (int(p) for p in raw.split("."))
            out.append(Tok(Tag.DATE, (day, month, year), raw))
        elif kind == "iso":
            out.append(Tok(Tag.ISO, _iso(raw), raw))
        elif kind == "clock":
            numbers = [int(p) for p in re.split(r"[:.]", raw)]
            second = numbers[2] if len(numbers) == 3 else 0
            out.append(Tok(Tag.CLOCK, (numbers[0], numbers[1], second, False), raw))
        elif kind == "hclock":
            hour, minute = int(m.group("hclock")), m.group("hmin")
            if minute is None and not _h_clock_alone(hour, norm[: m.start()], norm[m.end() :]):
                out += [Tok(Tag.NUM, hour, str(hour)), "h"]
            else:
                out.append(Tok(Tag.CLOCK, (hour, int(minute or 0), 0, True), raw))
        elif kind == "frac":
            out.append(Tok(Tag.FRACNUM, int(m.group("frac")) / int(m.group("den")), raw))
        elif kind == "date":
            parts = [int(p) for p in re.split(r"[/-]", raw)]
            if len(parts) == 2 and "-" in raw:
                span_cue = _HOUR_SPAN_AFTER.match(norm, m.end()) or _HOUR_SPAN_BEFORE.search(norm[: m.start()])
                if span_cue and all(1 <= p <= 12 for p in parts):
                    out += [Tok(Tag.NUM, parts[0], str(parts[0])), Tok(Tag.TO, None, "-")]
                    out.append(Tok(Tag.NUM, parts[1], str(parts[1])))
                    continue
                if all(1 <= p <= 12 for p in parts) and not _DATE_CUE_BEFORE.search(norm[: m.start()]):
                    out.append(Tok(Tag.SPAN_OR_DATE, (parts[0], parts[1]), raw))  # "10-11": the grammar decides
                    continue
            out.append(Tok(Tag.DATE, (parts[0], parts[1], parts[2] if len(parts) == 3 else None), raw))
        elif kind == "decimal":
            out.append(Tok(Tag.DECIMAL, float(raw), raw))
        elif kind == "ord":
            out.append(Tok(Tag.ORD, int(m.group("ord")), raw))
        elif kind == "num":
            out.append(Tok(Tag.NUM, int(raw), raw))
        else:
            out.append(raw)
    return out


def tokenise(text: str) -> list[Tok]:
    """The phrase as tokens; punctuation is dropped, unknown words become `Tag.UNKNOWN`."""
    pieces = _pieces(text)
    toks: list[Tok] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if isinstance(piece, Tok):
            toks.append(piece)
            i += 1
            continue
        # longest run of words starting here that the lexicon knows
        for length in range(min(LONGEST_PHRASE, len(pieces) - i), 0, -1):
            words = pieces[i : i + length]
            if all(isinstance(w, str) for w in words):
                found = PHRASES.get(tuple(str(w) for w in words))
                if found is not None:
                    toks.extend(found)
                    i += length
                    break
        else:
            toks.append(Tok(Tag.UNKNOWN, piece, piece))
            i += 1
    return toks
