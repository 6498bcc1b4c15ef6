"""Word tables of the callback-time reader: English, romanised Hindi/Hinglish (with the spelling variants
callers and transcribers produce) and Devanagari Hindi.

Every table maps a phrase (one or more words, written as a caller would) to the meaning the grammar works
with. Keys are normalised with `normalise` when `PHRASES` is built, so the tables may be written in any case
and with or without nukta/chandrabindu. Nothing outside these tables is understood: a word missing here
makes a phrase `unparsed`, which is the point (no half-read phrase may yield a confident time).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Tag(StrEnum):
    """What a token means to the grammar."""

    NUM = "num"  # a whole number (digits or a number word); value: int
    DECIMAL = "decimal"  # "2.5"; value: float
    CLOCK = "clock"  # "10:30", "9.30", "15:23:24", "15h00"; value: (hour, minute, second, 24-hour said)
    ISO = "iso"  # "2024-12-26T11:00:00+05:30", "2024-12-26": value: IsoValue
    DATE = "date"  # "26/12", "26-12-2024"; value: (day, month, year or None)
    SPAN_OR_DATE = "span_or_date"  # "3-4": hours 3 to 4, or 3 April; value: (first, second)
    ORD = "ord"  # "25th", "2nd"; value: int
    FRAC = "frac"  # sadhe/sava/paune before a number; value: float added to it
    FRACNUM = "fracnum"  # dedh (1.5), dhai (2.5), half/aadha (0.5); value: float
    REL_DAY = "rel_day"  # today/aaj 0, tomorrow/kal 1, parso 2; value: int days
    PART = "part"  # a part of day; value: key of PARTS
    NOON = "noon"  # noon, midday
    WEEKDAY = "weekday"  # value: 0=Monday .. 6=Sunday
    WEEKDAYS_PL = "weekdays_pl"  # "fridays" in "3 fridays from now"; value: 0..6
    NTH = "nth"  # first .. tenth, last; value: 1..31 or -1 (last)
    MONTH = "month"  # value: 1..12
    MOD = "mod"  # value: "next" | "this" | "coming"
    UNIT = "unit"  # value: "minute" | "hour" | "day" | "week" | "month"
    BAJE = "baje"  # baje / o'clock after an hour
    BAJKE = "bajke"  # "4 baj ke 20 minute"
    MERIDIEM = "meridiem"  # value: "am" | "pm"
    HOURMARK = "hourmark"  # at / @: marks a following number as an hour
    APPROX = "approx"  # around / about / lagbhag before, -ish / ke aas paas after: an hour, roughly
    PAST = "past"  # "10 minutes past 3"
    TO = "to"  # "20 minutes to 2pm", "3 to 5"
    FROM = "from"  # "from 3 to 5", "a week from tomorrow"
    BETWEEN = "between"  # "between 2 and 3"
    AND = "and"  # "between 2 and 3"
    SE = "se"  # Hindi "from": "3 se 4 ke beech"
    TAK = "tak"  # Hindi "until": "3 se 4 tak"
    BEECH = "beech"  # Hindi "between" after the window: "3 se 4 ke beech"
    IN = "in"  # in / within before a duration
    AFTER = "after"  # after: a duration, a time or an event follows
    BEFORE = "before"
    POST_IN = "post_in"  # mein / andar after a duration
    POST_AFTER = "post_after"  # baad / from now after a duration
    LATER = "later"  # later / baad mein: after a duration, otherwise a vague "later"
    ARTICLE = "article"  # a / an
    ANDHALF = "andhalf"  # "and a half"
    PAST_PART = "past_part"  # "half past", "quarter past"; value: minutes
    TO_PART = "to_part"  # "quarter to"; value: minutes before the hour
    SAME_TIME = "same_time"  # "same time", "isi time"
    END_OF = "end_of"  # "end of (the)", "beginning of", "mid" before week/month; value: "end"|"start"|"mid"
    WITHIN = "within"  # "within 2 hours": any time up to then
    END_POST = "end_post"  # "ke end mein" after hafte
    WEEKEND = "weekend"
    TARIKH = "tarikh"  # "30 tarikh": day of the month
    OF = "of"
    DISMISS = "dismiss"  # "not now", "anytime": vague unless the phrase also gives a time
    EVENT = "event"  # lunch, Christmas, Diwali: a time that cannot be placed on the clock
    FEW = "few"  # "a few", "kuch": an unknown quantity
    ZONE = "zone"  # IST / UTC / GMT: value: UTC offset in minutes
    NEG = "neg"  # not / nahi: takes back the time next to it; value "pre" (not X) or "post" (X nahi)
    FILLER = "filler"  # words that carry no time: call, me, please, karna, ko, ji ...
    UNKNOWN = "unknown"  # anything else


@dataclass(frozen=True)
class Tok:
    """One token: its tag, its value, and the caller's words it came from."""

    tag: Tag
    value: object = None
    text: str = ""


