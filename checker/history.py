"""Histories on disk: streaming readers and writers, format detection, and pairing.

Formats (conventions §1):

- ``jsonl`` — raftlab's native ``history.jsonl``: one JSON object per line, written as the
  run goes (:class:`HistoryWriter` flushes every op, so a crash leaves a usable prefix).
- ``edn`` — Jepsen's ``history.edn`` (one map per line, as Jepsen writes it) or a file
  holding one EDN vector of maps (as Knossos' test data does). Tagged literals
  (``#jepsen.history.Op{...}``, ``#object[...]``, any unknown tag) and unknown keys are
  tolerated: a tagged map is read as the map, any other tagged value as its printed text,
  and unknown keys are kept in :attr:`Op.extra`. Keywords and symbols become strings.
- ``jepsen-log`` and ``porcupine-kv`` — the two formats of Porcupine's test corpus,
  read by :mod:`checker.importers`.

Every malformed input raises :class:`HistoryError`, which names the file, the line and
what was expected there; a reader never lets a ``KeyError`` or a parser's traceback out.

:func:`pair_operations` matches each invoke with its completion on the same process, the
way Knossos and Porcupine do before searching: an invoke still outstanding at the end of
the history is an ``info`` (it may or may not have happened), nemesis operations are set
aside, and a second invoke while one is outstanding on the same process is an input error
(Knossos' "one outstanding operation per process").
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import os
import re
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from checker.op import NEMESIS, OP_TYPES, Op


class _LazyEdnFormat:
    """edn_format, imported on first use: `raftlab check` of a JSONL history or of an EDN
    history the fast reader takes never pays for it (its import costs tens of ms)."""

    def __getattr__(self, name: str) -> Any:
        import edn_format as module

        globals()["edn_format"] = module
        return getattr(module, name)


edn_format: Any = _LazyEdnFormat()

__all__ = [
    "FORMATS",
    "HistoryError",
    "HistoryWriter",
    "Op",
    "OperationPair",
    "PairedHistory",
    "detect_format",
    "edn_literal",
    "iter_edn",
    "iter_jsonl",
    "op_from_mapping",
    "pair_operations",
    "parse_literal",
    "read_edn",
    "read_history",
    "read_jepsen_log",
    "read_jsonl",
    "read_porcupine_kv",
    "to_jsonable",
    "write_edn",
    "write_jsonl",
    "write_txt",
]

FORMATS = ("jsonl", "edn", "jepsen-log", "porcupine-kv")

# The keys of conventions §1; anything else read from a file goes to Op.extra.
_KNOWN_KEYS = frozenset({"index", "time", "type", "process", "f", "value", "error", "node"})
_OP_TYPE_SET = frozenset(OP_TYPES)


class HistoryError(ValueError):
    """Malformed history input: names the file, the line (when known) and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = self.path or "<history>"
        if line is not None:
            where = f"{where}, line {line}"
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- values


def to_jsonable(value: Any) -> Any:
    """A JSON-encodable copy of ``value``: sets become sorted lists, tuples lists, Ops maps.

    Used by the JSONL writer's fallback and by anything writing ``results.json`` (model
    states and explanations may hold tuples, frozensets and Ops).
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Op):
        return to_jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {_json_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [to_jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    edn_module = sys.modules.get("edn_format")  # no keyword exists before it is imported
    if edn_module is not None and isinstance(value, edn_module.Keyword | edn_module.Symbol):
        return value.name
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _json_key(key: Any) -> str | int | float | bool | None:
    if key is None or isinstance(key, str | int | float | bool):
        return key
    return json.dumps(to_jsonable(key), separators=(",", ":"), ensure_ascii=False)


def _json_default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:  # pragma: no cover - to_jsonable always converts the rest to str
        raise TypeError(f"cannot encode {type(value).__name__}")
    return converted


def _dumps_json(data: Mapping[str, Any]) -> str:
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except TypeError:  # e.g. a map with tuple keys inside a value
        return json.dumps(to_jsonable(data), ensure_ascii=False, separators=(",", ":"))


def _from_edn(value: Any) -> Any:
    """Plain Python data from edn_format's types: keywords and symbols become strings.

    EDN sets become lists (sorted when their items compare) so that a history read from
    EDN and the same history read from JSONL give equal Ops.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, edn_format.Keyword | edn_format.Symbol):
        return value.name
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            key = _from_edn(key)
            if isinstance(key, list):
                key = _freeze(key)
            elif isinstance(key, dict):
                key = _freeze(key)
            out[key] = _from_edn(item)
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes):  # ImmutableList too
        return [_from_edn(v) for v in value]
    if isinstance(value, frozenset | set):
        items = [_from_edn(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, edn_format.Char):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((k, _freeze(v)) for k, v in value.items()), key=repr))
    return value


