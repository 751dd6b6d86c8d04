"""``raftlab check FILE --checker elle-list-append|elle-rw-register``: the terminal side.

Called by :mod:`checker.cli` once the history is read; prints the verdict, the anomalies
with their cycles in words, the models ruled out, writes ``results.json`` (and a page with
each cycle drawn) under ``--out``, and exits 0 valid, 1 invalid, 2 unknown.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from checker.elle.anomalies import MODELS
from checker.elle.core import DEFAULT_MODEL, check
from checker.elle.explain import cycle_text
from checker.elle.history import TxnHistoryError
from checker.history import Op

CHECKERS = {"elle-list-append": "list-append", "elle-rw-register": "rw-register"}
SHOWN_PER_TYPE = 2


def summarize(result: dict[str, Any]) -> list[str]:
    """Lines for a person: each anomaly kind with its first cases, then the models."""
    lines: list[str] = []
    if result.get("error"):
        lines.append(f"reason: {result['error']}")
    counts = result.get("anomaly-counts", {})
    for kind in result.get("anomaly-types", []):
        cases = result["anomalies"][kind]
        lines.append(f"{kind} ×{counts.get(kind, len(cases))}")
        for case in cases[:SHOWN_PER_TYPE]:
            if "steps" in case:
                lines.extend("  " + line for line in cycle_text(case))
            elif "text" in case:
                lines.append(f"  {case['text']}")
    if result.get("not"):
        lines.append(f"not {', '.join(result['not'])}")
    if result.get("also-not"):
        lines.append(f"also not {', '.join(result['also-not'])}")
    if "possible" in result:
        lines.append(f"still possible: {', '.join(result['possible']) or 'none of the six'}")
    return lines


def run(
    history_file: Path,
    fmt: str,
    ops: Sequence[Op],
    checker_name: str,
    consistency_model: str | None,
    time_limit: float | None,
    out_dir: Path | None,
    bad_input: type[click.ClickException],
) -> None:
    """Check, print, write, and exit with the verdict's code."""
    model = consistency_model or DEFAULT_MODEL
    if model not in MODELS:
        raise click.BadParameter(
            f"unknown model {model!r}; expected one of {', '.join(MODELS)}",
            param_hint="--consistency-model",
        )
    workload = CHECKERS[checker_name]
    started = time.perf_counter()
    try:
        result = check(ops, workload, consistency_model=model, time_limit=time_limit)
    except TxnHistoryError as error:
        raise bad_input(f"{history_file}: {error.reason}") from None
    seconds = time.perf_counter() - started
    valid = result["valid"]
    word = {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN")
    txns = result["txns"]
    click.echo(
        f"{history_file}: {len(ops)} ops, {txns['ok']} ok / {txns['info']} info / "
        f"{txns['fail']} failed txns, format {fmt}, checker {checker_name}"
    )
    click.echo(f"{word} ({model}) in {seconds:.3f} s")
    for line in summarize(result):
        click.echo(f"  {line}")
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise click.BadParameter(
                f"cannot create {out_dir}: {error.strerror}", param_hint="--out"
            ) from None
        document = {
            "valid": valid,
            "file": str(history_file),
            "format": fmt,
            "checker": checker_name,
            "consistency-model": model,
            "time_limit": time_limit,
            "ops": len(ops),
            "wall_seconds": round(seconds, 6),
            "result": result,
        }
        text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
        (out_dir / "results.json").write_text(text + "\n", encoding="utf-8")
        from checker.elle.page import render_html

        (out_dir / "explanation.html").write_text(
            render_html(document, title=f"raftlab check {history_file}"), encoding="utf-8"
        )
        click.echo(f"wrote {out_dir / 'results.json'} and {out_dir / 'explanation.html'}")
    sys.exit(0 if valid is True else 1 if valid is False else 2)