@dataclass(frozen=True)
class PartOfDay:
    """A part of day: its window [start, end) in local hours (end may be 24), and the 24-hour hours an
    hour said with it may take ("shaam 7" -> 19 because 19 is in evening's hours, 7 is not). Hours below
    12 in `night_next_day` parts fall on the next calendar day ("raat 1 baje" is 01:00 after midnight)."""

    start: int
    end: int
    hours: frozenset[int]
    night_next_day: bool = False


PARTS: Mapping[str, PartOfDay] = {
    "morning": PartOfDay(6, 12, frozenset(range(1, 13))),
    "afternoon": PartOfDay(12, 16, frozenset(range(11, 18))),
    "evening": PartOfDay(16, 21, frozenset(range(15, 24))),
    "night": PartOfDay(18, 24, frozenset([*range(18, 24), 0, 1, 2, 3]), night_next_day=True),
    "daytime": PartOfDay(9, 18, frozenset(range(9, 19))),
}


def office_hour(hour12: int) -> int:
    """The office-hours reading of a bare hour 1..12 (a reading, not an ambiguity): 8-11 -> 08-11 am,
    12 -> noon, 1-7 -> 13-19 pm."""
    return hour12 + 12 if 1 <= hour12 <= 7 else hour12


# ---------------------------------------------------------------------------------------------- numbers
NUMBERS: Mapping[str, int] = {
    # English
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "twenty five": 25, "thirty": 30,
    "forty": 40, "forty five": 45, "fourty five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
    "a couple of": 2, "couple of": 2, "a couple": 2, "couple": 2, "a pair of": 2, "pair of": 2,
    "zero": 0, "oh": 0,
    # romanised Hindi
    "ek": 1, "do": 2, "teen": 3, "tin": 3, "char": 4, "chaar": 4, "chār": 4, "paanch": 5, "panch": 5,
    "paach": 5, "panc": 5, "chhe": 6, "chhah": 6, "chhaha": 6, "che": 6, "chah": 6, "cheh": 6, "saat": 7,
    "aath": 8, "aat": 8, "nau": 9, "das": 10, "dus": 10, "gyarah": 11, "gyara": 11, "gyaarah": 11,
    "gyaara": 11, "gyaraah": 11, "gyarha": 11, "barah": 12, "barha": 12, "bara": 12, "baarah": 12,
    "baara": 12, "pandrah": 15, "pandra": 15,
    "bees": 20, "bis": 20, "pachees": 25, "pachchis": 25, "tees": 30, "tis": 30, "paintalis": 45,
    "pachas": 50, "pachaas": 50,
    # Devanagari
    "एक": 1, "दो": 2, "तीन": 3, "चार": 4, "पांच": 5, "छह": 6, "छः": 6, "छे": 6, "सात": 7, "आठ": 8,
    "नौ": 9, "दस": 10, "ग्यारह": 11, "बारह": 12, "पंद्रह": 15, "पन्द्रह": 15, "बीस": 20, "पच्चीस": 25,
    "तीस": 30, "पैंतालीस": 45, "पचास": 50,
    # "twenty one" .. "fifty nine": minutes said in words ("nine fifty nine a m")
    **{f"{tens} {unit}": t + u for tens, t in (("twenty", 20), ("thirty", 30), ("forty", 40), ("fourty", 40),
       ("fifty", 50)) for unit, u in (("one", 1), ("two", 2), ("three", 3), ("four", 4), ("five", 5),
       ("six", 6), ("seven", 7), ("eight", 8), ("nine", 9))},
}  # fmt: skip

FRACTIONS: Mapping[str, float] = {  # added to the number that follows: "sadhe 4" = 4.5
    "sadhe": 0.5, "saadhe": 0.5, "saade": 0.5, "sade": 0.5, "saadey": 0.5, "sadhey": 0.5, "साढ़े": 0.5,
    "sava": 0.25, "sawa": 0.25, "savaa": 0.25, "sawaa": 0.25, "सवा": 0.25,
    "paune": -0.25, "pone": -0.25, "pauney": -0.25, "पौने": -0.25,
}  # fmt: skip

FRACTION_NUMBERS: Mapping[str, float] = {
    "dedh": 1.5, "derh": 1.5, "deadh": 1.5, "dedhh": 1.5, "डेढ़": 1.5,
    "dhai": 2.5, "dhaai": 2.5, "adhai": 2.5, "ढाई": 2.5,
    "half": 0.5, "half an": 0.5, "half a": 0.5, "aadha": 0.5, "aadhe": 0.5, "adha": 0.5, "adhe": 0.5,
    "aadhi": 0.5, "adhi": 0.5, "आधा": 0.5, "आधे": 0.5, "आधी": 0.5,
    "quarter of an": 0.25, "a quarter of an": 0.25, "quarter of a": 0.25, "a quarter of a": 0.25,
    "quarter an": 0.25, "three quarters of an": 0.75, "three quarter of an": 0.75, "3 quarters of an": 0.75,
    "three quarters of a": 0.75, "pona": 0.75, "paun": 0.75, "पौन": 0.75,
}  # fmt: skip

