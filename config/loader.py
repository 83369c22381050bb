"""Reading the YAML configuration into :class:`~config.models.AppConfig`.

The file is parsed with ruamel.yaml's round-trip loader because it keeps the line and column
of every key and value (``.lc``); that is what lets every problem — YAML syntax, a missing
``${ENV}`` variable, a schema violation reported by pydantic — be shown as
``file:line:column`` with a hint. All problems are collected and raised as one
:class:`~config.errors.ConfigError`, so the admin fixes the file in one pass.

String values may refer to secrets kept outside the file: ``${NAME}`` is the environment
variable ``NAME``, ``${file:/path}`` is the content of a file (trailing line breaks removed,
relative paths against the config file's folder) and ``$${`` is a literal ``${``. Values that
came from a reference are never quoted in an error message, because they may be passwords.

Relative paths in the file (a CSV source's ``path``, a ``sqlite:///relative.db`` ledger, the
``logging.file``) are relative to the config file's folder, not to the daemon's working
directory.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from config.errors import ConfigError, ConfigProblem
from config.models import DUPLICATE_SOURCE_NAME, AppConfig, CsvSource, SourceConfig

DEFAULT_CONFIG_PATH = Path("clm-sync.yaml")
CONFIG_PATH_ENV = "CLM_SYNC_CONFIG"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_YAML_STR_TAG = "tag:yaml.org,2002:str"
_SQLITE_PREFIX = "sqlite:///"
# `$${` (literal), `${ref}`, or a `${` that is never closed — in this order of preference.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_CREATE_HINT = (
    "create it, e.g. copy config/example.yaml and edit it, or pass --config PATH or set "
    f"{CONFIG_PATH_ENV} to the file you mean"
)
_INDENT_HINT = (
    "indent with spaces only (never tabs): keys of the same mapping start in the same column, "
    "their children further right; quote values that contain ': ' or ' #'"
)
_REFERENCE_HINT = (
    "write ${NAME} for an environment variable, ${file:/path} for a file's content, "
    "or $${ for a literal ${"
)
_EXAMPLE_HINT = "see config/example.yaml for a valid value"
_HIDDEN_VALUE_NOTE = "the value comes from ${...} and is not shown"

_MAPPING = "a mapping (indented 'key: value' lines)"
# What a pydantic error type expects, in the words an admin editing YAML would use.
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list (one '- ' item per line)",
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "path_type": "a file or folder path",
}

Loc = tuple[str | int, ...]
Position = tuple[int, int]  # 0-based line and column, as ruamel records them


def find_config_path(explicit: Path | None) -> Path:
    """The config file to read: ``--config``, else ``$CLM_SYNC_CONFIG``, else the default."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_PATH_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read, interpolate and validate the config file; raise ConfigError with every problem.

    ``environ`` defaults to the process environment; tests pass their own.
    """
    text = _read_text(path)
    root = _parse(path, text)
    reader = _TreeReader(path, os.environ if environ is None else environ)
    data = reader.plain(root, (), (root.lc.line, root.lc.col))
    problems = list(reader.problems)
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as error:
        problems.extend(reader.translate(root, data, error))
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return _resolve_relative_paths(config, path.absolute().parent)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the config file for editors (VS Code YAML and the like)."""
    schema = AppConfig.model_json_schema()
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "title": "clm-sync configuration"}


def _problem(file: Path, position: Position | None, message: str, hint: str) -> ConfigProblem:
    if position is None:
        return ConfigProblem(file, None, None, message, hint)
    return ConfigProblem(file, position[0] + 1, position[1] + 1, message, hint)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problem = _problem(path, None, "the configuration file does not exist", _CREATE_HINT)
    except UnicodeDecodeError as error:
        problem = _problem(
            path, None, f"the file is not UTF-8 text (byte {error.start})", "save it as UTF-8"
        )
    except OSError as error:
        problem = _problem(
            path,
            None,
            f"cannot read the configuration file: {error.strerror or error}",
            "make it readable by the user the service runs as, or pass --config PATH or set "
            f"{CONFIG_PATH_ENV} to another file",
        )
    raise ConfigError([problem])


