"""Read ``config/mapping.toml`` and validate it into a :class:`worker.mapping.config.Mapping`, or refuse it
with every problem as ``<file>:<line>: <dotted.key>: <what is wrong>`` (the contract is in
:mod:`worker.mapping.config`)."""

import contextlib
import difflib
import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from worker.errors import MappingError, Stage
from worker.mapping.auto_callback import AUTO_CALLBACK_OFF, AutoCallbackRule, read_auto_callback
from worker.mapping.config import (
    DEFAULT_CALLBACK,
    FORBIDDEN_FIELDS,
    SUPPORTED_SOBJECTS,
    AgentRules,
    CallbackRule,
    FieldRule,
    Mapping,
    ParamRule,
    WriteMode,
)
from worker.mapping.values import BLANK_WORDS, NO, YES, ValueKind, clean_text, normalise_key

#: Names, keys and strings as TOML writes them, and the keys each table may hold.
_FIELD_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_BASIC_STRING: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LITERAL_STRING: Final = re.compile(r"'([^']*)'")

_TOP_KEYS: Final = ("sobject", "callback", "auto_callback", "params", "agents")
_CALLBACK_KEYS: Final = ("requested_param", "time_param", "priority", "subject_prefix")
_PARAM_KEYS: Final = ("kind", "fields")
_FIELD_KEYS: Final = ("mode", "values", "rank")
_AGENT_KEYS: Final = ("drop", "params", "callback", "auto_callback")


# --- locating keys in the file's text --------------------------------------------------------------------


def _dotted(path: Sequence[str]) -> str:
    """``("agents", "a b", "drop")`` -> ``agents."a b".drop`` (quoted only where TOML needs it)."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False) for part in path)


def _read_key(line: str, pos: int) -> tuple[tuple[str, ...], int] | None:
    """Parse a (dotted, possibly quoted) TOML key at ``pos``: (parts, position after it and its spaces)."""
    parts: list[str] = []
    while True:
        pos = len(line) - len(line[pos:].lstrip(" \t"))
        for pattern, group in ((_BARE_KEY, 0), (_BASIC_STRING, 1), (_LITERAL_STRING, 1)):
            match = pattern.match(line, pos)
            if match:
                part = match.group(group)
                if pattern is _BASIC_STRING:
                    # An escape TOML has and JSON lacks keeps the raw text: it still locates the line.
                    with contextlib.suppress(ValueError):
                        part = json.loads(f'"{part}"')
                parts.append(part)
                pos = match.end()
                break
        else:
            return None
        pos = len(line) - len(line[pos:].lstrip(" \t"))
        if line.startswith(".", pos):
            pos += 1
            continue
        return tuple(parts), pos


class _SourceLines:
    """Where each table header and ``key =`` line of a TOML text is, by full dotted path."""

    def __init__(self, text: str) -> None:
        self.entries: list[tuple[tuple[str, ...], int]] = []
        self.headers: list[tuple[int, tuple[str, ...]]] = []
        header: tuple[str, ...] = ()
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:  # inside a """ or ''' string: no keys here
                if in_multiline in line:
                    in_multiline = None
                continue
            stripped = line.lstrip()
            if stripped.startswith("["):
                closing = "]]" if stripped.startswith("[[") else "]"
                parsed = _read_key(line, len(line) - len(stripped) + len(closing))
                if parsed and line.startswith(closing, parsed[1]):
                    header = parsed[0]
                    self.entries.append((header, number))
                    self.headers.append((number, header))
                continue
            parsed = _read_key(line, 0)
            if parsed and line.startswith("=", parsed[1]):
                self.entries.append(((*header, *parsed[0]), number))
                rest = line[parsed[1] + 1 :]
                in_multiline = next((d for d in ('"""', "'''") if rest.count(d) % 2 == 1), None)

    def line_of(self, path: Sequence[str]) -> int | None:
        """First line of ``path``, else of its nearest ancestor that appears in the text."""
        for size in range(len(path), 0, -1):
            prefix = tuple(path[:size])
            lines = [line for entry, line in self.entries if entry[:size] == prefix]
            if lines:
                return min(lines)
        return None

    def key_at(self, line: int) -> tuple[str, ...] | None:
        """The key written on ``line``, or the table it is in."""
        for entry, number in self.entries:
            if number == line:
                return entry
        before = [header for number, header in self.headers if number < line]
        return before[-1] if before else None


# --- validation -------------------------------------------------------------------------------------------


