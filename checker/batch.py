"""One history file checked, its one-line summary returned as plain data: for batch checks.

`check_file` is the per-file step of ``raftlab check FILE...`` (`checker.cli._check_many`)
as a function that returns instead of printing, so that a caller can run it anywhere — in
this process, in a process pool, on a Dask worker (``raftlab check --executor``, built
campaign-side in ``campaign/batch_check.py``; the checker imports nothing from the
project's other packages) — and print the lines itself. The summary is plain data
(strings, numbers, booleans), so any executor can carry it back.

The line is the batch check's line, byte for byte:
``FILE: VALID (linearizable), model M, N ops, S s`` (plus the anomaly for a history that
is not valid) or ``FILE: BAD INPUT: why``; ``code`` is that file's exit code (0 valid,
1 invalid, 2 unknown, 254 bad input) and `worst_code` folds several into the batch's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from checker.cli import (
    DEFAULT_NIL_READ_BY_FORMAT,
    EXIT_BAD_INPUT,
    EXIT_INVALID,
    EXIT_UNKNOWN,
    EXIT_VALID,
    _choose_model,
    _history_path,
    _parse_init,
    _verdict_word,
    available_models,
    summarize,
)
from checker.history import HistoryError, detect_format, read_history

__all__ = ["check_file", "check_task", "worst_code"]

# Which exit code wins when files disagree: a malformed file first (the batch cannot be
# trusted as asked), then a refuted history, then an undecided one (as `_check_many`).
_PRECEDENCE = (EXIT_BAD_INPUT, EXIT_INVALID, EXIT_UNKNOWN)


def worst_code(codes: Iterable[int]) -> int:
    """The batch's exit code: 254 if any file is bad input, else 1, else 2, else 0."""
    seen = set(codes)
    return next((code for code in _PRECEDENCE if code in seen), EXIT_VALID)


def check_file(
    path: str | Path,
    *,
    display: str | None = None,
    model: str | None = None,
    init: str | None = None,
    format: str | None = None,  # noqa: A002 - the CLI's name
    time_limit: float | None = None,
    nil_read: str | None = None,
) -> dict[str, Any]:
    """Check the history at `path` (a file, or a run folder holding history.jsonl/.edn).

    `display` is the name the line gives the file (the path as the user typed it, when
    `path` was made absolute for a worker elsewhere); `init` is the model's initial value
    as text (a JSON or EDN literal, as ``--init``). Options as ``raftlab check``; the time
    limit counts from the start of the reading, per file. Returns ``{"file", "line",
    "code", "valid", "model", "ops", "seconds"}`` (valid ``None`` and model ``None`` for
    bad input)."""
    from checker.linearizable import check
    from checker.models import ModelError

    given = str(path) if display is None else display
    started = time.monotonic()
    summary: dict[str, Any] = {"file": given, "valid": None, "model": None, "ops": 0}
    try:
        has_init, init_value = _parse_init(init)
        history_file = _history_path(Path(path))
        fmt = format or detect_format(history_file)
        ops = read_history(history_file, fmt)
        chosen, _ = _choose_model(model, fmt, ops)
        model_class = available_models().get(chosen)
        model_object: Any = (
            model_class() if isinstance(model_class, type) else model_class or chosen
        )
        kwargs: dict[str, Any] = {
            "time_limit": time_limit,
            "nil_read": nil_read or DEFAULT_NIL_READ_BY_FORMAT.get(fmt, "unknown"),
            "started": started,
        }
        if has_init:
            kwargs["init"] = init_value
        result = check(ops, model_object, **kwargs)
    except (HistoryError, ModelError, click.ClickException) as error:
        message = str(error.format_message() if isinstance(error, click.ClickException) else error)
        if given != str(path):
            # The error names the path read (absolute, for a worker elsewhere); name the
            # file as the user gave it, as a check in their own directory would.
            message = message.replace(str(path), given)
        summary.update(
            line=f"{given}: BAD INPUT: {message}",
            code=EXIT_BAD_INPUT,
            seconds=time.monotonic() - started,
        )
        return summary
    valid = result.get("valid")
    seconds = time.monotonic() - started
    line = f"{given}: {_verdict_word(valid)}, model {chosen}, {len(ops)} ops, {seconds:.3f} s"
    details = summarize(result)
    if valid is not True and details:
        line += " — " + "; ".join(details[:2])
    code = EXIT_VALID if valid is True else EXIT_INVALID if valid is False else EXIT_UNKNOWN
    summary.update(
        line=line,
        code=code,
        valid=valid if valid in (True, False) else "unknown",
        model=chosen,
        ops=len(ops),
        seconds=seconds,
    )
    return summary


def check_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """`check_file` for an executor: one plain mapping in (``path`` and the keyword
    arguments of `check_file`), the plain summary out."""
    options = dict(task)
    return check_file(options.pop("path"), **options)