def _parse(path: Path, text: str) -> CommentedMap:
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        raise ConfigError([_syntax_problem(path, error)]) from None
    except YAMLError as error:  # reader errors (control characters) carry no line
        raise ConfigError([_problem(path, None, str(error), _INDENT_HINT)]) from None
    if root is None:
        hint = "write at least `ledger:` and `sources:`, e.g. copy config/example.yaml"
        raise ConfigError([_problem(path, None, "the file holds no settings", hint)])
    if not isinstance(root, CommentedMap):
        position = (root.lc.line, root.lc.col) if isinstance(root, CommentedSeq) else None
        raise ConfigError(
            [
                _problem(
                    path,
                    position,
                    "the top level must be a mapping of settings (ledger:, sources:, ...)",
                    "start the file with `ledger:` at column 1, as in config/example.yaml",
                )
            ]
        )
    return root


def _syntax_problem(path: Path, error: MarkedYAMLError) -> ConfigProblem:
    """A YAML parser error in words an admin recognises, at the parser's problem mark."""
    mark = error.problem_mark or error.context_mark
    position = (mark.line, mark.column) if mark is not None else None
    problem = error.problem or ""
    context = error.context or ""
    hint = _INDENT_HINT
    if isinstance(error, DuplicateKeyError):
        # ruamel's own text quotes both values; they need not be repeated here.
        key = re.search(r'duplicate key "(.*?)"', problem)
        message = f"the key {key.group(1) if key else ''!r} appears twice in the same mapping"
        hint = "keep only one of them"
    elif "'\\t'" in problem:
        message = "a tab character where YAML expects indentation or a value"
        hint = "replace the tab with spaces"
    elif context == "while scanning a quoted scalar" and error.context_mark is not None:
        opened = error.context_mark
        message = (
            f"the quote opened at line {opened.line + 1}, column {opened.column + 1} "
            "is never closed"
        )
        hint = "add the closing quote on the same value (write '' inside '...' for a quote)"
    elif problem == "mapping values are not allowed here":
        message = "unexpected ':' — a 'key: value' cannot start here (wrong indentation?)"
    elif problem.startswith("expected <block end>"):
        message = "this line is indented differently from the lines above it"
    else:
        message = f"{context}: {problem}" if context else problem
    return _problem(path, position, message, hint)


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a pydantic ``loc`` points in the YAML tree."""

    path: Loc  # the part of loc found in the tree, without union tags
    position: Position
    node: Any


class _TreeReader:
    """Turns the ruamel tree into plain data for pydantic and pydantic's errors into problems.

    It remembers which values came from ``${...}`` (``interpolated``) so their content is
    never echoed, and which references failed (``failed``) so the placeholder left in their
    place does not cause a second, confusing schema error.
    """

    def __init__(self, file: Path, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.interpolated: set[Loc] = set()
        self.failed: set[Loc] = set()

    def plain(self, node: Any, path: Loc, position: Position) -> Any:
        if isinstance(node, CommentedMap):
            return {
                str(key): self.plain(value, (*path, str(key)), _position(node, key, value=True))
                for key, value in node.items()
            }
        if isinstance(node, CommentedSeq):
            return [self.plain(item, (*path, i), node.lc.item(i)) for i, item in enumerate(node)]
        if isinstance(node, TaggedScalar):
            if node.tag.value == _YAML_STR_TAG:
                return self._interpolate(str(node.value), path, position)
            self.problems.append(
                _problem(
                    self.file,
                    position,
                    f"unsupported YAML tag {node.tag.value}",
                    f"remove the tag; {_REFERENCE_HINT}",
                )
            )
            self.failed.add(path)
            return None
        if isinstance(node, str):
            return self._interpolate(str(node), path, position)
        if isinstance(node, bool):
            return node
        if isinstance(node, int):  # ruamel's ScalarInt keeps formatting pydantic need not see
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node

    def _interpolate(self, text: str, path: Loc, position: Position) -> str:
        if "${" not in text:
            return text
        return _REFERENCE.sub(lambda match: self._resolve(match, path, position), text)

    def _resolve(self, match: re.Match[str], path: Loc, position: Position) -> str:
        if match.group(0) == "$${":
            return "${"
        self.interpolated.add(path)
        reference = match.group(1)
        if reference is None:
            return self._fail(path, position, "'${' without a closing '}'", _REFERENCE_HINT)
        if reference.startswith("file:"):
            return self._read_reference_file(reference.removeprefix("file:"), path, position)
        if not _ENV_NAME.match(reference):
            return self._fail(
                path, position, f"'${{{reference}}}' is not a valid reference", _REFERENCE_HINT
            )
        value = self.environ.get(reference)
        if value is None:
            return self._fail(
                path,
                position,
                f"environment variable {reference} is not set",
                f"export {reference} in the service's environment (systemd: Environment= or "
                "EnvironmentFile=) or use ${file:/path}",
            )
        return value

    def _read_reference_file(self, name: str, path: Loc, position: Position) -> str:
        if not name:
            return self._fail(path, position, "'${file:}' names no file", _REFERENCE_HINT)
        file = self.file.absolute().parent / name  # an absolute name replaces the folder
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            return self._fail(
                path,
                position,
                f"cannot read {file} for ${{file:{name}}}: {reason or error}",
                "create the file, readable by the user the service runs as, or fix the path "
                "(relative paths start at the config file's folder)",
            )

    def _fail(self, path: Loc, position: Position, message: str, hint: str) -> str:
        self.problems.append(_problem(self.file, position, message, hint))
        self.failed.add(path)
        return ""

    def translate(
        self, root: CommentedMap, data: Any, error: ValidationError
    ) -> list[ConfigProblem]:
        problems: list[ConfigProblem] = []
        for details in error.errors(include_url=False):
            if details["type"] == DUPLICATE_SOURCE_NAME:
                problems.append(self._duplicate_name(root, data, details))
                continue
            place = _locate(root, details["loc"], at_key=details["type"] == "extra_forbidden")
            if details["type"] == "union_tag_invalid" and isinstance(place.node, CommentedMap):
                node = place.node  # the error is on the source; the culprit is its `type`
                place = _Place((*place.path, "type"), _position(node, "type", value=True), None)
            if any(place.path[: len(failed)] == failed for failed in self.failed):
                continue  # the failed reference is already reported
            problems.append(self._schema_problem(details, place))
        return problems

    def _is_secret(self, path: Loc) -> bool:
        """Whether the value at ``path``, or anything inside it, came from ``${...}``."""
        return any(used[: len(path)] == path for used in self.interpolated)

    def _duplicate_name(
        self, root: CommentedMap, data: Any, details: ErrorDetails
    ) -> ConfigProblem:
        index = details.get("ctx", {})["index"]
        place = _locate(root, ("sources", index, "name"), at_key=False)
        name = data["sources"][index]["name"]
        first = next(i for i, source in enumerate(data["sources"]) if source["name"] == name)
        first_line = _locate(root, ("sources", first, "name"), at_key=False).position[0] + 1
        shown = "" if self._is_secret(place.path) else f" {name!r}"
        return _problem(
            self.file,
            place.position,
            f"another source above (line {first_line}) is already named{shown}",
            "give every source its own name; it becomes the `system` in the ledger",
        )

    def _schema_problem(self, details: ErrorDetails, place: _Place) -> ConfigProblem:
        kind = details["type"]
        loc = details["loc"]
        ctx = details.get("ctx", {})
        secret = self._is_secret(place.path)
        label = _label(place.path)
        value = details["input"]
        got = "" if secret or not _showable(value) else f", got {_show(value)}"
        field = _field_at(loc)
        key = str(loc[-1]) if loc else ""

        if kind == "extra_forbidden":
            valid = _field_names(loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1)
            parent = _label(place.path[:-1])
            message = f"unknown key {key!r}" + (f" in {parent}" if parent else "")
            hint = (
                f"did you mean {close[0]!r}?" if close else f"valid keys here: {', '.join(valid)}"
            )
        elif kind == "missing":
            message = f"missing key {key!r}" + (f" in {label}" if label else "")
            hint = _with_description(f"add `{key}:` here", field)
        elif kind == "union_tag_invalid":  # `place` is the source's `type` (see translate)
            tag = value.get("type")
            shown = "" if secret or not _showable(tag) else f" {_show(tag)}"
            message = f"{label}: unknown source type{shown}"
            hint = f"known types: {', '.join(_source_types())}"
        elif kind == "union_tag_not_found":
            message = f"missing key 'type' in {label}"
            hint = f"add `type:` with one of: {', '.join(_source_types())}"
        elif kind in _EXPECTED:
            message = f"{label}: expected {_EXPECTED[kind]}{got}"
            keys = _field_names(loc)
            if keys:
                lead = f"indent its keys below it ({', '.join(keys)})"
            else:
                lead = _example(f"write {_EXPECTED[kind]}", key, field)
            hint = _with_description(lead, field)
        elif kind == "literal_error":
            message = f"{label}: expected one of {ctx['expected']}{got}"
            hint = "use one of these values, spelled exactly as shown"
        elif kind == "string_pattern_mismatch":
            message = f"{label}: the value does not have the required form{got}"
            hint = _with_description(f"it must match {ctx['pattern']}", field)
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            bound = {
                "greater_than_equal": f"at least {ctx.get('ge')}",
                "less_than_equal": f"at most {ctx.get('le')}",
                "greater_than": f"more than {ctx.get('gt')}",
                "less_than": f"less than {ctx.get('lt')}",
            }[kind]
            message = f"{label}: must be {bound}{got}"
            hint = _with_description(_example(f"use a number that is {bound}", key, field), field)
        elif kind in ("string_too_short", "string_too_long"):
            size = (
                f"at least {ctx['min_length']}"
                if kind == "string_too_short"
                else f"at most {ctx['max_length']}"
            )
            message = f"{label}: must be {size} character(s) long{got}"
            hint = _with_description(_example(f"use {size} character(s)", key, field), field)
        elif kind == "too_short":
            message = f"{label}: needs at least {ctx['min_length']} item(s)"
            hint = f"add them as '- ' items; {_EXAMPLE_HINT}"
        elif secret:
            message = f"{label}: the value is not valid here ({_HIDDEN_VALUE_NOTE})"
            hint = _with_description("check what the variable or file provides", field)
        elif kind in ("value_error", "assertion_error"):
            # Our validators write "what is wrong; how to fix it".
            text = str(ctx.get("error", details["msg"]))
            what, _, how = text.partition("; ")
            message = f"{label}: {what}" if label else what
            hint = how or _with_description(_EXAMPLE_HINT, field)
        else:
            message = f"{label}: {details['msg']}" if label else details["msg"]
            hint = _with_description(_EXAMPLE_HINT, field)
        return _problem(self.file, place.position, message, hint)


def _locate(root: CommentedMap, loc: Loc, *, at_key: bool) -> _Place:
    """Follow pydantic's ``loc`` through the YAML tree as far as it exists.

    The last step points at the value (where a wrong value is), or at the key when ``at_key``
    (unknown keys) or when the value is a nested block. A key that does not exist (a missing
    one) leaves the place at its parent. Tags of the source union (``sources.0.csv.path``) are
    not keys in the file and are skipped.
    """
    node: Any = root
    position: Position = (root.lc.line, root.lc.col)
    path: Loc = ()
    for step, element in enumerate(loc):
        if isinstance(node, CommentedMap) and element in node:
            child = node[element]
            last = step == len(loc) - 1
            nested = isinstance(child, CommentedMap | CommentedSeq)
            position = _position(node, element, value=not ((last and at_key) or nested))
        elif isinstance(node, CommentedSeq) and isinstance(element, int) and element < len(node):
            child = node[element]
            position = node.lc.item(element)
        elif isinstance(node, CommentedMap) and node.get("type") == element:
            continue
        else:
            break
        node = child
        path = (*path, element)
    return _Place(path, position, node)


def _position(node: CommentedMap, key: Any, *, value: bool) -> Position:
    """Where ``key`` or its value is written; a key merged in by ``<<:`` is at the mapping."""
    if key not in node.lc.data:
        return (node.lc.line, node.lc.col)
    position: Position = node.lc.value(key) if value else node.lc.key(key)
    return position


def _label(path: Loc) -> str:
    """``("sources", 0, "page_size")`` as ``sources[0].page_size``."""
    label = ""
    for element in path:
        label += f"[{element}]" if isinstance(element, int) else f".{element}"
    return label.removeprefix(".")


def _showable(value: object) -> bool:
    return isinstance(value, str | int | float) and len(str(value)) <= 80


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def _example(lead: str, key: str, field: FieldInfo | None) -> str:
    """``lead`` plus ``e.g. `key: default``` when the field has a simple default."""
    default = None if field is None else field.default
    if default is PydanticUndefined or not isinstance(default, str | int) or default == "":
        return lead
    return f"{lead}, e.g. `{key}: {json.dumps(default)}`"


def _with_description(hint: str, field: FieldInfo | None) -> str:
    if field is None or not field.description:
        return hint
    return f"{hint} — {field.description}"


def _members(annotation: Any) -> list[Any]:
    """The concrete types an annotation allows: Annotated and unions unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    """The ``type:`` values that select ``model`` in the source union."""
    field = model.model_fields.get("type")
    return get_args(field.annotation) if field is not None else ()