def load_mapping(path: Path) -> Mapping:
    """Read, parse and validate the mapping file at ``path``. Raises MappingError naming file:line and key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # Notepad saves a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(source, [f"{source}: cannot read the mapping file: {exc}"]) from exc
    return parse_mapping(text, source=source)


def parse_mapping(text: str, *, source: str = "mapping.toml") -> Mapping:
    """Validate mapping ``text``; ``source`` names it in messages. Raises MappingError."""
    lines = _SourceLines(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(source, [_syntax_message(source, lines, exc)]) from exc
    return _Loader(source, lines).load(data)


def _syntax_message(source: str, lines: _SourceLines, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
    if not match:
        return f"{source}: TOML syntax error: {message}"
    line = int(match.group(1))
    detail = f"TOML syntax error: {message[: match.start()]} (column {match.group(2)})"
    key = lines.key_at(line)
    return f"{source}:{line}: {_dotted(key)}: {detail}" if key else f"{source}:{line}: {detail}"


def _error(source: str, problems: list[str]) -> MappingError:
    return MappingError(
        "\n".join(problems),
        stage=Stage.PLAN,
        code="MAPPING_INVALID",
        details={"file": source, "problems": problems},
    )


def _one_of(choices: Sequence[str]) -> str:
    return ", ".join(choices)


class _Loader:
    """Validates parsed TOML into the typed rules, collecting every problem before raising."""

    def __init__(self, source: str, lines: _SourceLines) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[tuple[int, int, str]] = []
        self.auto_base: AutoCallbackRule = AUTO_CALLBACK_OFF

    def where(self, path: Sequence[str]) -> str:
        return f"{self.source}:{self.lines.line_of(path) or 1} {_dotted(path)}"

    def fail(self, path: Sequence[str], message: str) -> None:
        line = self.lines.line_of(path) or 1
        self.problems.append((line, len(self.problems), f"{self.source}:{line}: {_dotted(path)}: {message}"))

    def load(self, data: dict[str, Any]) -> Mapping:
        self.unknown_keys((), data, _TOP_KEYS)
        sobject = data.get("sobject", "Lead")
        if sobject not in SUPPORTED_SOBJECTS:
            self.fail(("sobject",), f"{sobject!r} is not supported; the worker writes {_one_of(SUPPORTED_SOBJECTS)}")
        default_callback_raw = dict(DEFAULT_CALLBACK)
        callback = self.callback(("callback",), data.get("callback", {}), default_callback_raw)
        params = self.params(("params",), data.get("params", {}))
        auto = read_auto_callback(self.fail, ("auto_callback",), data.get("auto_callback", {}), AUTO_CALLBACK_OFF)
        self.auto_base = auto or AUTO_CALLBACK_OFF
        agents: dict[str, AgentRules] = {}
        callback_where: dict[str | None, str] = {None: self.where(("callback",))}
        raw_agents = data.get("agents", {})
        if not isinstance(raw_agents, dict):
            self.fail(("agents",), 'must be a table of [agents."<agent_id>"] overrides')
            raw_agents = {}
        raw_params = data.get("params")
        default_names = list(raw_params) if isinstance(raw_params, dict) else []
        for agent_id, table in raw_agents.items():
            agent = self.agent(("agents", agent_id), agent_id, table, default_names, default_callback_raw)
            if agent is not None:
                agents[agent_id] = agent
                callback_where[agent_id] = self.where(("agents", agent_id, "callback"))
        if self.problems or callback is None:
            raise _error(self.source, [message for _, _, message in sorted(self.problems)])
        return Mapping(
            source=self.source,
            sobject=str(sobject),
            params=params,
            callback=callback,
            agents=agents,
            callback_where=callback_where,
            auto_callback=self.auto_base,
        )

    def unknown_keys(self, path: tuple[str, ...], table: dict[str, Any], allowed: Sequence[str]) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.fail((*path, key), f"unknown key (expected one of: {_one_of(allowed)}){hint}")

    def table(self, path: tuple[str, ...], value: Any, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.fail(path, f"must be a table ({what}), not {type(value).__name__} {value!r}")
        return None

    def callback(self, path: tuple[str, ...], raw: Any, base: dict[str, str]) -> CallbackRule | None:
        """Validate a [callback] table; keys it leaves out come from ``base`` (updated when it is valid)."""
        table = self.table(path, raw, "requested_param, time_param, priority, subject_prefix")
        if table is None:
            return None
        self.unknown_keys(path, table, _CALLBACK_KEYS)
        merged = dict(base)
        ok = True
        for key in _CALLBACK_KEYS:
            if key not in table:
                continue
            value = table[key]
            if not isinstance(value, str) or not value.strip():
                self.fail((*path, key), f"{value!r} is not a non-empty string")
                ok = False
            else:
                merged[key] = value.strip()
        if merged["requested_param"] == merged["time_param"]:
            self.fail(
                (*path, "time_param"),
                "must differ from requested_param (one says yes/no, one holds the time)",
            )
            ok = False
        if not ok:
            return None
        if path == ("callback",):
            base.update(merged)
        return CallbackRule(**merged)

    def params(self, path: tuple[str, ...], raw: Any) -> tuple[ParamRule, ...]:
        table = self.table(path, raw, "one [params.<output parameter>] table per parameter")
        if table is None:
            return ()
        rules = (self.param((*path, name), name, value) for name, value in table.items())
        return tuple(rule for rule in rules if rule is not None)

    def param(self, path: tuple[str, ...], name: str, raw: Any) -> ParamRule | None:
        if not name.strip() or name != name.strip():
            self.fail(path, f"{name!r} is not an output parameter name (empty or padded with spaces)")
            return None
        table = self.table(path, raw, "kind and fields")
        if table is None:
            return None
        self.unknown_keys(path, table, _PARAM_KEYS)
        kinds = [kind.value for kind in ValueKind]
        if "kind" not in table:
            self.fail(path, f"kind is missing (one of {_one_of(kinds)})")
            return None
        if table["kind"] not in kinds:
            self.fail((*path, "kind"), f"{table['kind']!r} is not one of {_one_of(kinds)}")
            return None
        kind = ValueKind(table["kind"])
        fields = table.get("fields")
        if not isinstance(fields, dict) or not fields:
            self.fail((*path, "fields"), f"needs at least one [{_dotted((*path, 'fields', '<Field>'))}] table")
            return None
        targets: list[FieldRule] = []
        seen: dict[str, str] = {}
        for field, field_raw in fields.items():
            field_path = (*path, "fields", field)
            if not self.field_name_ok(field_path, field):
                continue
            if field.casefold() in seen:
                self.fail(
                    field_path,
                    f"sets the same Lead field as fields.{seen[field.casefold()]}; set a field once",
                )
                continue
            seen[field.casefold()] = field
            target = self.field_rule(field_path, kind, field, field_raw)
            if target is not None:
                targets.append(target)
        if len(targets) != len(fields):
            return None
        return ParamRule(param=name, kind=kind, fields=tuple(targets), where=self.where(path))

    def field_name_ok(self, path: tuple[str, ...], field: str) -> bool:
        folded = field.casefold()
        if not _FIELD_NAME.fullmatch(field):
            message = f"{field!r} is not a field API name (letters, digits, underscores; custom ones end in __c)"
        elif folded in FORBIDDEN_FIELDS:
            message = f"{field!r} is a system or ownership field; no output parameter may write it"
        elif folded.endswith("id") and not folded.endswith("__c"):
            message = f"{field!r} is a relationship (Id) field; no output parameter may write it"
        else:
            return True
        self.fail(path, message)
        return False

    def field_rule(self, path: tuple[str, ...], kind: ValueKind, field: str, raw: Any) -> FieldRule | None:
        table = self.table(path, raw, "mode, values, rank")
        if table is None:
            return None
        self.unknown_keys(path, table, _FIELD_KEYS)
        modes = [mode.value for mode in WriteMode]
        if "mode" not in table:
            self.fail(path, f"mode is missing (one of {_one_of(modes)})")
            return None
        if table["mode"] not in modes:
            self.fail((*path, "mode"), f"{table['mode']!r} is not one of {_one_of(modes)}")
            return None
        mode = WriteMode(table["mode"])
        ok = True
        values: dict[str, str] | None = None
        if "values" in table:
            values = self.values((*path, "values"), kind, table["values"])
            ok = values is not None
        elif kind is ValueKind.ENUM:
            self.fail(path, "kind enum needs a values map (input = value to write)")
            ok = False
        rank: tuple[str, ...] = ()
        if mode is WriteMode.NEVER_DOWNGRADE:
            if "values" not in table:
                self.fail((*path, "mode"), "never_downgrade needs a values map (it ranks the mapped values)")
                ok = False
            if "rank" not in table:
                self.fail((*path, "mode"), "never_downgrade needs rank = [the field's values, lowest first]")
                ok = False
            else:
                rank = self.rank((*path, "rank"), table["rank"])
                ok = ok and bool(rank)
            if ok and values is not None:
                ranked = {value.casefold() for value in rank}
                for key, value in values.items():
                    if value.casefold() not in ranked:
                        self.fail((*path, "values", key), f"{value!r} is not in rank, so it cannot be compared")
                        ok = False
        elif "rank" in table:
            self.fail((*path, "rank"), f"rank is only used by mode never_downgrade (mode is {mode.value})")
            ok = False
        if not ok:
            return None
        return FieldRule(
            field=field,
            mode=mode,
            values=None if values is None else MappingProxyType(values),
            rank=rank,
            where=self.where(path),
        )

    def values(self, path: tuple[str, ...], kind: ValueKind, raw: Any) -> dict[str, str] | None:
        if kind not in (ValueKind.YES_NO, ValueKind.ENUM):
            self.fail(path, f"kind {kind.value} writes the value itself; a values map is only for yes_no and enum")
            return None
        table = self.table(path, raw, "input = value to write")
        if table is None:
            return None
        if not table:
            self.fail(path, "is empty")
            return None
        mapped: dict[str, str] = {}
        spelled: dict[str, str] = {}
        for key, value in table.items():
            normalised = normalise_key(key)
            if kind is ValueKind.YES_NO and normalised not in (YES, NO):
                self.fail((*path, key), f"{key!r} is not yes or no (kind yes_no maps only yes and no)")
            elif kind is ValueKind.ENUM and normalised in BLANK_WORDS:
                self.fail((*path, key), f"{key!r} is a blank placeholder, never a value")
            elif normalised in spelled:
                self.fail(
                    (*path, key),
                    f"{key!r} repeats {spelled[normalised]!r} (keys ignore case and punctuation)",
                )
            elif not isinstance(value, str):
                self.fail((*path, key), f"{value!r} is not text; write the value to store in quotes")
            elif not clean_text(value):
                self.fail((*path, key), "is blank; a blank value would clear the field")
            else:
                spelled[normalised] = key
                mapped[normalised] = clean_text(value)
                continue
            return None
        return mapped

    def rank(self, path: tuple[str, ...], raw: Any) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            self.fail(path, "must be a non-empty list of the field's values, lowest first")
            return ()
        seen: set[str] = set()
        for item in raw:
            if not isinstance(item, str) or not item.strip():
                self.fail(path, f"{item!r} is not a non-empty string")
                return ()
            if item.strip().casefold() in seen:
                self.fail(path, f"{item!r} is listed twice")
                return ()
            seen.add(item.strip().casefold())
        return tuple(item.strip() for item in raw)

    def agent(
        self,
        path: tuple[str, ...],
        agent_id: str,
        raw: Any,
        default_names: list[str],
        default_callback: dict[str, str],
    ) -> AgentRules | None:
        if not agent_id.strip():
            self.fail(path, "an agent id cannot be empty")
            return None
        table = self.table(path, raw, "drop, params, callback")
        if table is None:
            return None
        self.unknown_keys(path, table, _AGENT_KEYS)
        problems_before = len(self.problems)
        params = self.params((*path, "params"), table.get("params", {}))
        drop = self.drop((*path, "drop"), table.get("drop", []), default_names, table.get("params"))
        callback = None
        if "callback" in table:
            callback = self.callback((*path, "callback"), table["callback"], default_callback)
        auto: AutoCallbackRule | None = None
        if "auto_callback" in table:
            auto = read_auto_callback(self.fail, (*path, "auto_callback"), table["auto_callback"], self.auto_base)
        if len(self.problems) != problems_before:
            return None
        return AgentRules(agent_id=agent_id, params=params, drop=drop, callback=callback, auto_callback=auto)

    def drop(self, path: tuple[str, ...], raw: Any, default_names: list[str], replaced: Any) -> frozenset[str]:
        """An agent's ``drop`` list: default rules (by parameter name) that do not apply to its calls."""
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            self.fail(path, "must be a list of output parameter names")
            return frozenset()
        for name in raw:
            if name not in default_names:
                self.fail(path, f"{name!r} has no default rule to drop (default rules: {_one_of(default_names)})")
            elif isinstance(replaced, dict) and name in replaced:
                self.fail(path, f"{name!r} is both dropped and replaced for this agent; keep one")
        return frozenset(raw)