# ------------------------------------------------------------------------------------------------- days
RELATIVE_DAYS: Mapping[str, int] = {
    "today": 0, "tday": 0, "tdy": 0, "aaj": 0, "aj": 0, "aaj hi": 0, "आज": 0,
    # kal means yesterday too; a callback is never in the past, so it is tomorrow here
    "tomorrow": 1, "tomorow": 1, "tommorow": 1, "tommorrow": 1, "tomorrw": 1, "tmrw": 1, "tmrow": 1,
    "tmr": 1, "tmw": 1, "tomo": 1, "tomm": 1, "tomorrows": 1, "tmrrw": 1,
    "tommorrw": 1, "kal": 1, "kl": 1, "kall": 1, "kal ko": 1, "कल": 1,
    "day after tomorrow": 2, "the day after tomorrow": 2, "day after tommorow": 2,
    "day after tomorow": 2, "day after": 2, "the day after": 2,
    "parso": 2, "parson": 2, "parsoon": 2, "parsun": 2, "parsu": 2, "parsho": 2,
    "परसों": 2, "परसो": 2, "narso": 3, "narson": 3, "नरसों": 3,
}  # fmt: skip

PART_WORDS: Mapping[str, str] = {
    "morning": "morning", "mrng": "morning", "morng": "morning", "morn": "morning",
    "in the morning": "morning", "early morning": "morning", "early in the morning": "morning",
    "subah": "morning", "subha": "morning", "suba": "morning",
    "subeh": "morning", "savere": "morning", "sawere": "morning", "सुबह": "morning", "सवेरे": "morning",
    "afternoon": "afternoon", "aftrnoon": "afternoon", "in the afternoon": "afternoon",
    "dopahar": "afternoon", "dopehar": "afternoon", "dopahr": "afternoon", "dophar": "afternoon",
    "dupahar": "afternoon", "duphar": "afternoon", "dopeher": "afternoon", "दोपहर": "afternoon",
    "evening": "evening", "evng": "evening", "eve": "evening", "in the evening": "evening",
    "shaam": "evening", "sham": "evening", "shyaam": "evening", "shame": "evening", "शाम": "evening",
    "night": "night", "nite": "night", "at night": "night", "raat": "night", "rat": "night",
    "raat ko": "night", "रात": "night",
    # "din mein" (during the day) is read by the grammar: "do din mein" is a duration, not a part of day
    "din ko": "daytime", "during the day": "daytime", "in the day": "daytime",
}  # fmt: skip

# Romanised Hindi weekday names: a stem and the endings callers and transcribers write (-vaar, -var,
# -war, -waar, -baar/-bar as in Bengali-accented speech), plus the short forms ("mangal", "shani").
_WEEKDAY_STEMS: Mapping[int, tuple[str, ...]] = {
    0: ("som", "soam", "shom"),
    1: ("mangal", "mangl", "mongol", "mangel"),
    2: ("budh", "budha", "bud", "budd"),
    3: ("guru", "brihaspati", "brahaspati", "brihaspat", "veer", "vir", "bruhaspati", "brihaspathi"),
    4: ("shukra", "shukr", "sukra", "sukr", "shukar", "sukar", "shuk"),
    5: ("shani", "sani", "shanee", "shan"),
    6: ("ravi", "rabi", "it", "et", "aet", "ait", "itt"),
}
_WEEKDAY_ENDINGS = ("var", "vaar", "war", "waar", "bar", "baar", "vara", "wara", "vaara", "waara")
_WEEKDAY_SHORT: Mapping[str, int] = {"mangal": 1, "budh": 2, "guru": 3, "shukra": 4, "shukar": 4, "shani": 5, "ravi": 6}

WEEKDAYS: Mapping[str, int] = {
    "monday": 0, "mon": 0, "mondays": 0,
    "tuesday": 1, "tue": 1, "tues": 1, "tuesdays": 1,
    "wednesday": 2, "wed": 2, "weds": 2, "wednes": 2, "wensday": 2, "wednesdays": 2, "wedensday": 2,
    "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "thrusday": 3, "thursdays": 3,
    "friday": 4, "fri": 4, "fridays": 4, "fryday": 4,
    "saturday": 5, "sat": 5, "saturdays": 5, "satarday": 5,
    "sunday": 6, "sun": 6, "sundays": 6,
    **{stem + end: wd for wd, stems in _WEEKDAY_STEMS.items() for stem in stems for end in _WEEKDAY_ENDINGS},
    **_WEEKDAY_SHORT,
    "सोमवार": 0, "सोमबार": 0, "मंगलवार": 1, "मंगल": 1, "बुधवार": 2, "बुध": 2, "गुरुवार": 3, "गुरूवार": 3,
    "बृहस्पतिवार": 3, "वीरवार": 3, "शुक्रवार": 4, "शुक्र": 4, "शनिवार": 5, "शनि": 5, "रविवार": 6,
    "इतवार": 6, "एतवार": 6,
}  # fmt: skip
# "fridays" in "3 fridays from now" is a count of weekdays, not a weekday
WEEKDAY_PLURALS: frozenset[str] = frozenset(
    {"mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays"}
)

