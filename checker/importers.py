"""Importers for the two history formats of Porcupine's test corpus.

- :func:`read_jepsen_log` — Jepsen's etcd text logs (``INFO  jepsen.util - 3	:invoke	:write	4``,
  tabs or spaces), as in ``porcupine/test_data/jepsen``. Lines of other loggers
  (``INFO  jepsen.core - ...``) are skipped; blank lines too.
- :func:`read_porcupine_kv` — Porcupine's kv logs: one EDN map per line,
  ``{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}``.

Both give :class:`~checker.op.Op` lists with ``index`` = ``time`` = the op's place in the
file (the logs carry no clock; real-time order is the order of the lines).

What the etcd logs mean is carried into the ops, for the ``etcd`` model
(:mod:`checker.models.etcd`):

- ``:fail :cas [a b]`` — the compare failed: ``type "fail"``, ``error "cas_mismatch"``
  (raftlab's client code for it), value ``[a, b]``. The etcd model reads it as "the value
  was not ``a``"; Knossos-style models drop it like any failure.
- ``:fail :read :timed-out`` — ``type "fail"``, ``error "timed-out"``: a read that changes
  nothing and asserts nothing.
- ``:info :write :timed-out`` (or ``:cas``) — ``type "info"``, ``error "timed-out"``, value
  the invoke's: it may or may not have happened.
- ``:ok :read nil`` — a read that saw no value (the key absent).

The kv logs become ``get``/``put``/``append`` ops whose value is the Jepsen independent
tuple ``[key, value]``, checked per key by the ``kv`` model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import edn_format
from edn_format import EDNDecodeError, Keyword, Symbol

from checker.history import HistoryError, parse_literal
from checker.op import OP_TYPES, Op

__all__ = ["read_jepsen_log", "read_porcupine_kv", "CAS_MISMATCH", "TIMED_OUT"]

CAS_MISMATCH = "cas_mismatch"
TIMED_OUT = "timed-out"

PathOrLines = str | os.PathLike[str] | Iterable[str]

# "[timestamp] LEVEL  jepsen.util - " before the op; the op itself is
# "process <ws> :type <ws> :f <ws> value" (the value may hold spaces: "[3 0]").
_UTIL_PREFIX = re.compile(r"^.*?\bjepsen\.util\s+-\s+")
_OTHER_LOGGER = re.compile(
    r"^(?:\S+\s+)*?(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\s+\S+\s+-\s"
)
_OP_LINE = re.compile(
    r"^(?P<process>:?[\w.-]+)\s+:(?P<type>[a-z]+)\s+:?(?P<f>[^\s]+)(?:\s+(?P<value>.*?))?\s*$"
)
# The lines of Porcupine's etcd logs, read in one match: "INFO  jepsen.util - 3<tab>:ok<tab>
# :cas<tab>[1 2]" with a value of nil, an integer, a pair of integers or a keyword.
_COMMON_LOG_LINE = re.compile(
    r"INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:([\w-]+)\s+"
    r"(?:(nil)|(-?\d+)|\[(-?\d+) (-?\d+)\]|:([\w-]+))\s*$"
)
_INT = re.compile(r"^-?\d+$")
_INT_PAIR = re.compile(r"^\[\s*(-?\d+)[\s,]+(-?\d+)\s*\]$")


def _lines(source: PathOrLines) -> tuple[Iterable[str], str | None]:
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise HistoryError(
                "expected a history file, but there is no such file", path=path
            ) from None
        except IsADirectoryError:
            raise HistoryError("expected a history file, got a directory", path=path) from None
        except UnicodeDecodeError:
            raise HistoryError("expected UTF-8 text, got undecodable bytes", path=path) from None
        except OSError as error:
            raise HistoryError(f"cannot open: {error.strerror}", path=path) from None
        return text.splitlines(), path
    if isinstance(source, bytes):
        raise HistoryError("expected a path or lines of text, got bytes")
    return source, None


def _log_value(text: str | None, *, path: str | None, line: int) -> Any:
    """The EDN value at the end of a log line (fast paths for the corpus' nil, ints, pairs)."""
    if text is None or text == "" or text == "nil":
        return None
    if _INT.match(text):
        return int(text)
    pair = _INT_PAIR.match(text)
    if pair:
        return [int(pair.group(1)), int(pair.group(2))]
    if text.startswith(":") and " " not in text:
        return text[1:]
    try:
        return parse_literal(text)
    except ValueError as error:
        raise HistoryError(
            f"expected an EDN value after the function, got {text!r} ({error})",
            path=path,
            line=line,
        ) from None


def _process(token: str) -> int | str:
    if _INT.match(token):
        return int(token)
    return token[1:] if token.startswith(":") else token


def _append_log_op(
    ops: list[Op],
    invoked_value: dict[int | str, Any],
    process: int | str,
    op_type: str,
    f: str,
    value: Any,
    is_keyword: bool,
) -> None:
    """One op of an etcd log, with the corpus' meaning carried in (see the module doc)."""
    error: Any = None
    if op_type == "invoke":
        invoked_value[process] = value
    else:
        invoke_value = invoked_value.pop(process, None)
        if op_type in ("fail", "info") and is_keyword:
            # ":timed-out" and the like: the reason, not a result.
            error = value
            value = invoke_value
        elif op_type == "fail" and f == "cas":
            error = CAS_MISMATCH  # Jepsen's etcd test: the compare did not hold
    index = len(ops)
    ops.append(
        Op(index=index, time=index, type=op_type, process=process, f=f, value=value, error=error)
    )


def read_jepsen_log(source: PathOrLines) -> list[Op]:
    """Ops from a Jepsen etcd text log (a path, or an iterable of its lines).

    Raises :class:`~checker.history.HistoryError` naming the line for a line that looks
    like an op but is not one, an unknown op type, or a value that is not EDN.
    """
    lines, path = _lines(source)
    ops: list[Op] = []
    invoked_value: dict[int | str, Any] = {}  # process -> its outstanding invoke's value
    common_line = _COMMON_LOG_LINE.match
    for line_number, raw in enumerate(lines, start=1):
        common = common_line(raw)
        if common is not None:
            # The corpus' own lines (all but a handful): one match, no further parsing.
            number, op_type, f, nil, integer, first, second, keyword = common.groups()
            process: int | str = int(number)
            if nil is not None:
                value: Any = None
            elif integer is not None:
                value = int(integer)
            elif first is not None:
                value = [int(first), int(second)]
            else:
                value = keyword
            _append_log_op(ops, invoked_value, process, op_type, f, value, keyword is not None)
            continue
        text = raw.strip()
        if not text:
            continue
        prefix = _UTIL_PREFIX.match(text)
        if prefix:
            text = text[prefix.end() :]
        elif _OTHER_LOGGER.match(text):
            continue  # another logger's line (jepsen.core, jepsen.os...): not an op
        match = _OP_LINE.match(text)
        if not match:
            raise HistoryError(
                f"expected an op 'PROCESS :TYPE :F VALUE' (e.g. '3 :invoke :write 4'), got {raw.strip()[:80]!r}",
                path=path,
                line=line_number,
            )
        op_type = match.group("type")
        if op_type not in OP_TYPES:
            raise HistoryError(
                f"expected the op type to be one of :{', :'.join(OP_TYPES)}, got :{op_type}",
                path=path,
                line=line_number,
            )
        process = _process(match.group("process"))
        f = match.group("f")
        value_text = match.group("value")
        value = _log_value(value_text, path=path, line=line_number)
        is_keyword = value_text is not None and value_text.startswith(":")
        _append_log_op(ops, invoked_value, process, op_type, f, value, is_keyword)
    return ops


def _plain(value: Any) -> Any:
    """Plain Python data from edn_format's types (keywords and symbols become their names)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Keyword | Symbol):
        return value.name
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return [_plain(v) for v in value]
    return str(value)


def _kv_op(data: Any, *, index: int, path: str | None, line: int) -> Op:
    if not isinstance(data, Mapping):
        raise HistoryError(
            f"expected an EDN map {{:process .. :type .. :f .. :key ..}}, got {data!r}"[:160],
            path=path,
            line=line,
        )
    fields = {_plain(k): v for k, v in data.items()}
    for required in ("process", "type", "f", "key"):
        if required not in fields:
            raise HistoryError(
                f"expected a :{required} in the map, got keys {sorted(map(str, fields))}",
                path=path,
                line=line,
            )
    op_type = _plain(fields["type"])
    if op_type not in OP_TYPES:
        raise HistoryError(
            f"expected :type to be one of :{', :'.join(OP_TYPES)}, got {op_type!r}",
            path=path,
            line=line,
        )
    process = _plain(fields["process"])
    if isinstance(process, bool) or not isinstance(process, int | str):
        raise HistoryError(
            f"expected :process to be an integer, got {process!r}", path=path, line=line
        )
    f = _plain(fields["f"])
    if not isinstance(f, str):
        raise HistoryError(f"expected :f to be a keyword, got {f!r}", path=path, line=line)
    key = _plain(fields["key"])
    if isinstance(key, list):
        key = tuple(key)
    value = _plain(fields.get("value"))
    error = _plain(fields.get("error"))
    return Op(
        index=index, time=index, type=op_type, process=process, f=f, value=[key, value], error=error
    )


_FLAT_MAP = re.compile(r'^\s*\{(?:\s*:[\w.-]+\s+(?:"[^"\\]*"|:[\w.-]+|-?\d+|nil)\s*,?)*\s*\}\s*$')
_FLAT_ENTRY = re.compile(r':([\w.-]+)\s+(?:"([^"\\]*)"|:([\w.-]+)|(-?\d+)|(nil))')


def _flat_map(text: str) -> dict[str, Any] | None:
    """A flat EDN map of keywords to strings, keywords, integers or nil; None for anything else."""
    if not _FLAT_MAP.match(text):
        return None
    out: dict[str, Any] = {}
    for entry in _FLAT_ENTRY.finditer(text):
        key, string, keyword, integer = entry.group(1, 2, 3, 4)
        if string is not None:
            out[key] = string
        elif keyword is not None:
            out[key] = keyword
        elif integer is not None:
            out[key] = int(integer)
        else:
            out[key] = None
    return out


# {:process 6, :type :invoke, :f :append, :key "0", :value "x 6 0 y"}, or :value nil
_CORPUS_LINE = re.compile(
    r'\{:process (\d+), :type :([a-z]+), :f :([\w-]+), :key "([^"\\]*)", '
    r':value (?:"([^"\\]*)"|nil)\}\s*$'
)


def _one_edn_form(text: str, *, path: str | None, line: int) -> Any:
    try:
        parsed = list(edn_format.loads_all(text))
    except (EDNDecodeError, ValueError, TypeError, IndexError, NotImplementedError) as error:
        raise HistoryError(
            f"expected one EDN map, got {text.strip()[:80]!r} ({error})", path=path, line=line
        ) from None
    if len(parsed) != 1:
        raise HistoryError(
            f"expected one EDN map on the line, got {len(parsed)} forms", path=path, line=line
        )
    return parsed[0]


def read_porcupine_kv(source: PathOrLines) -> list[Op]:
    """Ops from a Porcupine kv log (a path, or an iterable of its lines).

    The value of each op is ``[key, value]``. Raises
    :class:`~checker.history.HistoryError` naming the line for anything that is not one
    such map.
    """
    lines, path = _lines(source)
    numbered = [(number, raw) for number, raw in enumerate(lines, start=1) if raw.strip()]
    # Porcupine writes every line the same way: read such lines with one match each.
    ops: list[Op] = []
    corpus_line = _CORPUS_LINE.match
    for index, (_, raw) in enumerate(numbered):
        line = corpus_line(raw)
        if line is None:
            break
        process, op_type, f, key, value = line.groups()
        if op_type not in OP_TYPES:
            break
        ops.append(
            Op(
                index=index,
                time=index,
                type=op_type,
                process=int(process),
                f=f,
                value=[key, value],
            )
        )
    else:
        return ops
    # The corpus' maps are flat (keywords, strings without escapes, integers, nil): read
    # those with a regular expression; anything else goes to edn_format, which builds its
    # lexer and parser on every call, so it gets all those lines at once and goes line by
    # line only to name a line it cannot read.
    forms: list[Any] = [_flat_map(raw) for _, raw in numbered]
    rest = [i for i, form in enumerate(forms) if form is None]
    if rest:
        parsed: list[Any] | None
        try:
            parsed = list(edn_format.loads_all("\n".join(numbered[i][1] for i in rest)))
        except (EDNDecodeError, ValueError, TypeError, IndexError, NotImplementedError):
            parsed = None
        if parsed is None or len(parsed) != len(rest):
            parsed = [_one_edn_form(numbered[i][1], path=path, line=numbered[i][0]) for i in rest]
        for i, form in zip(rest, parsed, strict=True):
            forms[i] = form
    return [
        _kv_op(form, index=index, path=path, line=number)
        for index, ((number, _), form) in enumerate(zip(numbered, forms, strict=True))
    ]
