"""Grammar rules for times of day: clock times in every form callers and LLMs use, minutes past/to an
hour, approximations, and windows ("between 2 and 3", "3 se 4 ke beech", "after 2", "11 ke baad",
"before 1").

Forms read: "10:30", "9.30", "15:23:24", "9:01:10 AM", "15h00", "16h", "730 in the evening", "1745 hrs",
"4 pm", "4 baje", "12 noon", "ten thirty", "nine fifty nine a m", "half past four", "quarter to five",
"20 minutes to 2pm", "ten past three", "half three", "sadhe 4", "paune 5", "dedh baje", "4 baj ke 20
minute", "around 5", "4ish", "5 ke aas paas". A number is an hour only where something marks it as one
(at/around/baje/am/pm, a day or part of day next to it, a window word); otherwise the rule does not match.
"""

from __future__ import annotations

from dataclasses import replace

from worker.callbacks.cursor import Cursor
from worker.callbacks.lexicon import Tag
from worker.callbacks.spec import NotUnderstood, TimeMode, TimeSpec, WindowSpec

# What may follow a number that makes it not an hour ("at 2 hours", "kal 5 din").
NOT_AN_HOUR_AFTER = frozenset({Tag.UNIT, Tag.MONTH, Tag.TARIKH, Tag.OF, Tag.ANDHALF, Tag.WEEKDAYS_PL})
# Words next to a plain number that make it an hour: "10 tomorrow", "8 tonight", "4ish", "5 nahi, 6 baje".
_HOUR_CONTEXT_AFTER = frozenset({Tag.REL_DAY, Tag.PART, Tag.WEEKDAY, Tag.APPROX, Tag.NEG})
_MINUTE_WORDS = frozenset({15, 30, 45})
_TO_MINUTE_WORDS = frozenset({5, 10, 20, 25})  # "ten to five" is 4:50, "3 to 5" is a window
_VERB_LIKE_NUMBERS = frozenset({"do"})  # Hindi 2, English verb
_MILITARY_UNITS = frozenset({"hrs", "hours", "hr", "hour"})
_WINDOW_CLOSE = frozenset({Tag.BEECH, Tag.TAK})