NTHS: Mapping[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30, "last": -1, "pehla": 1, "pahla": 1, "doosra": 2,
    "dusra": 2, "doosre": 2, "dusre": 2, "teesra": 3, "tisra": 3, "teesre": 3, "aakhri": -1, "akhri": -1,
    "aakhiri": -1, "आखिरी": -1,
    **{f"twenty {w}": 20 + n for w, n in (("first", 1), ("second", 2), ("third", 3), ("fourth", 4),
       ("fifth", 5), ("sixth", 6), ("seventh", 7), ("eighth", 8), ("ninth", 9))},
    "thirty first": 31,
}  # fmt: skip

MONTHS: Mapping[str, int] = {
    "january": 1, "jan": 1, "janvari": 1, "janwari": 1, "जनवरी": 1,
    "february": 2, "feb": 2, "farvari": 2, "farwari": 2, "फरवरी": 2,
    "march": 3, "mar": 3, "मार्च": 3,
    "april": 4, "apr": 4, "aprail": 4, "अप्रैल": 4,
    "may": 5, "मई": 5,
    "june": 6, "jun": 6, "जून": 6,
    "july": 7, "jul": 7, "julai": 7, "जुलाई": 7,
    "august": 8, "aug": 8, "agast": 8, "अगस्त": 8,
    "september": 9, "sep": 9, "sept": 9, "sitambar": 9, "सितंबर": 9, "सितम्बर": 9,
    "october": 10, "oct": 10, "aktubar": 10, "अक्टूबर": 10, "अक्तूबर": 10,
    "november": 11, "nov": 11, "navambar": 11, "नवंबर": 11, "नवम्बर": 11,
    "december": 12, "dec": 12, "disambar": 12, "दिसंबर": 12, "दिसम्बर": 12,
}  # fmt: skip

MODIFIERS: Mapping[str, str] = {
    "next": "next", "nxt": "next", "agle": "next", "agla": "next", "agli": "next", "अगले": "next",
    "अगला": "next", "अगली": "next",
    "this": "this", "is": "this", "iss": "this", "इस": "this", "current": "this", "the current": "this",
    "next to next": "after_next", "the one after next": "after_next", "agle ke agle": "after_next",
    "coming": "coming", "upcoming": "coming", "aane wale": "coming", "aanewale": "coming",
    "aane wala": "coming", "aane vale": "coming", "aane wali": "coming", "आने वाले": "coming",
}  # fmt: skip

UNITS: Mapping[str, str] = {
    "minute": "minute", "minutes": "minute", "min": "minute", "mins": "minute", "minat": "minute",
    "minit": "minute", "mint": "minute", "mnt": "minute", "मिनट": "minute",
    "hour": "hour", "hours": "hour", "hr": "hour", "hrs": "hour", "h": "hour", "ghanta": "hour",
    "ghante": "hour", "ghanton": "hour", "ghnte": "hour", "घंटा": "hour",
    "घंटे": "hour", "घंटों": "hour", "घण्टा": "hour", "घण्टे": "hour",
    "day": "day", "days": "day", "din": "day", "dino": "day", "dinon": "day", "दिन": "day", "दिनों": "day",
    "week": "week", "weeks": "week", "wk": "week", "hafta": "week", "hafte": "week", "hafton": "week",
    "haftey": "week", "saptah": "week", "हफ्ता": "week", "हफ्ते": "week", "सप्ताह": "week",
    "month": "month", "months": "month", "mahina": "month", "mahine": "month", "mahino": "month",
    "महीना": "month", "महीने": "month",
}  # fmt: skip

