"""``raftlab check FILE``: decide whether a history is linearizable, and explain why not.

Exit codes (conventions §2): 0 valid, 1 invalid, 2 unknown (a time budget ran out), 254 bad
arguments or a malformed history (a clear message naming the line; no traceback).

The model defaults by format: Jepsen etcd logs are checked against ``etcd`` (Porcupine's
etcd register), Porcupine kv logs against ``kv``; for raftlab's own JSONL and Jepsen EDN
the model is guessed from the operations' ``f`` and value shapes (Knossos' names:
read/write/cas → cas-register, txn → multi-register, acquire/release → mutex, ...), and
``--model`` is required when the guess is ambiguous.

What a read of nil means also defaults by format (``--nil-read`` overrides): "absent" (the
register or key holds nothing, so the read constrains the state) for raftlab's JSONL and
for Porcupine's etcd and kv logs (their models read an absent key as nil or ""), "unknown"
(Knossos: the read constrains nothing) for Jepsen EDN.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from checker.history import (
    FORMATS,
    HistoryError,
    Op,
    detect_format,
    parse_literal,
    read_history,
    to_jsonable,
)

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNKNOWN = 2
EXIT_BAD_INPUT = 254

DEFAULT_MODEL_BY_FORMAT = {"jepsen-log": "etcd", "porcupine-kv": "kv"}
# What a read of nil means, by input format (``--nil-read`` overrides): raftlab's JSONL
# comes from raftnode-like stores whose get returns nil only for an absent key; Jepsen EDN
# is Knossos' input, where nil is an unknown result; Porcupine's models read an absent key
# as nil (etcd) or "" (kv; Go has no nil string), so its logs mean absent too.
DEFAULT_NIL_READ_BY_FORMAT = {
    "jsonl": "absent",
    "edn": "unknown",
    "jepsen-log": "absent",
    "porcupine-kv": "absent",
}


class BadInput(click.ClickException):
    """A malformed history or an impossible request: exit 254 with the message only."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"raftlab check: {self.format_message()}", err=True)


def available_models() -> dict[str, Any]:
    try:
        from checker.models import MODELS
    except ImportError:  # pragma: no cover - the models package is part of the checker
        return {}
    return dict(MODELS)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


_SCALAR_TYPES = frozenset({type(None), str, int, float, bool})