_KEYWORD_NAME = re.compile(r"[A-Za-z*+!_?<>=\-][A-Za-z0-9*+!_?<>=\-.]*(/[A-Za-z0-9*+!_?<>=\-.]+)?")


def _keyword_if_possible(text: str) -> Any:
    return (
        edn_format.Keyword(text)
        if _KEYWORD_NAME.fullmatch(text) and text not in ("nil", "true", "false")
        else text
    )


def _to_edn(value: Any, *, keyword_keys: bool = True) -> Any:
    """edn_format data for a Python value (string map keys become keywords where valid)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Op):
        return _op_to_edn_map(value)
    if isinstance(value, Mapping):
        return {
            (
                _keyword_if_possible(k) if keyword_keys and isinstance(k, str) else _to_edn(k)
            ): _to_edn(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_to_edn(v) for v in value]
    if isinstance(value, set | frozenset):
        return frozenset(_to_edn(v) for v in value)
    return _to_edn(to_jsonable(value))


def edn_literal(value: Any) -> str:
    """The EDN text of a Python value (``None`` → ``nil``, string keys → keywords)."""
    return edn_format.dumps(_to_edn(value))


def parse_literal(text: str) -> Any:
    """A JSON or EDN literal (``0``, ``[1, 2]``, ``{:x 0 :y 0}``, ``nil``) as Python data.

    JSON is tried first; then EDN. Raises ``ValueError`` naming what was expected.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("expected a JSON or EDN literal, got an empty string")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    try:
        values = _edn_loads_all(stripped)
    except (edn_format.EDNDecodeError, NotImplementedError, ValueError, TypeError, IndexError) as error:
        raise ValueError(f"expected a JSON or EDN literal, got {text!r} ({error})") from None
    if len(values) != 1:
        raise ValueError(f"expected one JSON or EDN literal, got {len(values)} in {text!r}")
    return _from_edn(values[0])


# --------------------------------------------------------------------------- Op from a map


def _type_name(value: Any) -> str:
    if value is None:
        return "nil"
    return type(value).__name__


def op_from_mapping(
    data: Any,
    *,
    position: int,
    path: str | os.PathLike[str] | None = None,
    line: int | None = None,
) -> Op:
    """Build an :class:`Op` from a decoded map, checking every key of conventions §1.

    ``type``, ``process`` and ``f`` are required. ``index`` defaults to ``position`` (the
    op's place in the file) and ``time`` to the index, for Jepsen histories that carry
    neither; unknown keys are kept in ``extra``.
    """

    # The usual op, checked in a few type tests: a dict of known keys only, plain types.
    # Whatever this accepts the checks below accept too, and build the same Op from.
    if type(data) is dict and data.keys() <= _KNOWN_KEYS:
        op_type = data.get("type")
        process = data.get("process")
        f = data.get("f")
        index = data.get("index", position)
        time = data.get("time", index)
        if (
            type(op_type) is str
            and op_type in _OP_TYPE_SET
            and (type(process) is int or type(process) is str)
            and type(f) is str
            and f
            and type(index) is int
            and index >= 0
            and type(time) is int
            and data.get("node") is None
        ):
            return Op(index, time, op_type, process, f, data.get("value"), data.get("error"))

    def fail(message: str) -> HistoryError:
        return HistoryError(message, path=path, line=line)

    if not isinstance(data, Mapping):
        raise fail(f"expected an operation map, got {_type_name(data)} {_short(data)}")
    for required in ("type", "process", "f"):
        if required not in data:
            raise fail(
                f"expected a {required!r} key in the operation, got keys {sorted(map(str, data))}"
            )
    op_type = data["type"]
    if op_type not in OP_TYPES:
        raise fail(f"expected 'type' to be one of {', '.join(OP_TYPES)}, got {_short(op_type)}")
    process = data["process"]
    if isinstance(process, bool) or not isinstance(process, int | str):
        raise fail(
            f"expected 'process' to be an integer or \"nemesis\", got {_type_name(process)} {_short(process)}"
        )
    f = data["f"]
    if not isinstance(f, str) or not f:
        raise fail(f"expected 'f' to be a non-empty name, got {_type_name(f)} {_short(f)}")
    index = data.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise fail(f"expected 'index' to be a non-negative integer, got {_short(index)}")
    time = data.get("time", index)
    if isinstance(time, float) and time == time and abs(time) != float("inf"):
        time = int(time)
    if isinstance(time, bool) or not isinstance(time, int):
        raise fail(f"expected 'time' to be an integer (nanoseconds), got {_short(time)}")
    node = data.get("node")
    if node is not None and not isinstance(node, str | int):
        raise fail(f"expected 'node' to be a node name, got {_type_name(node)} {_short(node)}")
    extra = {str(k): v for k, v in data.items() if k not in _KNOWN_KEYS}
    return Op(
        index=index,
        time=time,
        type=op_type,
        process=process,
        f=f,
        value=data.get("value"),
        error=data.get("error"),
        node=None if node is None else str(node),
        extra=extra,
    )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- JSON Lines