# ------------------------------------------------------------------------------------- structure words
SIMPLE: Mapping[str, Tag] = {
    "baje": Tag.BAJE, "bje": Tag.BAJE, "bajey": Tag.BAJE, "baaje": Tag.BAJE, "bajay": Tag.BAJE,
    "बजे": Tag.BAJE, "oclock": Tag.BAJE, "o clock": Tag.BAJE, "बज": Tag.BAJE,
    "baj ke": Tag.BAJKE, "bajke": Tag.BAJKE, "baj kar": Tag.BAJKE, "bajkar": Tag.BAJKE,
    "बजकर": Tag.BAJKE, "बज के": Tag.BAJKE,
    "noon": Tag.NOON, "midday": Tag.NOON, "mid day": Tag.NOON,
    "at": Tag.HOURMARK, "@": Tag.HOURMARK,
    "around": Tag.APPROX, "about": Tag.APPROX, "approx": Tag.APPROX, "approximately": Tag.APPROX,
    "roughly": Tag.APPROX, "at around": Tag.APPROX, "at about": Tag.APPROX, "ke around": Tag.APPROX,
    "ke aas paas": Tag.APPROX, "aas paas": Tag.APPROX, "ke kareeb": Tag.APPROX, "kareeb": Tag.APPROX,
    "karib": Tag.APPROX, "ke karib": Tag.APPROX, "lagbhag": Tag.APPROX, "लगभग": Tag.APPROX,
    "करीब": Tag.APPROX, "aaspaas": Tag.APPROX, "aaspas": Tag.APPROX, "aas pass": Tag.APPROX,
    "ke aaspaas": Tag.APPROX, "आसपास": Tag.APPROX, "आस पास": Tag.APPROX, "के आसपास": Tag.APPROX,
    "के करीब": Tag.APPROX, "के आस पास": Tag.APPROX, "ish": Tag.APPROX, "or so": Tag.APPROX,
    "past": Tag.PAST, "to": Tag.TO, "till": Tag.TO, "until": Tag.TO, "untill": Tag.TO, "upto": Tag.TO,
    "up to": Tag.TO, "from": Tag.FROM, "since": Tag.FROM,
    "between": Tag.BETWEEN, "betwen": Tag.BETWEEN, "in between": Tag.BETWEEN, "and": Tag.AND,
    "aur": Tag.AND, "se": Tag.SE, "से": Tag.SE, "tak": Tag.TAK, "तक": Tag.TAK,
    "ke beech": Tag.BEECH, "ke bich": Tag.BEECH, "ke beech mein": Tag.BEECH, "ke beech me": Tag.BEECH,
    "ke bich mein": Tag.BEECH, "ke bich me": Tag.BEECH, "beech": Tag.BEECH, "bich": Tag.BEECH,
    "beech mein": Tag.BEECH, "के बीच": Tag.BEECH, "के बीच में": Tag.BEECH, "बीच": Tag.BEECH,
    "बीच में": Tag.BEECH,
    "in": Tag.IN, "within": Tag.WITHIN, "within the next": Tag.WITHIN, "in the next": Tag.WITHIN,
    "in about": Tag.IN, "in around": Tag.IN, "in another": Tag.IN,
    "after": Tag.AFTER, "aftr": Tag.AFTER, "after about": Tag.AFTER, "after around": Tag.AFTER,
    "before": Tag.BEFORE, "pehle": Tag.BEFORE, "pahle": Tag.BEFORE, "ke pehle": Tag.BEFORE,
    "se pehle": Tag.BEFORE, "पहले": Tag.BEFORE, "se pahle": Tag.BEFORE, "ke pahle": Tag.BEFORE,
    "से पहले": Tag.BEFORE, "के पहले": Tag.BEFORE,
    "mein": Tag.POST_IN, "me": Tag.POST_IN, "mei": Tag.POST_IN, "में": Tag.POST_IN,
    "andar": Tag.POST_IN, "ke andar": Tag.POST_IN, "के अंदर": Tag.POST_IN,
    "baad": Tag.POST_AFTER, "ke baad": Tag.POST_AFTER, "ke bad": Tag.POST_AFTER, "bad": Tag.POST_AFTER,
    "बाद": Tag.POST_AFTER, "के बाद": Tag.POST_AFTER, "from now": Tag.POST_AFTER,
    "hence": Tag.POST_AFTER,
    "later": Tag.LATER, "later on": Tag.LATER, "baad mein": Tag.LATER, "baad me": Tag.LATER,
    "baadme": Tag.LATER, "badme": Tag.LATER, "bad me": Tag.LATER, "bad mein": Tag.LATER,
    "बाद में": Tag.LATER,
    "a": Tag.ARTICLE, "an": Tag.ARTICLE,
    "and a half": Tag.ANDHALF, "and half": Tag.ANDHALF,
    "same time": Tag.SAME_TIME, "the same time": Tag.SAME_TIME, "this time": Tag.SAME_TIME,
    "isi time": Tag.SAME_TIME, "isi samay": Tag.SAME_TIME, "isi waqt": Tag.SAME_TIME,
    "isi vakt": Tag.SAME_TIME, "usi time": Tag.SAME_TIME, "usi samay": Tag.SAME_TIME,
    "is time": Tag.SAME_TIME, "iss time": Tag.SAME_TIME, "is samay": Tag.SAME_TIME,
    "is waqt": Tag.SAME_TIME, "isi time pe": Tag.SAME_TIME, "इस समय": Tag.SAME_TIME,
    "इसी समय": Tag.SAME_TIME, "इसी टाइम": Tag.SAME_TIME,

    "ke end mein": Tag.END_POST, "ke end me": Tag.END_POST, "ke aakhir mein": Tag.END_POST,
    "ke aakhir me": Tag.END_POST, "ke akhir mein": Tag.END_POST, "ke ant mein": Tag.END_POST,
    "के आखिर में": Tag.END_POST, "के अंत में": Tag.END_POST,
    "weekend": Tag.WEEKEND, "week end": Tag.WEEKEND, "the weekend": Tag.WEEKEND,
    "tarikh": Tag.TARIKH, "tareekh": Tag.TARIKH, "tarik": Tag.TARIKH, "taarikh": Tag.TARIKH,
    "tarekh": Tag.TARIKH, "date": Tag.TARIKH, "तारीख": Tag.TARIKH, "तारीख़": Tag.TARIKH,
    "of": Tag.OF,
    "a few": Tag.FEW, "few": Tag.FEW, "kuch": Tag.FEW, "some": Tag.FEW, "several": Tag.FEW,
    "thoda": Tag.FEW, "thodi": Tag.FEW, "thode": Tag.FEW, "कुछ": Tag.FEW, "थोड़ी": Tag.FEW,
    "थोड़ा": Tag.FEW,
}  # fmt: skip

