"""Ctrl-C, as a user sends it: a real `raftlab` process and a real SIGINT.

`raftlab test` exits 130 (documented in the README and `--help`) and names the folder
holding the partial results (history so far, verdict "unknown"), and SIGTERM does the same
with exit 143; `raftlab serve` stops quietly with exit 0 and no traceback. And the
mechanism: a signal that lands in the middle of a task is raised from the run's own watcher
task, so no clean-up inside a cancelled scope can swallow it.
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
import trio

from campaign.run import RunInterrupted, _interrupt_on_ctrl_c, _interrupt_signal, _is_interrupt

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


def _interrupt_when(
    process: subprocess.Popen[str], marker: str, timeout: float, signum: int = signal.SIGINT
) -> str:
    """Read output until `marker` appears, send `signum`, and return everything printed."""
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
        process.send_signal(signum)
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted (Ctrl-C)"), (signal.SIGTERM, 143, "interrupted (SIGTERM)")],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupted_test_exits_128_plus_signal_and_names_the_partial_results(
    tmp_path: Path, signum: int, code: int, said: str
) -> None:
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
    output = _interrupt_when(process, "running", timeout=120, signum=signum)
    assert process.returncode == code, output
    assert "Traceback" not in output
    match = re.search(r"partial results written to (\S+)", output)
    assert match is not None, output
    run_dir = Path(match.group(1))
    assert run_dir.is_dir() and run_dir.parent.parent == tmp_path
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] == "unknown" and results["interrupted"] == said
    assert (run_dir / "history.jsonl").stat().st_size > 0
    assert f"interrupted (exit {code})" in output


@pytest.mark.slow
def test_an_ignored_sigint_stays_ignored(tmp_path: Path) -> None:
    """A harness started with SIGINT ignored (a shell's background job) runs to its end
    through a SIGINT, as it did before the run took SIGINT itself."""
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "test", "--nodes", "1", "--time-limit", "4",
         "--nemesis", "none", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    output = _interrupt_when(process, "running", timeout=120)
    assert process.returncode == 0, output
    assert "valid: True" in output


async def test_a_signal_landing_mid_task_is_not_swallowed_by_a_cancelled_clean_up() -> None:
    """The lost Ctrl-C: with Trio's default, SIGINT raises KeyboardInterrupt in whatever
    task is running. If that task's clean-up then reaches a checkpoint inside a scope that
    is already cancelled (a request whose timeout fired), Cancelled replaces the
    KeyboardInterrupt and the scope swallows it. The run's watcher takes the signal instead
    and raises it from its own task."""
    reached_the_end = False

    async def a_client_call() -> None:
        with trio.CancelScope() as request_timeout:
            try:
                request_timeout.cancel()  # the request's timeout fired
                signal.raise_signal(signal.SIGINT)  # Ctrl-C lands mid-code, no checkpoint
            finally:
                await trio.lowlevel.checkpoint()  # clean-up: closing the connection, say

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_interrupt_on_ctrl_c)
            await a_client_call()
            await trio.sleep(5)  # the run would go on here, had the signal been lost
            reached_the_end = True
    except BaseException as error:  # noqa: BLE001 - the interrupt, in Trio's group
        assert _is_interrupt(error), error
        assert _interrupt_signal(error) == signal.SIGINT
        assert any(isinstance(leaf, RunInterrupted) for leaf in error.exceptions)
    assert not reached_the_end


@pytest.mark.slow
def test_ctrl_c_of_serve_stops_quietly(tmp_path: Path) -> None:
    process = _start("serve", str(tmp_path), "--port", "0")
    output = _interrupt_when(process, "serving", timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output and "internal error" not in output
    assert output.rstrip().endswith("stopped")