def iter_jsonl(path: str | os.PathLike[str], *, allow_torn_tail: bool = False) -> Iterator[Op]:
    """Stream the ops of a ``history.jsonl``, one per non-blank line.

    A file with no op is an error (a wrong file is likelier than an empty run). With
    ``allow_torn_tail`` — reading what a crashed run left — a last line that is cut short
    (no final newline and not valid JSON) is dropped, and an empty file gives no ops.
    """
    position = 0
    with _open_text(path) as stream:
        previous: tuple[int, str] | None = None
        line_number = 0
        try:
            for line_number, text in enumerate(stream, start=1):  # noqa: B007 - used after
                if previous is not None:
                    yield _jsonl_op(path, *previous, position=position)
                    position += 1
                    previous = None
                if text.strip():
                    previous = (line_number, text)
        except UnicodeDecodeError:
            raise HistoryError(
                "expected UTF-8 text, got undecodable bytes", path=path, line=line_number + 1
            ) from None
    if previous is not None:
        line_number, text = previous
        torn = False
        if allow_torn_tail and not text.endswith("\n"):
            try:
                json.loads(text)
            except ValueError:
                torn = True
        if not torn:
            yield _jsonl_op(path, line_number, text, position=position)
            position += 1
    if position == 0 and not allow_torn_tail:
        raise HistoryError("expected at least one operation, got an empty history", path=path)


def _jsonl_op(path: str | os.PathLike[str], line_number: int, text: str, *, position: int) -> Op:
    try:
        data = json.loads(text)
    except ValueError as error:
        hint = "" if text.endswith("\n") else " (the line is cut short: did the writer crash?)"
        raise HistoryError(
            f"expected one JSON object per line, got invalid JSON: {error.args[0]}{hint}",
            path=path,
            line=line_number,
        ) from None
    return op_from_mapping(data, position=position, path=path, line=line_number)


def read_jsonl(path: str | os.PathLike[str], *, allow_torn_tail: bool = False) -> list[Op]:
    """All ops of a ``history.jsonl`` (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path, allow_torn_tail=allow_torn_tail))


class HistoryWriter:
    """Appends ops to a ``history.jsonl``, one line each, flushed as it goes.

    Each op is written with a single ``write`` of a whole line and flushed to the OS, so a
    crash of the writing process leaves every earlier op intact and at most one torn last
    line. ``fsync=True`` also forces each line to disk (survives a power loss; slower).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, append: bool = True, fsync: bool = False
    ) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._stream: IO[str] | None = open(  # noqa: SIM115 - closed by close()
            self.path, "a" if append else "w", encoding="utf-8", newline="\n"
        )
        self.count = 0

    def write(self, op: Op | Mapping[str, Any]) -> None:
        if self._stream is None:
            raise ValueError(f"{self.path}: history writer is closed")
        data = op.to_dict() if isinstance(op, Op) else op
        self._stream.write(_dumps_json(data) + "\n")
        self._stream.flush()
        if self._fsync:
            os.fsync(self._stream.fileno())
        self.count += 1

    def flush(self) -> None:
        """Every write is already flushed; with ``fsync`` this is where callers may force it."""
        if self._stream is not None:
            self._stream.flush()

    def write_all(self, ops: Iterable[Op | Mapping[str, Any]]) -> None:
        for op in ops:
            self.write(op)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_jsonl(path: str | os.PathLike[str], ops: Iterable[Op | Mapping[str, Any]]) -> None:
    """Write (replacing) a ``history.jsonl``."""
    with HistoryWriter(path, append=False) as writer:
        writer.write_all(ops)


# --------------------------------------------------------------------------- EDN