# "end of the week", "beginning of next month", "mid March": which part of a week or month.
PHASES: Mapping[str, str] = {
    "end of": "end", "end of the": "end", "by the end of": "end", "by end of": "end", "by the end of the": "end",
    "at the end of": "end", "at the end of the": "end", "the end of": "end", "the end of the": "end",
    "beginning of": "start", "the beginning of": "start", "beginning of the": "start", "start of": "start",
    "the start of": "start", "start of the": "start", "at the beginning of": "start", "early": "start",
    "mid": "mid", "middle of": "mid", "the middle of": "mid", "middle of the": "mid",
}  # fmt: skip

# Zone words with a fixed offset (minutes east of UTC); zones with daylight saving are not guessed.
ZONES: Mapping[str, int] = {
    "ist": 330, "india time": 330, "indian time": 330, "indian standard time": 330, "utc": 0, "gmt": 0,
    "asia kolkata": 330, "asia calcutta": 330,
}  # fmt: skip

# Negations: an English one takes back the time after it ("not Monday, Tuesday"), a Hindi one the time
# before it ("Monday nahi, Tuesday ko"); with nothing left the phrase is vague ("not today", "aaj mat karo").
NEGATIONS: Mapping[str, str] = {
    "not": "pre", "dont": "pre", "do not": "pre", "never": "pre", "no": "pre", "please dont": "pre",
    "not on": "pre", "not at": "pre", "but not": "pre",
    "nahi": "post", "nahin": "post", "nai": "post", "nhi": "post", "mat": "post", "na": "post",
    "nahi hai": "post", "नहीं": "post", "मत": "post", "ना": "post",
}  # fmt: skip

MERIDIEMS: Mapping[str, str] = {"am": "am", "pm": "pm", "a m": "am", "p m": "pm"}

PAST_PARTS: Mapping[str, int] = {"half past": 30, "quarter past": 15, "a quarter past": 15}
TO_PARTS: Mapping[str, int] = {"quarter to": 15, "a quarter to": 15, "quarter of": 15, "a quarter of": 15}

# Vague phrases that dismiss the call rather than place it: they are dropped when the phrase also says
# a time ("not now, call tomorrow at 5"), otherwise the reading is VAGUE.
DISMISSALS: Mapping[str, str] = {
    "not now": "not now", "not right now": "not now", "abhi nahi": "not now", "abhi nahin": "not now",
    "abhi nhi": "not now", "abhi nai": "not now", "abhi mat": "not now", "अभी नहीं": "not now",
    "abhi busy": "busy now", "abhi busy hoon": "busy now", "abhi busy hu": "busy now",
    "busy right now": "busy now", "right now": "not now", "abhi": "not now", "अभी": "not now",
    "not today": "not today", "aaj nahi": "not today", "आज नहीं": "not today",
    # what an LLM writes when the caller gave no time
    "not specified": "no time given", "unspecified": "no time given", "not mentioned": "no time given",
    "n a": "no time given", "none": "no time given", "null": "no time given", "unknown": "no time given",
    "not given": "no time given", "no time given": "no time given", "not provided": "no time given",
    "anytime": "any time", "any time": "any time", "kabhi bhi": "any time", "kisi bhi time": "any time",
    "whenever": "any time", "whenever you want": "any time", "कभी भी": "any time",
    "when im free": "when free", "when i am free": "when free", "when i get free": "when free",
    "when free": "when free", "jab free": "when free", "jab free hoon": "when free",
    "jab free ho": "when free", "jab main free": "when free", "free hoke": "when free",
    "free hone ke baad": "when free", "jab time ho": "when free", "jab time mile": "when free",
    "some other time": "another time", "sometime": "another time", "some time": "another time",
    "another time": "another time", "another day": "another time", "some other day": "another time",
    "phir kabhi": "another time", "fir kabhi": "another time", "kabhi aur": "another time",
    "soon": "soon", "jaldi": "soon", "in a while": "soon", "after a while": "soon",
    "after some time": "soon", "thodi der": "soon", "thodi der mein": "soon", "thodi der baad": "soon",
    "thodi der me": "soon", "kuch der": "soon", "kuch der baad": "soon", "kuch der mein": "soon",
    "kuch time baad": "soon", "थोड़ी देर में": "soon", "थोड़ी देर बाद": "soon",
    "in a bit": "soon", "after sometime": "soon", "any day": "any time", "kisi bhi din": "any time",
}  # fmt: skip