class ClockRules(Cursor):
    """Clock-time and window rules; each returns True when it read something (and moved on)."""

    # ----------------------------------------------------------------------------------------- windows
    def window(self) -> bool:
        """between T and T / from T to T / T to T / T se T (ke beech|tak) / after T / T ke baad / before T /
        T se pehle / T tak."""
        t0 = self.tag()
        if t0 in (Tag.BETWEEN, Tag.FROM):
            first = self.clock_at(1, marked=True)
            if first is not None and t0 is Tag.FROM and self.tag(first[1]) not in (Tag.AND, Tag.TO, Tag.SE):
                return self.add_window(WindowSpec(first[0], None), first[1])  # "from 2 pm", "since 2pm"
            if first is None or self.tag(first[1]) not in (Tag.AND, Tag.TO, Tag.SE):
                return False
            second = self.clock_at(first[1] + 1, marked=True)
            if second is None:
                raise NotUnderstood("a window needs two times")
            end = second[1] + (1 if self.tag(second[1]) in _WINDOW_CLOSE else 0)
            return self.add_window(WindowSpec(first[0], second[0]), end)
        if t0 in (Tag.AFTER, Tag.BEFORE, Tag.FROM, Tag.TO):  # after/from/since 2 pm, before/until/till 5
            k = 2 if self.tag(1) in (Tag.APPROX, Tag.HOURMARK) else 1
            found = self.clock_at(k, marked=True)
            if found is None:
                return False
            spec, end = found
            opens = t0 in (Tag.AFTER, Tag.FROM)
            return self.add_window(WindowSpec(spec, None) if opens else WindowSpec(None, spec), end)
        if self.tag() is Tag.SPAN_OR_DATE:
            return self.span_or_date()
        lead = 1 if self.tag() in (Tag.HOURMARK, Tag.APPROX) else 0  # "around 10-11"
        if self.tag(lead) not in (Tag.NUM, Tag.CLOCK, Tag.FRAC, Tag.FRACNUM, Tag.NOON):
            return False
        first = self.clock_at(lead, marked=True)
        if first is None:
            return False
        spec, j = first
        if self.tag(j) in (Tag.SE, Tag.TO):
            second = self.clock_at(j + 1, marked=True)
            if second is None:
                return False
            end = second[1] + (1 if self.tag(second[1]) in _WINDOW_CLOSE else 0)
            return self.add_window(WindowSpec(spec, second[0]), end)
        if self.tag(j) is Tag.POST_AFTER:
            return self.add_window(WindowSpec(spec, None), j + 1)
        if self.tag(j) in (Tag.BEFORE, Tag.TAK):  # "12 baje se pehle", "7 baje tak" (by 7)
            return self.add_window(WindowSpec(None, spec), j + 1)
        return False

    def span_or_date(self) -> bool:
        """ "thurs 3-4", "kal 10-11": with a day or part of day said and no month, a span of hours; alone
        ("10-11": 10-11 am or 10 November?) the phrase is not guessed."""
        context = {t.tag for t in self.toks}
        if Tag.MONTH in context or not context & {Tag.REL_DAY, Tag.WEEKDAY, Tag.PART}:
            raise NotUnderstood(f"'{self.text()}' may be hours or a date")
        value = self.value()
        assert isinstance(value, tuple)
        end, mode = self.meridiem_after(1)
        start = self.time_spec(value[0], 0, "bare", self.text())
        return self.add_window(WindowSpec(start, self.time_spec(value[1], 0, mode, self.text())), end)

    def add_window(self, window: WindowSpec, end: int) -> bool:
        self.spec.windows.append(window)
        return self.done(end, "other")

    # ------------------------------------------------------------------------------ minutes past / to
    def minutes_around(self) -> bool:
        """ "10 minutes past 3", "twenty after 3pm", "20 minutes to 2pm", "15 to noon", "15 minutes from
        1pm", "half three" (3:30)."""
        if self.tag() is Tag.FRACNUM and self.text() == "half" and self.tag(1) is Tag.NUM:
            if self.tag(2) in NOT_AN_HOUR_AFTER or not 1 <= self.num(1) <= 12:
                return False
            end, mode = self.meridiem_after(2)
            return self.add_time(self.time_spec(self.num(1), 30, mode, self.text(1)), end)
        if self.tag() is not Tag.NUM or not 1 <= self.num() <= 59:
            return False
        minutes, k = self.num(), 2 if self.unit_is(1, "minute") else 1
        rel = self.tag(k)
        to_ok = k == 2 or minutes > 12 or (self.is_word_number(0) and minutes in _TO_MINUTE_WORDS)
        if not (rel in (Tag.PAST, Tag.AFTER) or (rel is Tag.TO and to_ok) or (rel is Tag.FROM and k == 2)):
            return False
        found = self.clock_at(k + 1, marked=True)
        if found is None:
            return False
        hour, end = found
        total = hour.hour * 60 + hour.minute + (-minutes if rel is Tag.TO else minutes)
        h, m = divmod(total, 60)
        if hour.mode == "bare":
            h = h % 12 or 12
            return self.add_time(TimeSpec(h, m, "bare"), end)
        if not 0 <= h <= 23:
            raise NotUnderstood("no such time")
        return self.add_time(TimeSpec(h, m, "h24"), end)

    def add_time(self, spec: TimeSpec, end: int) -> bool:
        if self.tag(end) is Tag.APPROX:
            spec, end = replace(spec, approx=True), end + 1
        self.spec.times.append(spec)
        return self.done(end, "other")

    # ------------------------------------------------------------------------------------------ times
    def time(self) -> bool:
        """A clock time, optionally after at/@/around/about and before -ish/approximately/ke aas paas."""
        k, approx = 0, False
        while self.tag(k) in (Tag.HOURMARK, Tag.APPROX):
            approx = approx or self.tag(k) is Tag.APPROX
            k += 1
        found = self.clock_at(k, marked=k > 0 or self.tag(-1) is Tag.NEG)
        if found is None:
            return False
        spec, end = found
        if self.tag(end) is Tag.APPROX:
            approx, end = True, end + 1
            if spec.mode == "bare" and self.tag(end) is Tag.MERIDIEM:  # "3ish pm"
                spec = self.time_spec(spec.hour, spec.minute, "am" if self.sval(end) == "am" else "pm", "")
                end += 1
        return self.add_time(replace(spec, approx=approx), end)

    def loose_hour(self) -> bool:
        """A plain number right after a day or a part of day is an hour: "tomorrow 11", "raat 8"."""
        if self.tag() is not Tag.NUM or self.last not in ("day", "part") or self.tag(1) in NOT_AN_HOUR_AFTER:
            return False
        if self.text() in _VERB_LIKE_NUMBERS:
            return False  # "tomorrow, do call": only "do baje" makes "do" an hour
        found = self.clock_at(0, marked=True)
        if found is None:
            return False
        return self.add_time(*found)

    def clock_at(self, k: int, *, marked: bool) -> tuple[TimeSpec, int] | None:
        """A time k tokens ahead: the TimeSpec and the offset just after it, or None."""
        t0, t1, t2 = self.tag(k), self.tag(k + 1), self.tag(k + 2)
        hours: float  # the hour, possibly with a fraction ("sadhe 4" = 4.5)
        minute = 0
        if t0 is Tag.CLOCK:
            return self.clock_token(k)
        if t0 is Tag.FRAC and t1 is Tag.NUM:
            hours, used = self.num(k + 1) + self.fval(k), 2
        elif t0 in (Tag.PAST_PART, Tag.TO_PART) and t1 is Tag.NOON:
            minutes = 12 * 60 + (1 if t0 is Tag.PAST_PART else -1) * self.num(k)
            return TimeSpec(minutes // 60, minutes % 60, "h24"), k + 2
        elif t0 in (Tag.PAST_PART, Tag.TO_PART) and t1 is Tag.NUM:
            sign = 1 if t0 is Tag.PAST_PART else -1
            hours, used = self.num(k + 1) + sign * self.fval(k) / 60, 2
        elif t0 is Tag.NUM and t1 is Tag.BAJKE and t2 is Tag.NUM:
            hours, minute, used = self.num(k), self.num(k + 2), 3  # "4 baj ke 20 minute"
            if self.unit_is(k + 3, "minute"):
                used = 4
        elif t0 is Tag.NOON:
            return TimeSpec(12, 0, "h24"), k + 1
        elif t0 is Tag.NUM and t1 is Tag.NOON and self.num(k) == 12:
            return TimeSpec(12, 0, "h24"), k + 2
        elif t0 is Tag.NUM and self.text(k).isdigit() and len(self.text(k)) in (3, 4):
            return self.compact_clock(k, marked=marked)
        elif t0 is Tag.NUM and t1 in (Tag.MERIDIEM, Tag.BAJE):
            hours, used = self.num(k), 1
        elif self.is_word_number(k) and self.is_word_number(k + 1) and 1 <= self.num(k) <= 12:
            said_minute = self.num(k + 1)
            context = marked or t2 in (Tag.MERIDIEM, Tag.BAJE, Tag.PART, Tag.REL_DAY)
            if t2 in NOT_AN_HOUR_AFTER or not 1 <= said_minute <= 59:
                return None
            if said_minute not in _MINUTE_WORDS and not context:
                return None
            hours, minute, used = self.num(k), said_minute, 2  # "ten thirty", "nine fifty nine a m"
        elif (
            t0 is Tag.NUM
            and t1 is Tag.NUM
            and self.text(k).isdigit()
            and len(self.text(k + 1)) == 2
            and self.text(k + 1).isdigit()
            and self.num(k + 1) < 60
            and (marked or t2 in (Tag.MERIDIEM, Tag.BAJE))
        ):
            hours, minute, used = self.num(k), self.num(k + 1), 2  # "at 9 30", "9 30 pm" (speech-to-text)
        elif t0 in (Tag.FRACNUM, Tag.DECIMAL) and t1 is Tag.BAJE:
            hours, used = self.fval(k), 1  # "dedh baje" = 1:30
        elif t0 is Tag.NUM and t1 not in NOT_AN_HOUR_AFTER and (marked or self.hour_context(k)):
            hours, used = self.num(k), 1
        else:
            return None
        h, m = divmod(round(hours * 60) + minute, 60)
        end, mode = self.meridiem_after(k + used)
        return self.time_spec(h, m, mode, self.text(k)), end

    def hour_context(self, k: int) -> bool:
        """A plain number is an hour when a day, part of day, -ish or a negation follows it ("10 tomorrow",
        "8 tonight", "4ish", "5 nahi, 6 baje"), or "this"/"next" + part or weekday ("8 this evening")."""
        if self.text(k) in _VERB_LIKE_NUMBERS:
            return False
        after = self.tag(k + 1)
        if after in _HOUR_CONTEXT_AFTER:
            return True
        return after is Tag.MOD and self.tag(k + 2) in (Tag.PART, Tag.WEEKDAY)

    def clock_token(self, k: int) -> tuple[TimeSpec, int]:
        """ "10:30", "15:23:24", "15h00": a 24-hour value unless am/pm follows an hour 1-12."""
        value = self.value(k)
        assert isinstance(value, tuple)
        hour, minute, second, h_notation = value
        if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
            raise NotUnderstood(f"no such time '{self.text(k)}'")
        end, mode = self.meridiem_after(k + 1)
        if self.tag(end) is Tag.UNIT and self.text(end) in _MILITARY_UNITS and mode == "bare":
            return TimeSpec(hour, minute, "h24", second), end + 1  # "10:00 hrs"
        if h_notation or hour == 0 or hour >= 13:
            if mode != "bare" and not (1 <= hour <= 12):
                raise NotUnderstood(f"no such time '{self.text(k)} {mode}'")
            if mode == "bare" or h_notation:
                return TimeSpec(hour, minute, "h24", second), end
        return replace(self.time_spec(hour, minute, mode, self.text(k)), second=second), end

    def compact_clock(self, k: int, *, marked: bool) -> tuple[TimeSpec, int] | None:
        """ "730", "1030", "1745 hrs", "150ish": hour and minutes written together. Read only when marked
        (at/around, a day or part next to it) or when am/pm, -ish, baje or "hrs" follows."""
        hour, minute = divmod(self.num(k), 100)
        if minute >= 60 or not 1 <= hour <= 23:
            return None
        after = self.tag(k + 1)
        if after is Tag.UNIT and self.text(k + 1) in _MILITARY_UNITS and len(self.text(k)) == 4:
            return TimeSpec(hour, minute, "h24"), k + 2  # "1745 hrs"
        if after is Tag.UNIT or not (marked or after in (Tag.MERIDIEM, Tag.BAJE, Tag.APPROX, Tag.PART)):
            return None
        if len(self.text(k)) == 4 and 19 <= hour <= 20 and after is not Tag.MERIDIEM:
            return None  # "at 2025" is a year, not 20:25
        end, mode = self.meridiem_after(k + 1)
        return self.time_spec(hour, minute, mode, self.text(k)), end

    def meridiem_after(self, k: int) -> tuple[int, TimeMode]:
        """Consume baje/o'clock and am/pm after a time, in either order: the offset after, and the mode."""
        mode: TimeMode = "bare"
        while True:
            tag = self.tag(k)
            if tag is Tag.BAJE:
                k += 1
            elif tag is Tag.MERIDIEM and mode == "bare":
                mode = "am" if self.sval(k) == "am" else "pm"
                k += 1
            else:
                return k, mode

    @staticmethod
    def time_spec(h: int, m: int, mode: TimeMode, said: str) -> TimeSpec:
        """Check an hour against its am/pm: 13-23 and 0 are 24-hour times, 1-12 wait for am/pm."""
        if mode == "bare":
            if h == 0:
                h = 12  # "paune 1" = 12:45
            if 13 <= h <= 23:
                return TimeSpec(h, m, "h24")
            if 1 <= h <= 12:
                return TimeSpec(h, m, "bare")
        elif 1 <= h <= 12:
            return TimeSpec(h % 12 + (12 if mode == "pm" else 0), m, mode)
        raise NotUnderstood(f"no such time '{said}'")
