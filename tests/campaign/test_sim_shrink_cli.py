"""`raftlab sim --shrink`: a failing seed shrinks to a minimal fault schedule, written
beside its results with the replay line of the minimal run; on by default for --seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaign.cli import main
from campaign.sim.run import SimConfig, schedule_for
from campaign.sim.shrink import shrink


def test_shrinking_stays_within_its_run_budget() -> None:
    config = SimConfig(seed=4, time=60.0, nemesis="partition,kill,pause", nemesis_interval=2.0)
    original = schedule_for(config)
    assert len(original) > 6
    tried: list[int] = []

    def fails(candidate: SimConfig) -> bool:  # the predicate stands in for a simulation
        tried.append(len(candidate.schedule or []))
        return any(step["fault"] == "kill" for step in candidate.schedule or [])

    result = shrink(config, max_examples=50, max_runs=7, fails=fails)
    assert result.runs == len(tried) <= 7
    assert result.minimal is not None and result.config is not None
    assert any(step.fault == "kill" for step in result.minimal)  # still failing
    unbounded = shrink(config, max_examples=50, fails=fails)
    assert [step.fault for step in unbounded.minimal or []] == ["kill"]


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["sim", *args])
    return int(exit_.value.code)


@pytest.mark.slow
def test_a_failing_seed_is_shrunk_by_default_with_seeds(tmp_path: Path, capsys) -> None:
    code = _run(
        "--scenario",
        "vote-twice",
        "--seeds",
        "1",
        "--shrink-runs",
        "2",
        "--results-dir",
        str(tmp_path),
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "two leaders in one term" in out
    assert "shrinking the fault schedule of seed 1" in out
    assert "minimal schedule:" in out
    [document_path] = tmp_path.glob("*/*/minimal-schedule.json")
    document = json.loads(document_path.read_text())
    assert document["runs"] <= 2 and document["minimal"]
    assert document["replay"].startswith("raftlab sim --seed 1 ")
    assert "--schedule" in document["replay"]
    assert f"replay: {document['replay']}" in out
    minimal_run = Path(document["minimal_run"])
    assert json.loads((minimal_run / "results.json").read_text())["valid"] is False


@pytest.mark.slow
def test_no_shrink_with_a_single_seed_unless_asked(tmp_path: Path, capsys) -> None:
    code = _run("--scenario", "vote-twice", "--seed", "1", "--results-dir", str(tmp_path))
    out = capsys.readouterr().out
    assert code == 1 and "shrinking" not in out
    assert not list(tmp_path.glob("*/*/minimal-schedule.json"))