# One token of EDN, enough to find where each top-level form starts and ends; the forms
# themselves are parsed by edn_format. Order matters: strings and char literals first, so
# that brackets inside them are not counted.
_EDN_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"?)
  | (?P<comment>;[^\n]*)
  | (?P<char>\\(?:newline|space|tab|return|formfeed|backspace|u[0-9A-Fa-f]{4}|.))
  | (?P<open>\#\{|[\[{(])
  | (?P<close>[\]})])
  | (?P<prefix>\#_|\#[^\s,\[\]{}()";\\]+)
  | (?P<atom>[^\s,\[\]{}()";\\\#][^\s,\[\]{}()";]*|\#)
  | (?P<space>[\s,]+)
    """,
    re.VERBOSE | re.DOTALL,
)

_CLOSER_FOR = {"[": "]", "{": "}", "(": ")", "#{": "}"}
_EDN_BATCH = 400  # forms parsed per edn_format call: one call costs ~10 ms of set-up


@dataclass(slots=True)
class _Form:
    start: int
    end: int
    line: int


class _LineCounter:
    """Maps offsets in a text to 1-based line numbers (offsets are asked in order)."""

    __slots__ = ("_text", "_offset", "_line")

    def __init__(self, text: str, line: int = 1, offset: int = 0) -> None:
        self._text = text
        self._offset = offset
        self._line = line

    def line_at(self, offset: int) -> int:
        if offset > self._offset:
            self._line += self._text.count("\n", self._offset, offset)
            self._offset = offset
        return self._line


def _scan_forms(text: str, start: int, end: int, first_line: int, path: Any) -> list[_Form]:
    """Top-level forms of ``text[start:end]``, with their first line; bracket errors raise."""
    forms: list[_Form] = []
    lines = _LineCounter(text, first_line, start)
    stack: list[tuple[str, int]] = []  # open brackets and their offsets
    form_start: int | None = None
    position = start
    while position < end:
        match = _EDN_TOKEN.match(text, position, end)
        if match is None:  # pragma: no cover - the atom alternative matches any other char
            raise HistoryError(
                "expected EDN, got an unreadable character", path=path, line=lines.line_at(position)
            )
        kind = match.lastgroup
        token_start, position = match.start(), match.end()
        if kind in ("space", "comment"):
            continue
        if kind == "string" and (
            len(match.group()) < 2 or not match.group().endswith('"') or _escaped_end(match.group())
        ):
            raise HistoryError(
                "expected a closing '\"' for this string, got the end of the input",
                path=path,
                line=lines.line_at(token_start),
            )
        if form_start is None:
            form_start = token_start
        if kind == "open":
            stack.append((match.group(), token_start))
            continue
        if kind == "close":
            if not stack:
                raise HistoryError(
                    f"expected a new form, got an unmatched {match.group()!r}",
                    path=path,
                    line=lines.line_at(token_start),
                )
            opener, _ = stack.pop()
            if _CLOSER_FOR[opener] != match.group():
                raise HistoryError(
                    f"expected {_CLOSER_FOR[opener]!r} to close {opener!r}, got {match.group()!r}",
                    path=path,
                    line=lines.line_at(token_start),
                )
        if kind == "prefix":  # a tag or #_ applies to the next form: keep collecting
            continue
        if not stack:
            forms.append(_Form(form_start, position, lines.line_at(form_start)))
            form_start = None
    if stack:
        opener, offset = stack[-1]
        raise HistoryError(
            f"expected {_CLOSER_FOR[opener]!r} to close the {opener!r} opened here, got the end of the input",
            path=path,
            line=lines.line_at(offset),
        )
    if form_start is not None:
        raise HistoryError(
            "expected a form after this tag, got the end of the input",
            path=path,
            line=lines.line_at(form_start),
        )
    return forms


def _escaped_end(token: str) -> bool:
    # A string token like "abc\" ends in an escaped quote: it is not closed.
    backslashes = len(token) - 1 - len(token[:-1].rstrip("\\"))
    return backslashes % 2 == 1


def _tag_handler(tag: str) -> Any:
    def handle(element: Any) -> Any:
        if isinstance(element, Mapping):  # a record such as #jepsen.history.Op{...}: its map
            return element
        try:
            return f"#{tag} {edn_format.dumps(element)}"
        except Exception:  # noqa: BLE001 - a printable stand-in is all we need
            return f"#{tag} {element!r}"

    return handle


_UNKNOWN_TAG = re.compile(r"handle tag ImmutableDict\((.+)\)$")


def _edn_loads_all(text: str) -> list[Any]:
    """edn_format.loads_all, registering a lenient handler for each unknown tag it meets."""
    for _ in range(256):
        try:
            return list(edn_format.loads_all(text, write_ply_tables=False))
        except NotImplementedError as error:
            match = _UNKNOWN_TAG.search(str(error))
            if match is None:
                raise
            edn_format.add_tag(match.group(1), _tag_handler(match.group(1)))
    raise ValueError("too many distinct unknown tags")


def _parse_forms(text: str, forms: list[_Form], path: Any) -> Iterator[tuple[_Form, Any]]:
    """Parse forms in batches; a batch that fails is split until the bad form is found.

    Each form is wrapped in its own vector so that a discarded form (``#_ x``) shows up as
    an empty vector instead of shifting the others.
    """
    pending = [forms[i : i + _EDN_BATCH] for i in range(0, len(forms), _EDN_BATCH)]
    pending.reverse()
    while pending:
        batch = pending.pop()
        source = "[" + " ".join("[" + text[form.start : form.end] + "]" for form in batch) + "]"
        try:
            values = _edn_loads_all(source)
            if len(values) != 1 or len(values[0]) != len(batch):
                raise edn_format.EDNDecodeError("form count mismatch")
        except (edn_format.EDNDecodeError, NotImplementedError, ValueError, TypeError, IndexError) as error:
            if len(batch) == 1:
                message = str(error) or type(error).__name__
                raise HistoryError(
                    f"expected an EDN form, got a syntax error ({message})",
                    path=path,
                    line=batch[0].line,
                ) from None
            middle = len(batch) // 2
            pending.append(batch[middle:])
            pending.append(batch[:middle])
            continue
        for form, wrapped in zip(batch, values[0], strict=True):
            if len(wrapped) == 1:
                yield form, wrapped[0]
            elif len(wrapped) > 1:
                raise HistoryError("expected one form, got several", path=path, line=form.line)


# The fast reader: Jepsen writes one flat-ish op map per line, made of keywords, integers,
# floats, strings without escapes, nil, true, false, vectors, lists and maps. A line made
# of exactly those tokens, forming exactly one map, is built here directly; anything else
# in the file (a set, a tag, a char, a symbol, a ratio, an escape, a comment, a form over
# several lines, a syntax error) sends the whole file to the general reader below, which
# gives the same values (tests/checker/test_history_fast.py compares the two) and the
# errors with their lines. Atoms must end at a delimiter, so "1.5x" or ":a#b" fall back.
_FAST_EDN_TOKEN = re.compile(
    r"""[\s,]*(?:
        ([{}\[\]()])
      | (?::([A-Za-z*+!_?<>=\-][A-Za-z0-9*+!_?<>=\-.]*)
        |(-?(?:0|[1-9][0-9]*))
        |(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+))
        |(nil|true|false)
        |"([^"\\]*)"
        )(?=[\s,{}\[\]()]|$)
    )""",
    re.VERBOSE,
)
_FAST_ATOMS = {"nil": None, "true": True, "false": False}
# The commonest line of all, a map of keyword keys to atoms or flat vectors of atoms, is
# recognised whole by one regular expression (in C) and converted entry by entry.
_ATOM = (
    r""":[A-Za-z*+!_?<>=\-][A-Za-z0-9*+!_?<>=\-.]*"""
    r"""|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)?"""
    r'|nil|true|false|"[^"\\]*"'
)
_END = r"(?=[\s,\]}])"
_FLAT_VALUE = rf"(?:{_ATOM}){_END}|\[(?:[\s,]*(?:{_ATOM}){_END})*[\s,]*\]"
_FLAT_ENTRY = (
    rf"[\s,]*:([A-Za-z*+!_?<>=\-][A-Za-z0-9*+!_?<>=\-.]*)[\s,]+({_FLAT_VALUE})"
)
_FLAT_MAP = re.compile(rf"\{{(?:{_FLAT_ENTRY})*[\s,]*\}}")
_FLAT_ENTRIES = re.compile(_FLAT_ENTRY)
_FLAT_ATOMS = re.compile(rf"(?:{_ATOM}){_END}")


def _flat_atom(text: str) -> Any:
    """The value of one atom the flat map expression matched (so well-formed)."""
    first = text[0]
    if first == ":":
        return text[1:]
    if first == '"':
        return text[1:-1]
    if first == "n" or first == "t" or first == "f":
        return _FAST_ATOMS[text]
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def _flat_edn_map(line: str) -> dict[str, Any] | None:
    """A flat op map (keyword keys, atoms or vectors of atoms), or None if ``line`` is not one."""
    if _FLAT_MAP.fullmatch(line) is None:
        return None
    data: dict[str, Any] = {}
    entries = _FLAT_ENTRIES.findall(line)
    for key, text in entries:
        if text[0] == "[":
            data[key] = [_flat_atom(atom) for atom in _FLAT_ATOMS.findall(text)]
        else:
            data[key] = _flat_atom(text)
    if len(data) != len(entries):
        return None  # a repeated key: the general reader decides
    return data
_CLOSERS = {"}": "{", "]": "[", ")": "("}


def _fast_edn_map(line: str) -> dict[Any, Any] | None:
    """The op map on ``line`` (stripped), or None when the fast reader does not know it."""
    if not line.startswith("{"):
        return None
    stack: list[tuple[str, list[Any]]] = []
    items: list[Any] = []
    result: Any = _NOTHING
    position = 0
    end = len(line)
    match_at = _FAST_EDN_TOKEN.match
    while position < end:
        match = match_at(line, position)
        if match is None or result is not _NOTHING:
            return None
        position = match.end()
        bracket, keyword, integer, real, atom, string = match.groups()
        if bracket is not None:
            if bracket in "{[(":
                stack.append((bracket, items))
                items = []
                continue
            if not stack:
                return None
            opener, outer = stack.pop()
            if _CLOSERS[bracket] != opener:
                return None
            if opener == "{":
                if len(items) % 2:
                    return None
                value: Any = {}
                for key, item in zip(items[::2], items[1::2], strict=True):
                    if isinstance(key, list | dict):
                        key = _freeze(key)
                    value[key] = item
                if len(value) * 2 != len(items):
                    return None  # a repeated key: the general reader decides
            else:
                value = items
            items = outer
            if not stack:
                result = value
                continue
        elif keyword is not None:
            value = keyword
        elif integer is not None:
            value = int(integer)
        elif real is not None:
            value = float(real)
        elif atom is not None:
            value = _FAST_ATOMS[atom]
        else:
            value = string
        if not stack:
            return None
        items.append(value)
    if stack or result is _NOTHING:
        return None
    return result


_NOTHING = object()


def _iter_edn_fast(path: str | os.PathLike[str]) -> list[Op] | None:
    """All ops of an EDN history when every line is one op map the fast reader knows.

    Reads line by line (the text is never held whole); None sends the caller to the
    general reader. A history written as one vector (``[`` on the first line, ``]`` on
    the last) is read too.
    """
    ops: list[Op] = []
    append = ops.append
    opened = ""  # "[" or "(" when the history is one vector or list
    closed = False
    started = False
    with _open_text(path) as stream:
        try:
            for line_number, text in enumerate(stream, start=1):
                line = text.strip()
                if not line:
                    continue
                if closed:
                    return None  # something after the closing bracket
                if not started:
                    started = True
                    if line[0] in "[(":
                        opened = line[0]
                        line = line[1:].lstrip()
                if opened and line and line[-1] == _CLOSE_OF[opened]:
                    closed = True
                    line = line[:-1].rstrip()
                if not line:
                    continue
                data = _flat_edn_map(line)
                if data is None:
                    data = _fast_edn_map(line)
                    if data is None:
                        return None
                append(op_from_mapping(data, position=len(ops), path=path, line=line_number))
        except (UnicodeDecodeError, HistoryError):
            return None  # the general reader says it, with the same words
    if opened and not closed:
        return None
    return ops if ops else None


_CLOSE_OF = {"[": "]", "(": ")"}


def iter_edn(path: str | os.PathLike[str]) -> Iterator[Op]:
    """Stream the ops of a Jepsen EDN history (one map per line, or one vector of maps).

    The fast reader (:func:`_iter_edn_fast`) takes the usual shape of a Jepsen history;
    anything else goes to the general reader (edn_format), form by form.
    """
    fast = _iter_edn_fast(path)
    if fast is not None:
        yield from fast
        return
    yield from _iter_edn_general(path)


def _iter_edn_general(path: str | os.PathLike[str]) -> Iterator[Op]:
    """The general EDN reader: every form through edn_format."""
    with _open_text(path) as stream:
        try:
            text = stream.read()
        except UnicodeDecodeError as error:
            raise HistoryError(
                f"expected UTF-8 text, got undecodable bytes at offset {error.start}", path=path
            ) from None
    forms = _scan_forms(text, 0, len(text), 1, path)
    if not forms:
        raise HistoryError("expected EDN operation maps, got an empty file", path=path)
    if len(forms) == 1 and text[forms[0].start] in "[(":
        whole = forms[0]
        forms = _scan_forms(text, whole.start + 1, whole.end - 1, whole.line, path)
    for position, (form, value) in enumerate(_parse_forms(text, forms, path)):
        data = _from_edn(value)
        yield op_from_mapping(data, position=position, path=path, line=form.line)


def read_edn(path: str | os.PathLike[str]) -> list[Op]:
    """All ops of a Jepsen EDN history (see :func:`iter_edn`)."""
    return list(iter_edn(path))


_EDN_KEY_ORDER = ("index", "type", "f", "process", "value", "time")


def _op_to_edn_map(op: Op) -> dict[Any, Any]:
    out: dict[Any, Any] = {
        edn_format.Keyword("index"): op.index,
        edn_format.Keyword("type"): edn_format.Keyword(op.type),
        edn_format.Keyword("f"): _keyword_if_possible(op.f),
        edn_format.Keyword("process"): edn_format.Keyword(op.process) if isinstance(op.process, str) else op.process,
        edn_format.Keyword("value"): _to_edn(op.value),
        edn_format.Keyword("time"): op.time,
    }
    if op.error is not None:
        out[edn_format.Keyword("error")] = (
            _keyword_if_possible(op.error) if isinstance(op.error, str) else _to_edn(op.error)
        )
    if op.node is not None:
        out[edn_format.Keyword("node")] = op.node
    for key, value in op.extra.items():
        out[_keyword_if_possible(key)] = _to_edn(value)
    return out


def write_edn(path: str | os.PathLike[str], ops: Iterable[Op]) -> None:
    """Write Jepsen-readable EDN: one map per line, ``{:index 0, :type :invoke, ...}``.

    ``type``, ``f``, ``process "nemesis"`` and string errors are written as keywords, as
    Jepsen writes them; string keys of maps inside values become keywords where valid.
    """
    with open(path, "w", encoding="utf-8", newline="\n") as stream:
        for op in ops:
            items = _op_to_edn_map(op)
            body = ", ".join(
                f"{edn_format.dumps(key)} {edn_format.dumps(value)}" for key, value in items.items()
            )
            stream.write("{" + body + "}\n")


def write_txt(path: str | os.PathLike[str], ops: Iterable[Op]) -> None:
    """Write ``history.txt`` for people: ``process  type  f  value  error``, tab-separated.

    Values and errors are printed as EDN (``nil``, ``[1 2]``, ``"a\\tb"``), so a tab or a
    newline inside a string stays escaped and each op stays on one line.
    """
    with open(path, "w", encoding="utf-8", newline="\n") as stream:
        for op in ops:
            error = (
                ""
                if op.error is None
                else (
                    op.error
                    if isinstance(op.error, str) and "\t" not in op.error and "\n" not in op.error
                    else edn_literal(op.error)
                )
            )
            stream.write(
                "\t".join((str(op.process), op.type, op.f, edn_literal(op.value), error)) + "\n"
            )


# --------------------------------------------------------------------------- detection


def _open_text(path: str | os.PathLike[str]) -> IO[str]:
    try:
        return open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise HistoryError(
            "expected a history file, but there is no such file", path=path
        ) from None
    except IsADirectoryError:
        raise HistoryError("expected a history file, got a directory", path=path) from None
    except OSError as error:
        raise HistoryError(f"cannot open: {error.strerror}", path=path) from None


_JEPSEN_LOG_LINE = re.compile(r"^\s*(?:\S+\s+jepsen\.\S+\s+-\s+)?\S+\s+:(?:invoke|ok|fail|info)\s")


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess the format of a history file from its first non-blank line (then its suffix)."""
    first = ""
    with _open_text(path) as stream:
        try:
            for text in stream:
                if text.strip():
                    first = text.strip()
                    break
        except UnicodeDecodeError:
            raise HistoryError("expected UTF-8 text, got undecodable bytes", path=path) from None
    suffix = Path(path).suffix.lower()
    if not first:
        if suffix in (".jsonl", ".json"):
            return "jsonl"
        if suffix == ".edn":
            return "edn"
        raise HistoryError("expected a history, got an empty file", path=path)
    if first.startswith('{"') or first.startswith('{ "'):
        return "jsonl"
    if _JEPSEN_LOG_LINE.match(first):
        return "jepsen-log"
    if first.startswith("{") or first.startswith("[") or first.startswith("#"):
        # Porcupine's kv logs are EDN maps with a top-level :key and no :index.
        if re.search(r":key\s", first) and ":index" not in first:
            return "porcupine-kv"
        return "edn"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".edn":
        return "edn"
    if suffix == ".log":
        return "jepsen-log"
    raise HistoryError(
        f"cannot tell the history format from the first line {_short(first)}; give --format ({'|'.join(FORMATS)})",
        path=path,
        line=1,
    )