def _source_types() -> list[str]:
    return sorted(tag for member in _members(SourceConfig) for tag in _tags(member))


def _types_at(loc: Loc) -> list[Any]:
    """The types pydantic validated the value at ``loc`` against."""
    candidates: list[Any] = [AppConfig]
    for element in loc:
        following: list[Any] = []
        for candidate in (m for c in candidates for m in _members(c)):
            origin = get_origin(candidate)
            if _is_model(candidate):
                if isinstance(element, str) and element in candidate.model_fields:
                    following.append(candidate.model_fields[element].annotation)
                elif element in _tags(candidate):
                    following.append(candidate)
            elif origin is list and isinstance(element, int):
                following.append(get_args(candidate)[0])
            elif origin is dict and isinstance(element, str):
                following.append(get_args(candidate)[1])
        candidates = following
    return [member for candidate in candidates for member in _members(candidate)]


def _field_names(loc: Loc) -> list[str]:
    """The keys allowed in the mapping at ``loc``."""
    return sorted(
        {name for model in _types_at(loc) if _is_model(model) for name in model.model_fields}
    )


def _field_at(loc: Loc) -> FieldInfo | None:
    if not loc or not isinstance(loc[-1], str):
        return None
    for model in _types_at(loc[:-1]):
        if _is_model(model) and loc[-1] in model.model_fields:
            field: FieldInfo = model.model_fields[loc[-1]]
            return field
    return None


def _resolve_relative_paths(config: AppConfig, base: Path) -> AppConfig:
    """Make CSV folders, a SQLite file and the log file relative to the config's folder absolute."""
    sources = [
        source.model_copy(update={"path": base / source.path})
        if isinstance(source, CsvSource) and not source.path.is_absolute()
        else source
        for source in config.sources
    ]
    logging = config.logging
    if logging.file is not None and not logging.file.is_absolute():
        logging = logging.model_copy(update={"file": base / logging.file})
    return config.model_copy(
        update={
            "sources": sources,
            "ledger": _absolute_sqlite(config.ledger, base),
            "logging": logging,
        }
    )


def _absolute_sqlite(url: str, base: Path) -> str:
    """``sqlite:///ledger.db`` to ``sqlite:////base/ledger.db``; other URLs unchanged."""
    if not url.startswith(_SQLITE_PREFIX):
        return url
    file = url.removeprefix(_SQLITE_PREFIX)
    if not file or file.startswith(("/", ":memory:")):
        return url
    return f"{_SQLITE_PREFIX}{base / file}"
