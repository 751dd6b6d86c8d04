"""The Python API (`from raftlab import ...`) and the pytest plugin, used as a user would."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checker.op import Op
from raftlab import RunResult, VerdictError, check_history, run_campaign, run_simulation

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def _stale_history() -> list[Op]:
    return [
        Op(0, 1 * S, "invoke", 0, "write", [1, 804]),
        Op(1, int(1.1 * S), "ok", 0, "write", [1, 804]),
        Op(2, 12 * S, "invoke", 1, "write", [1, 3]),
        Op(3, int(12.2 * S), "ok", 1, "write", [1, 3]),
        Op(4, int(12.31 * S), "invoke", 2, "read", [1, None]),
        Op(5, int(12.4 * S), "ok", 2, "read", [1, 804]),
    ]


def test_check_history_names_the_anomaly(tmp_path: Path) -> None:
    result = check_history(_stale_history(), out=tmp_path / "why")
    assert isinstance(result, RunResult)
    assert (result.valid, result.exit_code) == (False, 1)
    assert result.anomalies[0].startswith("stale read: process 2 read 804 from key 1 at 12.310 s")
    assert result.anomalies[0].endswith("[linearizable]")
    assert (tmp_path / "why" / "explanation.html").is_file()
    with pytest.raises(VerdictError) as raised:
        result.raise_for_verdict()
    assert "stale read" in str(raised.value)
    valid = check_history(_stale_history()[:4])
    assert (valid.valid, valid.anomalies, valid.exit_code) == (True, [], 0)
    assert valid.raise_for_verdict() is valid
    # A read of nil means "absent" for raftlab's own ops, as `raftlab check` reads jsonl.
    nil_after_write = [*_stale_history()[:4], Op(4, 13 * S, "invoke", 2, "read", [1, None])]
    nil_after_write.append(Op(5, 14 * S, "ok", 2, "read", [1, None]))
    assert check_history(nil_after_write).valid is False
    assert check_history(nil_after_write, nil_read="unknown").valid is True


def test_run_simulation_seeds_and_a_caught_bug(tmp_path: Path) -> None:
    fine = run_simulation("1..2", time=2.0, nodes=3, nemesis="none", results_dir=tmp_path)
    assert (fine.valid, fine.exit_code, fine.anomalies) == (True, 0, [])
    assert [run.seed for run in fine.runs] == [1, 2] and fine.run_dir is None
    caught = run_simulation(1, scenario="vote-twice", results_dir=tmp_path)
    assert (caught.valid, caught.exit_code) == (False, 1)
    assert caught.anomalies[0].startswith("two leaders in one term: term")
    assert caught.run_dir is not None and (caught.run_dir / "report.html").is_file()
    assert caught.replay is not None and caught.replay.startswith("raftlab sim --seed 1 ")
    assert caught.replay in caught.summary()
    with pytest.raises(TypeError, match="unknown simulation settings"):
        run_simulation(1, tme=3)
    with pytest.raises(ValueError, match="has no option 'nokey'"):
        run_simulation(1, workload_options={"nokey": 1})


@pytest.mark.slow
def test_run_campaign_with_real_processes(tmp_path: Path) -> None:
    result = run_campaign(
        nodes=1,
        time_limit=1.5,
        nemesis="none",
        recovery_time=0.2,
        seed=3,
        results_dir=str(tmp_path),
        name="api",
    )
    assert (result.valid, result.exit_code, result.anomalies) == (True, 0, [])
    assert result.run_dir is not None and result.run_dir.parent.parent == tmp_path
    assert (result.run_dir / "junit.xml").is_file() and result.seed == 3


def test_the_plugin_imports_nothing_heavy() -> None:
    """It loads in every pytest run once raftlab is installed: pytest and stdlib only."""
    code = (
        "import sys, raftlab.pytest_plugin; "
        "heavy = [m for m in ('trio', 'matplotlib', 'campaign', 'checker', 'click', 'rich', "
        "'networkx', 'raftlab.api') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_the_plugin_in_a_real_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_fixture_valid(raftlab):
                result = raftlab.simulate(seeds=1, time=2.0, nodes=3, nemesis="none")
                assert result.valid is True

            def test_fixture_expects_the_bug(raftlab):
                raftlab.simulate(seeds=1, scenario="vote-twice", expect=False)

            @pytest.mark.raftlab_sim(seeds=1, scenario="vote-twice")
            def test_marker_fails_with_the_anomaly():
                pass
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed, 2 passed" in out, out
    assert "FAILED test_user.py::test_marker_fails_with_the_anomaly" in out
    assert "raftlab: INVALID (seed 1)" in out
    assert "two leaders in one term" in out and "replay: raftlab sim --seed 1" in out
    assert "raftlab/pytest_plugin.py" not in out  # the summary, not the plugin's traceback
