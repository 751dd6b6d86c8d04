"""Ctrl-C, as a user sends it: a real `raftlab` process and a real SIGINT.

`raftlab test` exits 130 (documented in the README and `--help`) and names the folder
holding the partial results (history so far, verdict "unknown"); `raftlab serve` stops
quietly with exit 0 and no traceback.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "campaign", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell's background job may ignore SIGINT, and a child inherits that: undo it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _interrupt_when(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read output until `marker` appears, send SIGINT, and return everything printed."""
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(timeout), f"{marker!r} never printed:\n{''.join(lines)}"
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    return "".join(lines)


@pytest.mark.slow
def test_ctrl_c_of_test_exits_130_and_names_the_partial_results(tmp_path: Path) -> None:
    process = _start(
        "test",
        "--nodes",
        "1",
        "--time-limit",
        "120",
        "--nemesis",
        "none",
        "--results-dir",
        str(tmp_path),
    )
    output = _interrupt_when(process, "running", timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    match = re.search(r"partial results written to (\S+)", output)
    assert match is not None, output
    run_dir = Path(match.group(1))
    assert run_dir.is_dir() and run_dir.parent.parent == tmp_path
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] == "unknown" and "interrupted" in results["interrupted"]
    assert (run_dir / "history.jsonl").stat().st_size > 0
    assert "interrupted (exit 130)" in output


@pytest.mark.slow
def test_ctrl_c_of_serve_stops_quietly(tmp_path: Path) -> None:
    process = _start("serve", str(tmp_path), "--port", "0")
    output = _interrupt_when(process, "serving", timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output and "internal error" not in output
    assert output.rstrip().endswith("stopped")