def _is_key_value_tuple(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2


def guess_model(ops: Iterable[Op]) -> tuple[str | None, str]:
    """The model a history's ops suggest, and why (or None and why not).

    Jepsen's independent ``[key, value]`` tuples are looked through (the checker splits
    them per key): a history is keyed when every read and write invoke carries a pair.
    """
    client = [op for op in ops if op.process != "nemesis"]
    functions = {op.f for op in client}
    if not functions:
        return None, "the history has no client operations"
    names = ", ".join(sorted(functions))
    if any("key" in op.extra for op in client) or (
        functions & {"get", "put", "append"} and functions <= {"get", "put", "append", "read"}
    ):
        return "kv", f"functions {names} on keys"
    rw_invokes = [op.value for op in client if op.type == "invoke" and op.f in ("read", "write")]
    keyed = bool(rw_invokes) and all(_is_key_value_tuple(v) for v in rw_invokes)
    read_values = [op.value for op in client if op.type == "ok" and op.f == "read"]
    written = [op.value for op in client if op.type == "invoke" and op.f in ("write", "add")]
    if keyed:  # look through [key, value]
        read_values = [v[1] if _is_key_value_tuple(v) else v for v in read_values]
        written = [v[1] if _is_key_value_tuple(v) else v for v in written]
    if functions <= {"txn"}:
        return "multi-register", "txn operations"
    if functions <= {"acquire", "release"}:
        return "mutex", "acquire/release"
    if functions <= {"enqueue", "dequeue", "drain"}:
        return "fifo-queue", "enqueue/dequeue (give --model unordered-queue if order is free)"
    if functions <= {"read", "write", "cas"}:
        values = read_values + written
        # the plain types first, in C; a subclass of one of them takes _is_scalar's test
        if set(map(type, values)) <= _SCALAR_TYPES or all(map(_is_scalar, values)):
            name = "cas-register" if "cas" in functions else "register"
            return name, f"functions {names}" + (" on [key, value] pairs" if keyed else "")
        return None, f"functions {names} with values that are not single registers"
    if functions <= {"add", "read"} and "add" in functions:
        collections = [v for v in read_values if isinstance(v, list | tuple | set | frozenset)]
        numbers = [v for v in read_values if isinstance(v, int) and not isinstance(v, bool)]
        if collections and not numbers:
            return "set", "add and reads of collections"
        if numbers and not collections and all(isinstance(v, int) for v in written):
            return "counter", "adds and reads of numbers"
        return None, f"functions {names}: a set or a counter?"
    return None, f"functions {names} match no model"


def _choose_model(requested: str | None, fmt: str, ops: Sequence[Op]) -> tuple[str, str]:
    models = available_models()
    if requested is not None:
        name, why = requested, "given"
    elif fmt in DEFAULT_MODEL_BY_FORMAT:
        name, why = DEFAULT_MODEL_BY_FORMAT[fmt], f"the default for {fmt}"
    else:
        guessed, why = guess_model(ops)
        if guessed is None:
            raise click.UsageError(
                f"cannot tell which model to check against ({why}); give --model "
                f"({'|'.join(sorted(models)) or 'no model is registered'})"
            )
        name = guessed
        why = f"guessed from {why}"
    if models and name not in models:
        raise click.BadParameter(
            f"unknown model {name!r}; expected one of {', '.join(sorted(models))}",
            param_hint="--model",
        )
    return name, why


def _history_path(path: Path) -> Path:
    """FILE itself, or the history inside a run folder (``raftlab check results/latest``)."""
    if not path.is_dir():
        return path
    for name in ("history.jsonl", "history.edn"):
        if (path / name).is_file():
            return path / name
    raise BadInput(f"{path} is a folder with no history.jsonl or history.edn in it")


# A history does not say what its registers held before it began, and a register
# read before any write is then judged against empty (nil): a system that starts at 0
# (Knossos' own tests check its cas-register corpus from 0, its multi-register one from
# {:x 0 :y 0}) looks invalid. So an invalid verdict on a register model reached without
# --init says from where it was checked, once, after the anomaly.
_REGISTER_MODELS = frozenset({"register", "cas-register", "multi-register"})
_NO_INIT_NOTE = (
    "note: checked from empty registers (nil), as no --init was given; if the system "
    "starts from other values, give them: --init 0, --init '{:x 0 :y 0}'"
)


def _parse_init(text: str | None) -> tuple[bool, Any]:
    if text is None:
        return False, None
    try:
        return True, parse_literal(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--init") from None


def _verdict_word(valid: Any) -> str:
    if valid is True:
        return "VALID (linearizable)"
    if valid is False:
        return "INVALID (not linearizable)"
    return "UNKNOWN"


def _describe_op(op: Any) -> str:
    if isinstance(op, Op):
        op = op.to_dict()
    if not isinstance(op, Mapping):
        return str(op)
    parts = [
        f"process {op.get('process')}",
        str(op.get("f")),
        json.dumps(to_jsonable(op.get("value"))),
    ]
    if op.get("type") not in (None, "invoke"):
        parts.append(f"({op.get('type')})")
    if op.get("index") is not None:
        parts.append(f"[op index {op.get('index')}]")
    return " ".join(parts)


def summarize(result: Mapping[str, Any]) -> list[str]:
    """A few lines for people: what could not be linearized, where, why it stopped."""
    lines: list[str] = []
    valid = result.get("valid")
    if valid is False:
        from checker.explain import find_violation  # imported only for an invalid result

        failures = result.get("failures")
        if isinstance(failures, list) and len(failures) > 1:
            lines.append(f"{len(failures)} independent components are not linearizable; the first:")
        violation, key = find_violation(result)
        culprit = next(
            (violation[k] for k in ("op", "failed_op", "culprit") if violation.get(k) is not None),
            None,
        )
        if culprit is not None:
            lines.append(f"cannot linearize: {_describe_op(culprit)}")
        if isinstance(violation.get("reason"), str):
            lines.append(f"why: {violation['reason']}")
        if key is not None:
            lines.append(f"key: {json.dumps(to_jsonable(key))}")
        previous = violation.get("previous_ok")
        if previous is not None:
            lines.append(f"after: {_describe_op(previous)} (last ok op linearized)")
        states = violation.get("states")
        if isinstance(states, list) and states:
            shown = ", ".join(json.dumps(to_jsonable(s)) for s in states[:8])
            lines.append(f"model states possible there: {shown}{' ...' if len(states) > 8 else ''}")
    elif valid is not True:
        reason = result.get("error") or result.get("reason")
        if reason:
            lines.append(f"reason: {reason}")
        if any(key is not None for key in result.get("unknown_keys") or ()):
            lines.append(f"undecided keys: {json.dumps(to_jsonable(result['unknown_keys']))[:300]}")
    return lines


def _write_outputs(out_dir: Path, document: Mapping[str, Any], ops: Sequence[Op]) -> None:
    from checker import explain

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.BadParameter(
            f"cannot create {out_dir}: {error.strerror}", param_hint="--out"
        ) from None
    text = json.dumps(to_jsonable(document), indent=2, ensure_ascii=False, default=str)
    (out_dir / "results.json").write_text(text + "\n", encoding="utf-8")
    # The whole document, so the page also names the file, the format and the initial value.
    page = explain.render_html(ops, document, title=f"raftlab check {document.get('file', '')}")
    (out_dir / "explanation.html").write_text(page, encoding="utf-8")


def _check_many(
    history_files: Sequence[Path],
    model_name: str | None,
    init_text: str | None,
    format_name: str | None,
    time_limit: float | None,
    nil_read: str | None,
) -> int:
    """Check each file in this process, one line each; the worst exit code.

    Each file is `checker.batch.check_file`, the same step a batch on a process pool or
    Dask runs (``--executor``), so the lines are the same whichever runs them."""
    from checker.batch import check_file, worst_code

    codes: list[int] = []
    for given in history_files:
        summary = check_file(
            given,
            model=model_name,
            init=init_text,
            format=format_name,
            time_limit=time_limit,
            nil_read=nil_read,
        )
        click.echo(summary["line"])
        codes.append(summary["code"])
    return worst_code(codes)


@click.command(name="check")
@click.argument(
    "history_files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--model",
    "model_name",
    metavar="NAME",
    help="Model to check against: "
    + ", ".join(sorted(available_models()))
    + " (default: by format, or guessed from the ops).",
)
@click.option(
    "--init",
    "init_text",
    metavar="VALUE",
    help="The model's initial value, a JSON or EDN literal: 0, nil, {:x 0 :y 0}.",
)
@click.option(
    "--format",
    "format_name",
    type=click.Choice(FORMATS),
    help="History format (default: detected from the file).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Give up after S seconds (reading the file included): the verdict is then unknown "
    "(exit 2).",
)
@click.option(
    "--nil-read",
    type=click.Choice(["absent", "unknown"]),
    help="What a read that returned nil means: absent (the key/register holds nothing; it "
    "constrains the state) or unknown (Knossos: it constrains nothing). Default by format: "
    "absent for raftlab JSONL and Porcupine/Jepsen etcd and kv logs, unknown for Jepsen EDN.",
)
@click.option(
    "--checker",
    "checker_name",
    type=click.Choice(["linearizable", "elle-list-append", "elle-rw-register"]),
    default="linearizable",
    show_default=True,
    help="linearizable, or Elle-style txn checks (f txn): elle-list-append, elle-rw-register.",
)
@click.option(
    "--consistency-model",
    metavar="M",
    help="For elle-*: strict-serializable (default), serializable, snapshot-isolation, "
    "repeatable-read, read-committed, read-uncommitted.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write results.json and explanation.html into DIR.",
    metavar="DIR",
)
def check_command(
    history_files: tuple[Path, ...],
    model_name: str | None,
    init_text: str | None,
    format_name: str | None,
    time_limit: float | None,
    nil_read: str | None,
    checker_name: str,
    consistency_model: str | None,
    out_dir: Path | None,
) -> None:
    """Check that the history in FILE is linearizable.

    FILE may also be a run's results folder: its history.jsonl is checked. Given several
    files, each is checked in this one process (the model guessed per file unless
    --model is given, --time-limit per file) and summed up in one line; the exit code is
    the worst: 254 if any file is malformed, else 1 if any is invalid, else 2 if any is
    unknown, else 0.

    \b
    Exit codes:
      0    valid: the history is linearizable
      1    invalid: it is not (the anomaly is printed in words)
      2    unknown: the search was cut short (--time-limit) or could not decide
      130  interrupted by Ctrl-C
      254  bad arguments or a malformed history (the message names the line)
      255  internal error (a traceback)
    """
    from checker.linearizable import check
    from checker.models import ModelError

    budget_started = time.monotonic()  # --time-limit counts the reading too
    has_init, init_value = _parse_init(init_text)
    if len(history_files) > 1:
        if out_dir is not None:
            raise click.UsageError("--out takes one FILE")
        if checker_name != "linearizable" or consistency_model is not None:
            raise click.UsageError("--checker elle-* takes one FILE")
        sys.exit(_check_many(history_files, model_name, init_text, format_name,
                             time_limit, nil_read))
    history_file = _history_path(history_files[0])
    try:
        fmt = format_name or detect_format(history_file)
        ops = read_history(history_file, fmt)
    except HistoryError as error:
        raise BadInput(str(error)) from None
    if checker_name != "linearizable":  # Elle-style txn checks: checker/elle/cli.py
        from checker.elle import cli as elle_cli

        elle_cli.run(history_file, fmt, ops, checker_name, consistency_model, time_limit,
                     out_dir, BadInput)
    if consistency_model is not None:
        raise click.UsageError("--consistency-model applies to --checker elle-* only")
    model, model_reason = _choose_model(model_name, fmt, ops)
    model_class = available_models().get(model)
    model_object: Any = model_class() if isinstance(model_class, type) else model_class or model
    if nil_read is None:
        nil_read = DEFAULT_NIL_READ_BY_FORMAT.get(fmt, "unknown")
        nil_reason = f"the default for {fmt}"
    else:
        nil_reason = "given"
    kwargs: dict[str, Any] = {
        "time_limit": time_limit,
        "nil_read": nil_read,
        "started": budget_started,
    }
    if has_init:
        kwargs["init"] = init_value
    started_cpu = time.process_time()
    started_wall = time.perf_counter()
    try:
        result = check(ops, model_object, **kwargs)
    except HistoryError as error:  # an input error found while pairing (e.g. a double invoke)
        if error.path is None:
            error = HistoryError(error.reason, path=history_file, line=error.line)
        raise BadInput(str(error)) from None
    except ModelError as error:  # an op the model cannot read (unknown f, wrong value shape)
        raise BadInput(f"{history_file}: {error}") from None
    cpu_seconds = time.process_time() - started_cpu
    wall_seconds = time.perf_counter() - started_wall
    valid = result.get("valid")
    clients = sum(1 for op in ops if op.process != "nemesis")
    click.echo(
        f"{history_file}: {len(ops)} ops ({clients} client, {len(ops) - clients} nemesis), "
        f"format {fmt}, model {model} ({model_reason}), nil read = {nil_read} ({nil_reason})"
        + (f", init {json.dumps(to_jsonable(init_value))}" if has_init else "")
    )
    click.echo(f"{_verdict_word(valid)} in {wall_seconds:.3f} s ({cpu_seconds:.3f} s CPU)")
    if valid is not True:  # summary_lines has nothing to say of a valid run
        from checker.summary import summary_lines  # the anomaly in words, as `raftlab test` ends

        page = str(out_dir / "explanation.html") if out_dir is not None else None
        for line in summary_lines({"checkers": {"linearizable": result}}, ops, report=page):
            click.echo(line)
        if valid is False and not has_init and model in _REGISTER_MODELS:
            click.echo(_NO_INIT_NOTE)
    for line in summarize(result):
        click.echo(f"  {line}")
    if out_dir is not None:
        document = {
            "valid": valid,
            "file": str(history_file),
            "format": fmt,
            "model": model,
            "nil_read": nil_read,
            "init": init_value if has_init else None,
            "time_limit": time_limit,
            "ops": len(ops),
            "cpu_seconds": round(cpu_seconds, 6),
            "wall_seconds": round(wall_seconds, 6),
            "result": result,
        }
        _write_outputs(out_dir, document, ops)
        click.echo(f"wrote {out_dir / 'results.json'} and {out_dir / 'explanation.html'}")
    if valid is True:
        sys.exit(EXIT_VALID)
    if valid is False:
        sys.exit(EXIT_INVALID)
    sys.exit(EXIT_UNKNOWN)
