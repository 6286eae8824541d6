"""Load and validate the one YAML config file, reporting every problem as ``file:line: field: msg``.

Steps: parse with :class:`LineLoader` (plain data plus a :class:`SourceMap` holding the line of
every key and list item and the text of every scalar as written; duplicate keys are caught
here since PyYAML silently keeps the last), fill PBX settings and secrets from the environment
where the file is silent, validate with the strict pydantic models, run the cross-reference
checks, and translate everything into :class:`~callcenter.errors.ConfigIssue` values sorted by
line. Nothing stops at the first problem.

YAML 1.1 guesses are refused, never coerced: ``9:00`` (the number 540), ``0123`` (octal 83),
``no`` (false) and ``1001`` (an int) where a string is expected produce "write it as a
string" errors quoting what was typed.
"""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import structlog
import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from callcenter.config.models import (
    CallCenterConfig,
    did_you_mean,
    reference_problems,
    unwrap_type,
)
from callcenter.config.settings import settings_and_issues
from callcenter.errors import ConfigError, ConfigIssue

log = structlog.get_logger(__name__)

__all__ = [
    "DataPath",
    "LineLoader",
    "ScalarSource",
    "SourceMap",
    "check_config",
    "load_config",
    "load_config_text",
]

DataPath = tuple[object, ...]
"""Keys and list indexes from the root of the parsed data to one value."""

_MAX_NODES = 1_000_000  # alias expansion guard ("billion laughs")
_ABSENT: Any = object()
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_SECRET_MISSING = (
    "no AMI secret: export CALLCENTER_AMI_SECRET=..., or put it in the secrets file named by "
    "CALLCENTER_SECRETS_FILE, or set pbx.ami.secret in this file"
)


@dataclass(frozen=True, slots=True)
class ScalarSource:
    """A scalar as written in the file."""

    text: str
    plain: bool  # unquoted, so YAML guessed its type
    line: int

    def shown(self) -> str:
        """The text as the user typed it (quoted if it was quoted)."""
        return self.text if self.plain else json.dumps(self.text, ensure_ascii=False)


