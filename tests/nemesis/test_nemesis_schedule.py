"""--nemesis parsing, and the schedule's alternation and records (virtual time)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

from nemesis.faults import FAULTS
from nemesis.faults.base import FaultEvent
from nemesis.schedule import FaultSpec, Nemesis, NemesisSpecError, parse_nemesis

# -- parsing ---------------------------------------------------------------------------


def test_parse_names_in_registry_order() -> None:
    assert parse_nemesis("kill,partition") == (FaultSpec("partition"), FaultSpec("kill"))
    assert parse_nemesis(" pause , delay ") == (FaultSpec("pause"), FaultSpec("delay"))
    assert parse_nemesis("none") == ()
    assert [spec.name for spec in parse_nemesis("all")] == list(FAULTS)
    assert [spec.name for spec in parse_nemesis("all")] == [
        "partition",
        "kill",
        "pause",
        "delay",
        "loss",
        "clock",
        "disk",
        "transfer",
        "member",
    ]


def test_parse_variants_narrow_a_fault() -> None:
    assert parse_nemesis("partition-leader,partition-one-way,kill-minority") == (
        FaultSpec("partition", ("leader", "one-way")),
        FaultSpec("kill", ("minority",)),
    )
    # The bare name enables every variant, whatever else is named.
    assert parse_nemesis("partition-one,partition") == (FaultSpec("partition"),)
    assert parse_nemesis("clock-strobe,disk-flip") == (
        FaultSpec("clock", ("strobe",)),
        FaultSpec("disk", ("flip",)),
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("partition,bogus", "unknown nemesis 'bogus'"),
        ("partitions", "unknown nemesis 'partitions'"),
        ("partition-sideways", "unknown nemesis 'partition-sideways'"),
        ("kill-bridge", "unknown nemesis 'kill-bridge'"),
        ("", "empty nemesis name"),
        ("kill,,pause", "empty nemesis name"),
        ("all,kill", "stand alone"),
        ("none,partition", "stand alone"),
    ],
)
def test_parse_errors_are_clear_and_list_the_valid_names(spec: str, message: str) -> None:
    with pytest.raises(NemesisSpecError, match=message) as raised:
        parse_nemesis(spec)
    assert isinstance(raised.value, ValueError)
    if "unknown" in message:
        text = str(raised.value)
        for name in (*FAULTS, "all", "none", "partition-one-way", "kill-leader"):
            assert name in text


# -- the schedule with fake faults -----------------------------------------------------


class FakeFault:
    """Records its calls; ``fail_start`` makes start raise after 'doing' something."""

    variants: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, calls: list[str], fail_start: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fail_start = fail_start

    async def start(self, ctx: Any, rng: random.Random) -> FaultEvent:
        self.calls.append(f"start {self.name}")
        await trio.sleep(0.5)  # faults take time to apply
        if self.fail_start:
            raise RuntimeError("node unreachable")
        return FaultEvent(f"start-{self.name}", {"fault": self.name, "draw": rng.random()})

    async def stop(self, ctx: Any) -> FaultEvent:
        self.calls.append(f"stop {self.name}")
        await trio.sleep(0.5)
        return FaultEvent(f"stop-{self.name}", {"fault": self.name})


class FakeMesh:
    def __init__(self) -> None:
        self.healed = 0

    def describe(self) -> dict[str, object]:
        return {}

    def heal(self) -> None:
        self.healed += 1


class FakeProcess:
    def __init__(self, running: bool = True, paused: bool = False) -> None:
        self.running = running
        self.paused = paused
        self.starts = 0

    def resume(self) -> None:
        self.paused = False

    async def start(self) -> None:
        self.running = True
        self.starts += 1


class FakeControl:
    def __init__(self) -> None:
        self.node_ids = ("n1", "n2", "n3")
        self.processes = {
            "n1": FakeProcess(),
            "n2": FakeProcess(paused=True),
            "n3": FakeProcess(running=False),
        }
        self.mesh = FakeMesh()
        self.cluster_id = "c"

    async def current_leader(self) -> str | None:
        return "n1"

    def node_port(self, node_id: str) -> int:
        return 1

    def data_dir(self, node_id: str) -> Path:
        return Path("/nonexistent")


def make_nemesis(
    tmp_path: Path, calls: list[str], seed: int, ops: list[dict[str, Any]], **options: Any
) -> Nemesis:
    nemesis = Nemesis(
        FakeControl(),  # type: ignore[arg-type]
        "none",
        interval=10.0,
        seed=seed,
        record=ops.append,
        log_path=tmp_path / "nemesis.jsonl",
        time_ns=lambda: int(trio.current_time() * 1e9),
    )
    nemesis.faults = [
        FakeFault("alpha", calls, **options),
        FakeFault("beta", calls),
    ]  # type: ignore[list-item]
    return nemesis


async def run_for(nemesis: Nemesis, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await nemesis.run()


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_schedule_alternates_start_and_stop_and_records_each(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    calls: list[str] = []
    ops: list[dict[str, Any]] = []
    nemesis = make_nemesis(tmp_path, calls, seed=3, ops=ops)
    await run_for(nemesis, 200.0)
    assert len(calls) >= 10
    # start X, stop X, start Y, stop Y, ...: and the run ends with the active fault stopped.
    assert len(calls) % 2 == 0
    for started, stopped in zip(calls[::2], calls[1::2], strict=True):
        assert started.startswith("start ") and stopped == "stop " + started[len("start ") :]
    assert {call.split()[1] for call in calls} == {"alpha", "beta"}
    assert nemesis.active is None
    assert all(op["type"] == "info" and op["process"] == "nemesis" for op in ops)
    assert [op["f"] for op in ops] == [
        ("start-" if call.startswith("start") else "stop-") + call.split()[1] for call in calls
    ]
    lines = [json.loads(line) for line in (tmp_path / "nemesis.jsonl").read_text().splitlines()]
    assert [line["f"] for line in lines] == [op["f"] for op in ops]
    assert [line["value"] for line in lines] == [op["value"] for op in ops]
    assert nemesis.history == lines
    times = [line["time"] for line in lines]
    assert times == sorted(times)
    assert all(line["end_time"] >= line["time"] for line in lines)
    # Waits are interval +/- half: at least 5 s between consecutive actions.
    starts = [line["time"] for line in lines]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 5e9 and max(gaps) <= 15e9 + 1e9


async def test_schedule_is_reproducible_from_the_seed(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    runs = []
    for attempt in range(2):
        calls: list[str] = []
        ops: list[dict[str, Any]] = []
        directory = tmp_path / str(attempt)
        directory.mkdir()
        nemesis = make_nemesis(directory, calls, seed=11, ops=ops)
        start = trio.current_time()
        await run_for(nemesis, 150.0)
        runs.append((calls, [(op["f"], op["value"]) for op in ops], trio.current_time() - start))
    assert runs[0][:2] == runs[1][:2]


async def test_a_failing_fault_is_recorded_and_the_schedule_goes_on(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    calls: list[str] = []
    ops: list[dict[str, Any]] = []
    nemesis = make_nemesis(tmp_path, calls, seed=3, ops=ops, fail_start=True)
    await run_for(nemesis, 200.0)
    failed = [op for op in ops if op["f"] == "start-alpha"]
    assert failed and all("node unreachable" in op["error"] for op in failed)
    # A failed start is still stopped (it may have half-applied).
    assert calls.count("start alpha") == calls.count("stop alpha")
    assert any(op["f"] == "start-beta" and "error" not in op for op in ops)


async def test_heal_all_stops_the_active_fault_and_restores_everything(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    calls: list[str] = []
    ops: list[dict[str, Any]] = []
    nemesis = make_nemesis(tmp_path, calls, seed=3, ops=ops)
    # Cancelled in the middle of a fault's start: the fault is still stopped by run().
    with trio.move_on_after(16.0):
        await nemesis.run()
    assert calls[-1].startswith("stop")
    await nemesis.start_fault(nemesis.faults[1])
    event = await nemesis.heal_all()
    ctx = nemesis.ctx
    assert calls[-2:] == ["start beta", "stop beta"]
    assert event.f == "heal-all"
    assert event.value["resumed"] == ["n2"] and event.value["started"] == ["n3"]
    assert ctx.mesh.healed == 1  # type: ignore[attr-defined]
    assert not ctx.processes["n2"].paused and ctx.processes["n3"].running
    assert ops[-1]["f"] == "heal-all"
    assert json.loads((tmp_path / "nemesis.jsonl").read_text().splitlines()[-1])["phase"] == "heal"


async def test_no_faults_means_no_ops(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    ops: list[dict[str, Any]] = []
    nemesis = Nemesis(FakeControl(), "none", interval=1.0, seed=1, record=ops.append)  # type: ignore[arg-type]
    await run_for(nemesis, 100.0)
    assert ops == []


def test_bad_interval_or_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        Nemesis(FakeControl(), "kill", interval=0, seed=1)  # type: ignore[arg-type]
    with pytest.raises(NemesisSpecError):
        Nemesis(FakeControl(), "kil", interval=1, seed=1)  # type: ignore[arg-type]
