"""Turn a callback phrase into lexicon tokens.

The text is normalised (`lexicon.normalise`), split into numbers, clock times ("10:30", "9.30"), dates
("26/12"), ordinals ("25th") and words, then words are matched against `lexicon.PHRASES`, longest phrase
first. A word no table knows becomes an UNKNOWN token: the grammar turns that into an unparsed reading.
"""

from __future__ import annotations

import re

from worker.callbacks.lexicon import LONGEST_PHRASE, PHRASES, Tag, Tok, normalise

_PIECE = re.compile(
    r"(?P<clock>\d{1,2}[:.]\d{2})(?!\d|[.:]\d)"
    r"|(?P<date>\d{1,2}[/-]\d{1,2}(?:[/-]\d{2,4})?)(?!\d|[/-]\d)"
    r"|(?P<decimal>\d{1,2}\.\d)(?!\d|\.\d)"
    r"|(?P<ord>\d{1,2})(?:st|nd|rd|th)(?![^\W\d_])"
    r"|(?P<num>\d+)"
    r"|(?P<word>(?:[^\W\d_]|[\u0900-\u097f])+)"
)


def _pieces(text: str) -> list[str | Tok]:
    """Numbers, clock times, dates and ordinals become tokens; words stay strings for phrase matching."""
    out: list[str | Tok] = []
    for m in _PIECE.finditer(normalise(text)):
        kind, raw = m.lastgroup, m.group(0)
        if kind == "clock":
            hour, minute = re.split(r"[:.]", raw)
            out.append(Tok(Tag.CLOCK, (int(hour), int(minute)), raw))
        elif kind == "date":
            parts = [int(p) for p in re.split(r"[/-]", raw)]
            year = parts[2] if len(parts) == 3 else None
            out.append(Tok(Tag.DATE, (parts[0], parts[1], year), raw))
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