@dataclass(slots=True)
class SourceMap:
    """Where every part of the parsed data came from (lines are 1-based)."""

    lines: dict[DataPath, int] = field(default_factory=dict)
    """Line of each mapping key (path ends with the key) and of each list item."""
    scalars: dict[DataPath, ScalarSource] = field(default_factory=dict)
    """Each scalar value, by its path."""
    keys: dict[DataPath, ScalarSource] = field(default_factory=dict)
    """Each mapping key, by the path that ends with it."""

    def line_of(self, path: DataPath) -> int | None:
        """Line of ``path``, or of its nearest ancestor with a line."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


class _TooBig(Exception):
    pass


class LineLoader(yaml.SafeLoader):
    """A SafeLoader that builds plain data and a :class:`SourceMap` from the composed nodes.

    Use :meth:`load_document`; problems it finds (duplicate keys, bad tags, self-referencing
    aliases) are appended to ``issues``.
    """

    def __init__(self, stream: str, filename: str) -> None:
        super().__init__(stream)
        self.filename = filename
        self.source_map = SourceMap()
        self.issues: list[ConfigIssue] = []
        self._built = 0
        self._sequences: set[DataPath] = set()

    def load_document(self) -> object:
        """The single document's data (``None`` for an empty file). Raises ``yaml.YAMLError``."""
        node = self.get_single_node()
        if node is None:
            return None
        try:
            return self._build(node, (), frozenset())
        except _TooBig:
            self._issue(node, (), "aliases expand to more than a million values")
            return None

    def _shown(self, path: DataPath) -> str:
        shown = ""
        for end, element in enumerate(path):
            if path[:end] in self._sequences:
                shown += f"[{element}]"
            else:
                shown += ("." if shown else "") + str(element)
        return shown

    def _issue(self, node: yaml.Node, path: DataPath, message: str) -> None:
        line = node.start_mark.line + 1
        self.issues.append(ConfigIssue(self.filename, line, self._shown(path), message))

    def _build(self, node: yaml.Node, path: DataPath, active: frozenset[int]) -> object:
        self._built += 1
        if self._built > _MAX_NODES:
            raise _TooBig
        if id(node) in active:
            self._issue(node, path, "this alias refers to the value that contains it")
            return None
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError) as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                self._issue(node, path, f"cannot read {node.value!r}: {problem}")
                return None
            line = node.start_mark.line + 1
            self.source_map.scalars[path] = ScalarSource(node.value, node.style is None, line)
            return value
        inner = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self._issue(node, path, f"unsupported YAML tag {node.tag}")
                return None
            items: list[object] = []
            self._sequences.add(path)
            for index, item in enumerate(node.value):
                self.source_map.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self._build(item, (*path, index), inner))
            return items
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                self._issue(node, path, f"unsupported YAML tag {node.tag}")
                return None
            return self._build_mapping(node, path, inner)
        self._issue(node, path, "unsupported YAML node")
        return None

    def _build_mapping(
        self, node: yaml.MappingNode, path: DataPath, active: frozenset[int]
    ) -> dict[object, object]:
        merged: dict[object, object] = {}
        explicit: dict[object, object] = {}
        first_line: dict[object, int] = {}
        # `<<: *defaults` entries first: explicit keys override them wherever they appear.
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self._issue(source, path, "<< (merge) needs a mapping or a list of mappings")
                    continue
                built = self._build(source, path, active)
                if isinstance(built, dict):
                    for key, value in built.items():
                        merged.setdefault(key, value)
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._issue(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (yaml.YAMLError, ValueError, TypeError) as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                self._issue(key_node, path, f"cannot read key {key_node.value!r}: {problem}")
                continue
            line = key_node.start_mark.line + 1
            here = (*path, key)
            if key in explicit:
                self.issues.append(
                    ConfigIssue(
                        self.filename,
                        line,
                        self._shown(here),
                        f"duplicate key: already set on line {first_line[key]} "
                        "(YAML would silently keep only the last one)",
                    )
                )
            else:
                first_line[key] = line
            self.source_map.lines[here] = line
            self.source_map.keys[here] = ScalarSource(key_node.value, key_node.style is None, line)
            explicit[key] = self._build(value_node, here, active)
        return {**merged, **explicit}


def _dotted(path: DataPath, data: object = _ABSENT) -> str:
    """``flows.main.nodes.x.prompts[0]``: list indexes in brackets (known from ``data``)."""
    out = ""
    cur = data
    for element in path:
        if isinstance(cur, list) and isinstance(element, int):
            out += f"[{element}]"
            cur = cur[element] if 0 <= element < len(cur) else _ABSENT
            continue
        out += ("." if out else "") + str(element)
        cur = cur.get(element, _ABSENT) if isinstance(cur, dict) else _ABSENT
    return out


# --------------------------------------------------------------------------- pydantic errors


def _find_key(mapping: dict[object, object], element: object) -> object:
    try:
        if element in mapping:
            return element
    except TypeError:
        return _ABSENT
    # pydantic writes keys that are not str/int as their str() in `loc`.
    for key in mapping:
        if str(key) == str(element):
            return key
    return _ABSENT


@dataclass(slots=True)
class _Where:
    path: DataPath  # the part of loc found in the data
    shown: str  # loc without discriminator tags, for the message
    is_key: bool  # the error is about the last key of `path` itself
    tagged_loc: tuple[object, ...]  # loc without "[key]", for the model walk


def _locate(loc: tuple[int | str, ...], data: object) -> _Where:
    cur: Any = data
    path: DataPath = ()
    shown = ""
    is_key = False
    tagged: list[object] = []
    for index, element in enumerate(loc):
        if element == "[key]":
            is_key = True
            continue
        tagged.append(element)
        if isinstance(cur, dict):
            key = _find_key(cur, element)
            if key is not _ABSENT:
                path, cur = (*path, key), cur[key]
                shown += ("." if shown else "") + str(key)
                continue
            if index < len(loc) - 1 and cur.get("kind") == element:
                continue  # a discriminated union's tag: not part of the data
        elif isinstance(cur, list) and isinstance(element, int) and 0 <= element < len(cur):
            path, cur = (*path, element), cur[element]
            shown += f"[{element}]"
            continue
        cur = _ABSENT
        shown += ("." if shown else "") + str(element)
    return _Where(path, shown, is_key, tuple(tagged))


def _union_members(tp: Any) -> list[type[BaseModel]]:
    if get_origin(tp) in (Union, types.UnionType):
        return [m for m in get_args(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
    return []


def _kind_of(member: type[BaseModel]) -> str:
    return str(get_args(member.model_fields["kind"].annotation)[0])


def _walk_model(loc: tuple[object, ...]) -> tuple[type[BaseModel] | None, Any]:
    """(model owning the last element of ``loc``, that field's annotation or None if unknown)."""
    tp: Any = CallCenterConfig
    owner: type[BaseModel] | None = None
    for element in loc:
        tp = unwrap_type(tp)
        members = _union_members(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(element))
            if info is None:
                return tp, None
            owner, tp = tp, info.annotation
        elif get_origin(tp) in (dict, list):
            owner, tp = None, get_args(tp)[-1]
        elif members:
            chosen = [m for m in members if _kind_of(m) == element]
            if not chosen:
                return None, None
            owner, tp = None, chosen[0]
        else:
            return None, None
    return owner, unwrap_type(tp)


def _yaml_reading(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, date):
        return "a date"
    return f"a {type(value).__name__}"


def _string_message(value: object, source: ScalarSource | None, secret: bool) -> str:
    if value is None:
        return "is empty: give it a value"
    if isinstance(value, list):
        return "must be a string, not a list"
    if isinstance(value, dict):
        return "must be a string, not a mapping"
    if source is None or not source.plain:
        return f"must be a string, not {_yaml_reading(value)}"
    if secret:
        return f"YAML reads it as {type(value).__name__}; write it as a string, in quotes"
    quoted = json.dumps(source.text, ensure_ascii=False)
    if str(value) == source.text:
        return f"write it as a string: {quoted}"
    return f"YAML reads {source.text} as {_yaml_reading(value)}; write it as a string: {quoted}"


def _names_in(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _generic_message(error: ErrorDetails, source: ScalarSource | None, secret: bool) -> str:
    """pydantic's message in the config's voice, with the value as typed when it helps."""
    message = error["msg"].removeprefix("Value error, ").replace(" after validation", "")
    numeric = error["type"].startswith(("int_", "float_", "bool_", "finite_", "greater", "less"))
    if numeric and source is not None and not secret:
        message += f" (got {source.shown()})"
    return re.sub(r"^(Input|List|Dictionary|String|Value) should", "must", message)


def _key_message(value: object, source: ScalarSource | None) -> str:
    if value is None:
        return "an empty key: give it a name"
    if source is None or not source.plain:
        return f"must be a string, not {_yaml_reading(value)}"
    quoted = json.dumps(source.text, ensure_ascii=False)
    if str(value) == source.text:
        return f"write it as a string: {quoted}"
    return f"YAML reads it as {_yaml_reading(value)}; write it as a string: {quoted}"


def _issue_for(
    error: ErrorDetails, data: object, smap: SourceMap, filename: str
) -> ConfigIssue | None:
    """The issue for one pydantic error, with the line its ``loc`` points at."""
    kind = error["type"]
    if kind == "config_reference":
        return None  # reported, with lines, by reference_problems() on the raw data
    where = _locate(tuple(error["loc"]), data)
    path, value = where.path, error.get("input")
    line = smap.line_of(path)

    if where.is_key:
        key_source = smap.keys.get(path)
        shown = key_source.shown() if key_source is not None else str(value)
        if kind == "string_type":
            message = _key_message(value, key_source)
        else:
            message = re.sub(r"^(Input|String) should", "must", error["msg"])
        return ConfigIssue(filename, line, _dotted(path[:-1], data), f"key {shown}: {message}")

    owner, annotation = _walk_model(where.tagged_loc)
    secret = annotation is SecretStr
    source = smap.scalars.get(path)
    field_path = where.shown

    if kind in ("extra_forbidden", "invalid_key") and owner is not None:
        unknown = where.tagged_loc[-1] if where.tagged_loc else value
        hint = did_you_mean(unknown, owner.model_fields)
        message = "unknown field" + (hint or f" (known fields: {', '.join(owner.model_fields)})")
    elif kind == "missing":
        if tuple(error["loc"]) == ("pbx", "ami", "secret"):
            message = _SECRET_MISSING
        else:
            message = "required field is missing"
    elif kind == "string_type":
        message = _string_message(value, source, secret)
    elif kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tag = str(ctx.get("tag", ""))
        expected = _names_in(str(ctx.get("expected_tags", "")))
        message = (
            f'unknown kind "{tag}"{did_you_mean(tag, expected)} (one of: {", ".join(expected)})'
        )
        field_path += ".kind"
        line = smap.line_of((*path, "kind"))
    elif kind == "union_tag_not_found":
        expected = [_kind_of(m) for m in _union_members(annotation)]
        message = f"missing kind (one of: {', '.join(expected)})"
    elif kind == "literal_error":
        expected = _names_in(str(error.get("ctx", {}).get("expected", "")))
        got = source.shown() if source is not None else repr(value)
        message = f"must be one of {', '.join(expected)}, not {got}{did_you_mean(value, expected)}"
    elif kind in ("dict_type", "model_type", "model_attributes_type", "list_type"):
        shape = (
            "a list (lines starting with -)"
            if kind == "list_type"
            else "a mapping (key: value lines)"
        )
        if value is None:
            message = f"is empty: it must be {shape}"
        else:
            message = f"must be {shape}, not {_shape_of(value)}"
    else:
        message = _generic_message(error, source, secret)
    return ConfigIssue(filename, line, field_path, message)


def _shape_of(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return _yaml_reading(value) if not isinstance(value, str) else f"the text {value!r}"


def _suspicious_numbers(
    smap: SourceMap, data: object, reported: set[DataPath], filename: str
) -> list[ConfigIssue]:
    """Numbers YAML 1.1 read in base 60 (``1:30``) or base 8 (``010``): never what ops meant."""
    issues = []
    for path, source in smap.scalars.items():
        if not source.plain or path in reported:
            continue
        if _SEXAGESIMAL.fullmatch(source.text):
            base = "base 60"
        elif _OCTAL.fullmatch(source.text):
            base = "octal"
        else:
            continue
        value = _value_at(data, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            issues.append(
                ConfigIssue(
                    filename,
                    source.line,
                    _dotted(path, data),
                    f"YAML reads {source.text} as the {base} number {value}; "
                    f'write {value} if that is meant, or "{source.text}" for text',
                )
            )
    return issues


def _value_at(data: object, path: DataPath) -> object:
    cur: Any = data
    for element in path:
        if isinstance(cur, dict):
            cur = cur.get(element, _ABSENT)
        elif isinstance(cur, list) and isinstance(element, int) and 0 <= element < len(cur):
            cur = cur[element]
        else:
            return _ABSENT
    return cur


# --------------------------------------------------------------------------- entry points


def _container(data: dict[object, object], keys: tuple[str, ...]) -> dict[object, object] | None:
    """The mapping at ``keys``, created where absent or empty; None if something else is there."""
    node = data
    for key in keys:
        child = node.get(key)
        if child is None:
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            return None
        node = child
    return node


def _fill_from_settings(
    data: dict[object, object], overrides: Mapping[tuple[str, ...], object]
) -> None:
    """Put env/secrets-file values where the file is silent; make sure pbx.ami exists.
    Optional sections (``mqtt``) stay off unless the file has them.

    With pbx.ami always present, a missing secret is reported at pbx.ami.secret with a
    message saying how to set it, rather than as a missing `pbx` section.
    """
    _container(data, ("pbx", "ami"))
    for path, value in overrides.items():
        if path[0] != "pbx" and not isinstance(data.get(path[0]), dict):
            continue  # a secret for a section the file does not have (mqtt, records)
        node = _container(data, path[:-1])
        if node is not None:
            node.setdefault(path[-1], value)


def _validate(
    text: str, filename: str, environ: Mapping[str, str] | None, base_dir: Path | None = None
) -> CallCenterConfig:
    issues: list[ConfigIssue] = []
    loader = LineLoader(text, filename)
    try:
        data = loader.load_document()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, line, "", f"not valid YAML: {problem}")]) from None
    finally:
        loader.dispose()
    issues += loader.issues
    smap = loader.source_map
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                *issues,
                ConfigIssue(
                    filename, 1, "", "the file must be a mapping of sections (pbx:, queues:, ...)"
                ),
            ]
        )
    # Top-level `x-...` keys are free for YAML anchors (`x-defaults: &defaults`), as in
    # docker-compose files; they are not config.
    for key in [k for k in data if isinstance(k, str) and k.startswith("x-")]:
        del data[key]
    settings, settings_issues = settings_and_issues(environ)
    issues += settings_issues
    _fill_from_settings(data, settings.config_overrides())

    config: CallCenterConfig | None = None
    reported: set[DataPath] = set()
    try:
        config = CallCenterConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            issue = _issue_for(error, data, smap, filename)
            if issue is not None:
                issues.append(issue)
                reported.add(_locate(tuple(error["loc"]), data).path)
    for problem in reference_problems(data, base_dir=base_dir):
        issues.append(
            ConfigIssue(
                filename, smap.line_of(problem.path), _dotted(problem.path, data), problem.message
            )
        )
        reported.add(problem.path)
    issues += _suspicious_numbers(smap, data, reported, filename)

    if issues or config is None:
        unique = list(dict.fromkeys(issues))
        unique.sort(key=lambda i: (i.file != filename, i.line is None, i.line or 0, i.field))
        raise ConfigError(unique)
    return config


def load_config_text(
    text: str,
    *,
    filename: str = "<config>",
    environ: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> CallCenterConfig:
    """Validate YAML ``text`` as if read from ``filename``; see :func:`load_config`.

    ``source`` (when given) is recorded as the config's file for resolving relative paths.
    """
    base_dir = Path(source).resolve().parent if source is not None else None
    config = _validate(text, filename, environ, base_dir)
    return config.with_source(source)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> CallCenterConfig:
    """Read, validate and return the config in ``path``.

    ``environ`` (default ``os.environ``) supplies ``CALLCENTER_*`` settings and secrets used
    where the file is silent. Raises :class:`~callcenter.errors.ConfigError` carrying every
    problem found, each printable as ``file:line: field.path: message``.
    """
    filename = os.fspath(path)
    try:
        text = Path(filename).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigIssue(filename, None, "", f"cannot read the file: {reason}")]
        ) from None
    config = load_config_text(text, filename=filename, environ=environ, source=Path(filename))
    log.debug(
        "config_loaded",
        path=filename,
        flows=len(config.flows),
        queues=len(config.queues),
        agents=len(config.agents),
    )
    return config


def check_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> list[ConfigIssue]:
    """Every problem in the config at ``path`` (empty when it is valid)."""
    try:
        load_config(path, environ=environ)
    except ConfigError as exc:
        return list(exc.issues)
    return []