# Events a caller anchors a callback to without a clock time: "after lunch", "Diwali ke baad".
EVENTS: Mapping[str, str] = {
    "lunch": "lunch", "lunch time": "lunch", "lunchtime": "lunch", "dinner": "dinner",
    "breakfast": "breakfast", "nashta": "breakfast", "khana": "a meal", "khane": "a meal",
    "meeting": "a meeting", "a meeting": "a meeting", "my meeting": "a meeting", "the meeting": "a meeting",
    "office": "office", "work": "work", "college": "college", "school": "school", "class": "class",
    "christmas": "Christmas", "xmas": "Christmas", "diwali": "Diwali", "deepawali": "Diwali",
    "holi": "Holi", "eid": "Eid", "new year": "New Year", "newyear": "New Year", "navratri": "Navratri",
    "dussehra": "Dussehra", "puja": "puja", "pooja": "puja", "pongal": "Pongal", "onam": "Onam",
    "rakhi": "Rakhi", "festival": "the festival", "festivals": "the festival",
    "the holidays": "the holidays", "holidays": "the holidays", "holiday": "the holidays",
    "vacation": "vacation", "leave": "leave", "exams": "exams", "exam": "exams", "the exams": "exams",
    "my exams": "exams", "दिवाली": "Diwali", "होली": "Holi", "लंच": "lunch", "खाने": "a meal",
}  # fmt: skip


def _words(text: str) -> list[str]:
    return text.split()


# Events that describe where the caller is rather than when to call ("meeting mein hoon, kal call karo"):
# said alone they are context and dropped like a dismissal; "after the meeting" is still vague.
STATE_EVENTS: frozenset[str] = frozenset({"a meeting", "office", "work", "college", "school", "class", "leave"})

# Words that carry no time. Kept explicit and short on purpose: anything not here, and not a time word,
# makes the phrase unparsed.
FILLERS: frozenset[str] = frozenset(
    _words(
        """
        call calling called phone ring give missed me back please pls plz kindly karna karo kariye karein
        karen kijiye kijie kariyega kar dena de dijiye lagana lagao ko ji jee pe par by tak the on i im ill
        we us you u can could would will shall should be it its is fine ok okay then so just haan han ha yes
        sir madam maam mam bhai bhaiya didi hello hi driving busy free available and to talk speak baat
        contact reach connect sharp exactly time ka ki ke hoon hun hu hai hain ho main mai mujhe muje
        mereko mujhko humko aap aapko apko tum try again dobara fir phir hamein let lets only sirf wala wali
        wale thank thanks dhanyavad shukriya theek thik sure yeah yaa haa tab tabhi karte karenge
        karunga karungi karega karegi raha rahi rahe please but sorry more another callback wala
        customer caller client lead user he she they asked asks wants wanted requested request requests
        prefers preferred krna kro kriye krein kren kijiyega lijiye lijie lena lo karlo karlena krdo krdena
        dijiyega dena vala vale wali
        उस वाले वाली वाला
        कॉल फोन फ़ोन करना करो करें कीजिए कीजिये कर दीजिए को जी पे पर मुझे मैं हूं हूँ है हैं के का की से तक
        """
    )
)

# Fillers written as several words (matched like any phrase).
FILLER_PHRASES: tuple[str, ...] = (
    "kar do", "kar dena", "kar dijiye", "kar lena", "kar lo", "kar sakte ho", "i am", "i will",
    "thank you", "call me", "call back", "give me a call", "give a call", "give me a ring", "can you",
    "could you", "please call", "try again", "in a meeting", "at work", "wale din", "vale din",
    "wala din", "vala din", "वाले दिन", "ke din", "के दिन", "would like", "to be", "be called",
    "a callback", "call back at", "callback time", "make it", "lets say", "let us say", "say",
)  # fmt: skip


# ------------------------------------------------------------------------------------------ normalising
_NUKTA = "\u093c"
_CHANDRABINDU, _ANUSVARA = "\u0901", "\u0902"
_DEVANAGARI_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")
# curly quotes to ', Devanagari danda (inside the Devanagari block, so it would glue to words) to "."
_PUNCT = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u0964": ".", "\u0965": ".", "@": " at "}
)
# Written forms that the tokeniser would split wrongly ("2moro" -> "2", "moro").
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b2m+or+o+w*\b"), "tomorrow"),
    (re.compile(r"\b2n(?:i|igh)te?\b"), "tonight"),
    (re.compile(r"\b2night\b"), "tonight"),
    (re.compile(r"(?<![a-z])([ap])\s*\.\s*m\b\.?"), r"\1m"),  # p.m. / a. m.
    (re.compile(r"(?<=\d)([ap])(?![a-z\u0900-\u097f])"), r" \1m"),  # "3p", "3:18a"
    (re.compile(r"(?<=\d)'"), " min "),  # "in 15'"
    # "9:30 - 11:00", "3:30-6 pm", "10–11": a span of hours (a bare "10-11" stays for the tokeniser)
    (re.compile(r"(\d{1,2}(?:[:.]\d{2}|h\d{0,2}))\s*[-\u2013]\s*(?=\d)"), r"\1 to "),
    (re.compile(r"(\d{1,2}(?:[:.]\d{2})?\s*[ap]m)\s*[-\u2013]\s*(?=\d)"), r"\1 to "),
    (re.compile(r"(?<=\d)\s*[-\u2013]\s*(?=\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|baje|bje)\b)"), " to "),
    (re.compile(r"(?<=\d)\s*\u2013\s*(?=\d)"), " to "),
    (re.compile(r"(?<=[a-z\u0900-\u097f])'(?=[a-z\u0900-\u097f])"), ""),  # i'm -> im, o'clock -> oclock
    # a leading "No," answers the agent ("No, call tomorrow"); "not tomorrow" / "kal nahi" stay negations
    (re.compile(r"^\s*(?:no|nope|nahi|nahin|nhi|नहीं)\s*[,.!]+"), " "),
)