def read_history(path: str | os.PathLike[str], format: str | None = None) -> list[Op]:  # noqa: A002 - the CLI's name
    """Read a history in any supported format (detected when ``format`` is None)."""
    chosen = format or detect_format(path)
    if chosen == "jsonl":
        ops = read_jsonl(path)
    elif chosen == "edn":
        ops = read_edn(path)
    elif chosen == "jepsen-log":
        ops = read_jepsen_log(path)
    elif chosen == "porcupine-kv":
        ops = read_porcupine_kv(path)
    else:
        raise ValueError(f"unknown history format {chosen!r}; expected one of {', '.join(FORMATS)}")
    if not ops:
        raise HistoryError("expected at least one operation, got an empty history", path=path)
    return ops


def read_jepsen_log(path: str | os.PathLike[str]) -> list[Op]:
    """A Jepsen etcd text log of Porcupine's corpus (delegates to :mod:`checker.importers`)."""
    from checker import importers  # imported late: importers builds on this module

    return list(importers.read_jepsen_log(path))


def read_porcupine_kv(path: str | os.PathLike[str]) -> list[Op]:
    """A Porcupine kv log of EDN maps with ``:key`` (delegates to :mod:`checker.importers`)."""
    from checker import importers

    return list(importers.read_porcupine_kv(path))


