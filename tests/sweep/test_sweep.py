"""Seed sweeps on every executor: the same summaries, failing folders in results/, lost
workers re-run, bad executors refused. Real worker processes and a real Dask LocalCluster
(two single-threaded worker processes): the simulation drives trio's module-level
scheduler RNG, so threads of one process must not run two seeds at once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from campaign.sim.scenarios import SCENARIOS
from campaign.sweep import (
    DASK,
    LOCAL,
    ExecutorSpec,
    InProcessExecutor,
    LocalPoolExecutor,
    comparable,
    open_executor,
    parse_executor,
    run_sim_sweep,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # sweep_chaos, importable by name in worker processes

import sweep_chaos  # noqa: E402

distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed")


def test_parse_executor() -> None:
    assert parse_executor("local") == ExecutorSpec(LOCAL)
    assert parse_executor("dask") == ExecutorSpec(DASK)
    assert parse_executor("dask://10.0.0.5:8786") == ExecutorSpec(DASK, "tcp://10.0.0.5:8786")
    assert parse_executor("dask://[::1]:8786").address == "tcp://[::1]:8786"
    for bad in ("", "threads", "dask://host", "dask://:8786", "dask://h:0", "dask://h:99999"):
        with pytest.raises(ValueError):
            parse_executor(bad)
    assert isinstance(open_executor(ExecutorSpec(LOCAL), 1), InProcessExecutor)
    assert isinstance(open_executor(ExecutorSpec(LOCAL), 2), LocalPoolExecutor)


def _configs() -> list:
    # stale-local-reads in its test time detects on some of seeds 3-5 and not on others (which
    # ones moves with any change to the core): a mixed sweep, so shipped folders and
    # summaries of both kinds are compared.
    scenario = SCENARIOS["stale-local-reads"]
    return [scenario.config(seed, time=scenario.test_time) for seed in (3, 4, 5)]


@pytest.mark.slow
def test_local_and_dask_sweeps_agree(tmp_path: Path) -> None:
    lines: dict[str, list[str]] = {"local": [], "dask": []}
    local = run_sim_sweep(
        _configs(), executor=ExecutorSpec(LOCAL), jobs=1, results_dir=tmp_path / "local",
        echo=lines["local"].append, progress=False,
    )
    dask = run_sim_sweep(
        _configs(), executor=ExecutorSpec(DASK), jobs=2, results_dir=tmp_path / "dask",
        echo=lines["dask"].append, progress=False,
    )
    assert not local.interrupted and not dask.interrupted
    assert [comparable(s) for s in local.summaries] == [comparable(s) for s in dask.summaries]
    assert local.summary_line() == dask.summary_line()
    assert 0 < len(local.not_valid) < 3, local.summary_line()  # both kinds compared
    assert len({s["worker"] for s in dask.summaries}) >= 1
    for one, other in zip(local.summaries, dask.summaries, strict=True):
        if one["valid"] is True:
            assert one["run_dir"] is None and other["run_dir"] is None
            continue
        # The failing seed's folder was shipped back from the Dask worker as bytes and
        # written under the user's results directory: same seed, same history bytes.
        local_dir, dask_dir = Path(one["run_dir"]), Path(other["run_dir"])
        assert dask_dir.is_relative_to(tmp_path / "dask")
        for name in ("history.jsonl", "results.json", "report.html", "campaign.json"):
            assert (dask_dir / name).is_file(), name
        assert (local_dir / "history.jsonl").read_bytes() == (
            dask_dir / "history.jsonl"
        ).read_bytes()
        assert one["anomalies"] and one["anomalies"] == other["anomalies"]
        assert f"--seed {one['seed']} " in one["replay"]
    assert (tmp_path / "dask" / "bug-stale-local-reads" / "latest").is_symlink()
    # The per-seed lines differ only in wall times and folder names.
    assert len(lines["local"]) == len(lines["dask"]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("spec", [ExecutorSpec(LOCAL), ExecutorSpec(DASK)], ids=["local", "dask"])
def test_a_lost_worker_s_item_is_run_again(tmp_path: Path, spec: ExecutorSpec) -> None:
    items = [{"n": n, "dir": str(tmp_path), "victim": 2} for n in range(5)]
    with open_executor(spec, 2) as pool:
        results = dict(pool.map_unordered(sweep_chaos.die_once, items))
    assert sorted(results) == list(range(5))
    assert [results[i]["n"] for i in range(5)] == list(range(5))
    victim_attempts = (tmp_path / "attempt-2").read_text().split()
    assert len(victim_attempts) >= 2  # killed once, then run again in another process
    assert results[2]["pid"] != int(victim_attempts[0])


@pytest.mark.slow
@pytest.mark.parametrize("executor", [["--jobs", "2"], ["--executor", "dask", "--jobs", "2"]],
                         ids=["local", "dask"])
def test_ctrl_c_cancels_the_sweep_cleanly(tmp_path: Path, executor: list[str]) -> None:
    """A real SIGINT to the whole process group (as a terminal sends it): exit 130, the
    seeds done so far summarised, no worker process left behind, no worker traceback."""
    import os
    import signal
    import subprocess
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "sim", "--seeds", "1..40", "--time", "3",
         "--nodes", "3", "--results-dir", str(tmp_path), *executor],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("seed "), first
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "interrupted after" in err and "of 40 seeds" in err
    assert "Traceback" not in err, err
    assert "seeds:" in out
    deadline = time.monotonic() + 10
    while True:  # every worker of the group is gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "worker processes outlived the sweep"
        time.sleep(0.2)


def test_a_bad_executor_is_refused(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from campaign.sim.cli import sim_command

    result = CliRunner().invoke(
        sim_command, ["--seeds", "1..2", "--executor", "mpi", "--results-dir", str(tmp_path)]
    )
    assert result.exit_code != 0 and "--executor" in result.output
    assert "dask://HOST:PORT" in result.output