def normalise(text: str) -> str:
    """Lower-case, NFC, ASCII digits, no nukta, anusvara for chandrabindu, known spellings rewritten."""
    text = unicodedata.normalize("NFC", text).translate(_PUNCT).casefold()
    # NFC decomposes precomposed nukta letters (फ़ -> फ + ़), so dropping the nukta makes हफ़्ते == हफ्ते
    text = text.replace(_NUKTA, "").replace(_CHANDRABINDU, _ANUSVARA).translate(_DEVANAGARI_DIGITS)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def _entries() -> list[tuple[str, tuple[Tok, ...]]]:
    """All phrase -> tokens entries; later entries override earlier ones for the same phrase."""
    out: list[tuple[str, tuple[Tok, ...]]] = []
    out += [(w, (Tok(Tag.FILLER),)) for w in FILLERS]
    out += [(w, (Tok(Tag.FILLER),)) for w in FILLER_PHRASES]
    out += [(w, (Tok(tag),)) for w, tag in SIMPLE.items()]
    out += [(w, (Tok(Tag.NEG, side),)) for w, side in NEGATIONS.items()]
    out += [(w, (Tok(Tag.END_OF, phase),)) for w, phase in PHASES.items()]
    out += [(w, (Tok(Tag.ZONE, offset),)) for w, offset in ZONES.items()]
    out += [(w, (Tok(Tag.NTH, n),)) for w, n in NTHS.items()]
    out += [(w, (Tok(Tag.NUM, n),)) for w, n in NUMBERS.items()]
    out += [(w, (Tok(Tag.FRAC, f),)) for w, f in FRACTIONS.items()]
    out += [(w, (Tok(Tag.FRACNUM, f),)) for w, f in FRACTION_NUMBERS.items()]
    out += [(w, (Tok(Tag.REL_DAY, n),)) for w, n in RELATIVE_DAYS.items()]
    out += [(w, (Tok(Tag.PART, p),)) for w, p in PART_WORDS.items()]
    out += [(w, (Tok(Tag.WEEKDAYS_PL if w in WEEKDAY_PLURALS else Tag.WEEKDAY, d),)) for w, d in WEEKDAYS.items()]
    out += [(w, (Tok(Tag.MONTH, m),)) for w, m in MONTHS.items()]
    out += [(w, (Tok(Tag.MOD, m),)) for w, m in MODIFIERS.items()]
    out += [(w, (Tok(Tag.UNIT, u),)) for w, u in UNITS.items()]
    out += [(w, (Tok(Tag.MERIDIEM, m),)) for w, m in MERIDIEMS.items()]
    out += [(w, (Tok(Tag.PAST_PART, n),)) for w, n in PAST_PARTS.items()]
    out += [(w, (Tok(Tag.TO_PART, n),)) for w, n in TO_PARTS.items()]
    out += [(w, (Tok(Tag.DISMISS, r),)) for w, r in DISMISSALS.items()]
    out += [(w, (Tok(Tag.EVENT, e),)) for w, e in EVENTS.items()]
    tonight = (Tok(Tag.REL_DAY, 0), Tok(Tag.PART, "night"))
    out += [(w, tonight) for w in ("tonight", "tonite", "tonyt", "aaj raat ko")]
    out += [(w, (Tok(Tag.NOON), Tok(Tag.APPROX))) for w in ("noonish", "around noonish")]
    first_thing = (Tok(Tag.PART, "morning"),)
    out += [(w, first_thing) for w in ("first thing", "first thing in the morning", "first thing in morning")]
    fortnight = (Tok(Tag.NUM, 2), Tok(Tag.UNIT, "week"))
    out += [(w, fortnight) for w in ("fortnight", "a fortnight", "one fortnight")]
    out += [(w, (Tok(Tag.MERIDIEM, m),)) for w, m in (("in the am", "am"), ("in the pm", "pm"))]
    return out


def _build() -> dict[tuple[str, ...], tuple[Tok, ...]]:
    table: dict[tuple[str, ...], tuple[Tok, ...]] = {}
    for phrase, toks in _entries():
        key = tuple(normalise(phrase).split())
        table[key] = tuple(Tok(t.tag, t.value, phrase) for t in toks)
    return table


PHRASES: Mapping[tuple[str, ...], tuple[Tok, ...]] = _build()
LONGEST_PHRASE = max(len(k) for k in PHRASES)