# --------------------------------------------------------------------------- pairing


@dataclass(slots=True)
class OperationPair:
    """One client operation: its invoke and its completion (None when it never completed).

    ``type`` is the outcome: ``ok``, ``fail`` or ``info`` (an info completion, or no
    completion at all). ``value`` is what the operation did or saw: the completion's value
    when it is ``ok`` and carries one (a read's result), else the invoke's.
    ``invoke_position`` / ``complete_position`` are places in the history's event order,
    which is what real-time precedence is decided on; ``complete_position`` is None when
    there was no completion.
    """

    invoke: Op
    completion: Op | None
    type: str
    invoke_position: int
    complete_position: int | None

    @property
    def process(self) -> int | str:
        return self.invoke.process

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def value(self) -> Any:
        if self.type == "ok" and self.completion is not None and self.completion.value is not None:
            return self.completion.value
        return self.invoke.value


@dataclass(slots=True)
class PairedHistory:
    operations: list[OperationPair] = field(default_factory=list)  # in invoke order
    nemesis: list[Op] = field(default_factory=list)
    # Completions with no invoke before them on their process, of type info: Jepsen writes
    # these for some crashed clients; they carry no operation and are kept for the record.
    orphan_infos: list[Op] = field(default_factory=list)


def pair_operations(
    ops: Iterable[Op], *, source: str | os.PathLike[str] | None = None
) -> PairedHistory:
    """Pair each invoke with the next completion on its process (Knossos' rule).

    Raises :class:`HistoryError` on a second invoke while one is outstanding on the same
    process, and on an ``ok``/``fail`` completion with no outstanding invoke.
    """
    paired = PairedHistory()
    outstanding: dict[int | str, int] = {}  # process -> index into paired.operations
    for position, op in enumerate(ops):
        if op.process == NEMESIS:
            paired.nemesis.append(op)
            continue
        if op.type == "invoke":
            if op.process in outstanding:
                earlier = paired.operations[outstanding[op.process]].invoke
                raise HistoryError(
                    f"op index {op.index}: process {op.process!r} invokes {op.f!r} while its "
                    f"{earlier.f!r} invoked at op index {earlier.index} has not completed; "
                    "expected one outstanding operation per process",
                    path=source,
                )
            outstanding[op.process] = len(paired.operations)
            paired.operations.append(OperationPair(op, None, "info", position, None))
            continue
        slot = outstanding.pop(op.process, None)
        if slot is None:
            if op.type == "info":
                paired.orphan_infos.append(op)
                continue
            raise HistoryError(
                f"op index {op.index}: process {op.process!r} completes {op.f!r} ({op.type}) "
                "with no outstanding invoke; expected an invoke first",
                path=source,
            )
        pair = paired.operations[slot]
        pair.completion = op
        pair.type = op.type
        pair.complete_position = position
    return paired
