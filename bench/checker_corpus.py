"""Check every history of Porcupine's corpus and compare with Porcupine's own figures.

Usage: ``python3 bench/checker_corpus.py [DIR]`` (DIR defaults to ``../shared/corpus/porcupine``
from the project root). For each file listed in ``DIR/expected.tsv`` it prints the verdict,
whether it matches the expected one, and the CPU seconds spent reading and checking; then
the totals (all histories, and the etcd logs alone) next to Porcupine's figures on these
machines. It exits 1 if any verdict is wrong (an ``unknown`` counts as wrong), 254 when the
corpus cannot be found.

With ``--porcupine BIN`` (the harness ``bench/porcupine_anchor`` built; see its main.go)
Porcupine itself checks every etcd log here, in the same run: the log as read by raftlab
is written as JSONL and checked by BIN with a nil read meaning "absent" (Porcupine's
etcdModel); its column gives its verdict and the seconds of its check call (Go's start-up
and its reading excluded), and the totals compare the two on the same histories. (The kv
logs need Porcupine's kvModel, which the harness does not have.)

This is a benchmark, not a test: run it by hand, not in a loop (the machines are shared).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from checker.history import HistoryError, read_history, write_jsonl  # noqa: E402
from checker.linearizable import check  # noqa: E402
from checker.models import MODELS  # noqa: E402

DEFAULT_CORPUS = PROJECT_ROOT / ".." / "shared" / "corpus" / "porcupine"

# Porcupine (Go), checking per key, on these 2-core machines. Issue 3 quotes the first
# set; ../shared/README.md quotes the second (measured later on the same machines).
PORCUPINE_FIGURES = {
    "issue 3": {"all": 0.86, "etcd": 0.62, "slowest": ("jepsen/etcd_002.log", 0.29)},
    "shared/README.md": {"all": 0.5, "etcd": 0.37, "slowest": ("jepsen/etcd_002.log", 0.14)},
}

FORMAT_BY_CORPUS_NAME = {"jepsen-etcd-log": "jepsen-log", "edn-kv-log": "porcupine-kv"}
MODEL_BY_FORMAT = {"jepsen-log": "etcd", "porcupine-kv": "kv"}
VERDICT_BY_NAME = {"linearizable": True, "not": False}


@dataclass(slots=True)
class Row:
    name: str
    expected: bool
    got: object
    read_seconds: float
    check_seconds: float
    ops: int
    porcupine: object = None  # Porcupine's verdict here (--porcupine), None if not run
    porcupine_seconds: float = 0.0

    @property
    def right(self) -> bool:
        return self.got is self.expected


def verdict_word(valid: object) -> str:
    return {True: "linearizable", False: "not"}.get(valid, "unknown")  # type: ignore[call-overload]


def porcupine_check(binary: Path, ops: list[object], time_limit: float | None) -> tuple[object, float]:
    """Porcupine's verdict and check seconds for ``ops`` (an etcd log as raftlab read it)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.jsonl"
        write_jsonl(path, ops)  # type: ignore[arg-type]
        command = [str(binary), "-nil-read", "absent", str(path)]
        if time_limit is not None:
            command[1:1] = ["-timeout", f"{time_limit}s"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"error: {done.stderr.strip()[-200:]}", 0.0
    figures = json.loads(done.stdout)
    return figures["valid"], float(figures["seconds"])


def run(corpus: Path, time_limit: float | None, porcupine: Path | None = None) -> list[Row]:
    rows: list[Row] = []
    with open(corpus / "expected.tsv", encoding="utf-8", newline="") as stream:
        entries = list(csv.DictReader(stream, delimiter="\t"))
    print(f"{'file':<24} {'ops':>6} {'expected':>12} {'got':>12}  {'read s':>7} {'check s':>8}"
          + (f"  {'Porcupine here':>21}" if porcupine is not None else ""))
    for entry in entries:
        expected = VERDICT_BY_NAME.get(entry["expected_verdict"])
        if expected is None:  # e.g. the empty etcd_095.log: nothing to decide
            print(f"{entry['file']:<24} {'':>6} {entry['expected_verdict']:>12} {'skipped':>12}")
            continue
        fmt = FORMAT_BY_CORPUS_NAME.get(entry["format"], entry["format"])
        path = corpus / entry["file"]
        started = time.process_time()
        try:
            ops = read_history(path, fmt)
        except HistoryError as error:
            print(f"{entry['file']:<24} cannot be read: {error}")
            rows.append(Row(entry["file"], expected, "unreadable", 0.0, 0.0, 0))
            continue
        read_seconds = time.process_time() - started
        model = MODELS[MODEL_BY_FORMAT[fmt]]()
        started = time.process_time()
        result = check(ops, model, time_limit=time_limit)
        check_seconds = time.process_time() - started
        row = Row(
            entry["file"], expected, result.get("valid"), read_seconds, check_seconds, len(ops)
        )
        rows.append(row)
        mark = "" if row.right else "   <-- WRONG"
        theirs = ""
        if porcupine is not None and fmt == "jepsen-log":
            row.porcupine, row.porcupine_seconds = porcupine_check(porcupine, ops, time_limit)
            word = {True: "linearizable", False: "not"}.get(row.porcupine, str(row.porcupine))  # type: ignore[call-overload]
            theirs = f"  {word:>12} {row.porcupine_seconds:8.3f}"
            if row.porcupine is not expected:
                mark += "   <-- Porcupine disagrees"
        print(
            f"{row.name:<24} {row.ops:>6} {verdict_word(expected):>12} {verdict_word(row.got):>12}"
            f"  {row.read_seconds:7.3f} {row.check_seconds:8.3f}{theirs}{mark}",
            flush=True,
        )
    return rows


def report(rows: list[Row]) -> int:
    etcd = [row for row in rows if row.name.startswith("jepsen/")]
    total_check = sum(row.check_seconds for row in rows)
    etcd_check = sum(row.check_seconds for row in etcd)
    total_read = sum(row.read_seconds for row in rows)
    slowest = max(rows, key=lambda row: row.check_seconds, default=None)
    wrong = [row for row in rows if not row.right]
    print()
    print(f"histories checked: {len(rows)} ({len(etcd)} etcd logs), wrong verdicts: {len(wrong)}")
    print(f"CPU seconds checking: all {total_check:.3f}, etcd logs {etcd_check:.3f}")
    etcd_read = sum(row.read_seconds for row in etcd)
    print(f"CPU seconds reading:  all {total_read:.3f}, etcd logs {etcd_read:.3f}")
    print(
        f"CPU seconds in all:   all {total_read + total_check:.3f}, "
        f"etcd logs {etcd_read + etcd_check:.3f}"
    )
    if slowest is not None:
        print(f"slowest check: {slowest.name} {slowest.check_seconds:.3f} s")
    for source, figures in PORCUPINE_FIGURES.items():
        slow_name, slow_seconds = figures["slowest"]
        ours_slow = next((row.check_seconds for row in rows if row.name == slow_name), None)
        print(
            f"checking vs Porcupine ({source}): all {total_check / figures['all']:.2f}x of {figures['all']} s, "
            f"etcd {etcd_check / figures['etcd']:.2f}x of {figures['etcd']} s"
            + (
                f", {slow_name} {ours_slow:.3f} s = {ours_slow / slow_seconds:.3f}x of {slow_seconds} s"
                if ours_slow is not None
                else ""
            )
        )
    measured = [row for row in etcd if row.porcupine is not None]
    if measured:
        ours = sum(row.check_seconds for row in measured)
        theirs = sum(row.porcupine_seconds for row in measured)
        agree = sum(row.porcupine is row.expected for row in measured)
        slow = max(measured, key=lambda row: row.porcupine_seconds)
        print(
            f"Porcupine here, the same {len(measured)} etcd logs: {theirs:.3f} s checking "
            f"(its verdict right on {agree}); raftlab {ours:.3f} s CPU checking, "
            f"{ours / theirs:.2f}x of Porcupine; its slowest {slow.name} {slow.porcupine_seconds:.3f} s, "
            f"raftlab {slow.check_seconds:.3f} s there"
        )
    for row in wrong:
        print(
            f"WRONG: {row.name}: expected {verdict_word(row.expected)}, got {verdict_word(row.got)}"
        )
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "corpus", nargs="?", type=Path, default=DEFAULT_CORPUS, help="the corpus directory"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds per history before giving up (unknown counts as a wrong verdict)",
    )
    parser.add_argument(
        "--porcupine",
        type=Path,
        default=None,
        help="the built bench/porcupine_anchor harness: Porcupine checks the etcd logs here too",
    )
    args = parser.parse_args(argv)
    if args.porcupine is not None and not args.porcupine.is_file():
        print(f"--porcupine: no file at {args.porcupine}", file=sys.stderr)
        return 254
    corpus = args.corpus.resolve()
    if not (corpus / "expected.tsv").is_file():
        print(f"no corpus at {corpus} (expected.tsv missing)", file=sys.stderr)
        return 254
    rows = run(corpus, args.time_limit, args.porcupine)
    return report(rows)


if __name__ == "__main__":
    sys.exit(main())
