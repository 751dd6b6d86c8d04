"""The history recorder: ordering, Trio time, one completion per invoke, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing

from checker.history import read_jsonl
from workloads.recorder import HistoryRecorder, RecorderError


async def test_indexes_and_times_follow_history_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = HistoryRecorder()
    first = recorder.invoke(0, "read", [1, None])
    await trio.sleep(1.5)
    second = recorder.invoke(1, "write", [1, 2], node="n1")
    await trio.sleep(0.25)
    recorder.complete(second, "ok", [1, 2])
    recorder.complete(first, "fail", [1, None], error="timeout")
    nemesis = recorder.nemesis("start-partition", {"shape": "one"})

    assert [op.index for op in recorder.ops] == [0, 1, 2, 3, 4]
    # Nanoseconds of Trio time since the recorder was made (MockClock: exact).
    assert [op.time for op in recorder.ops] == [0, 1_500_000_000] + [1_750_000_000] * 3
    assert [(op.type, op.process, op.f) for op in recorder.ops] == [
        ("invoke", 0, "read"),
        ("invoke", 1, "write"),
        ("ok", 1, "write"),
        ("fail", 0, "read"),
        ("info", "nemesis", "start-partition"),
    ]
    assert recorder.ops[2].node == "n1"  # the completion inherits the invoke's node
    assert recorder.ops[3].error == "timeout"
    assert nemesis.process == "nemesis" and nemesis.type == "info"
    assert recorder.counts["invoke"] == 2 and recorder.counts["ok"] == 1
    assert recorder.next_free_process() == 2


async def test_every_invoke_gets_exactly_one_completion() -> None:
    recorder = HistoryRecorder()
    invoke = recorder.invoke(0, "write", [0, 1])
    with pytest.raises(RecorderError, match="still in flight"):
        recorder.invoke(0, "read", [0, None])
    recorder.complete(invoke, "info", error="timeout")
    with pytest.raises(RecorderError, match="exactly one completion"):
        recorder.complete(invoke, "ok")
    with pytest.raises(RecorderError, match="completion type"):
        recorder.complete(recorder.invoke(0, "read", None), "done")
    with pytest.raises(RecorderError, match="non-negative int"):
        recorder.invoke("nemesis", "read")  # type: ignore[arg-type]


async def test_times_never_go_backwards() -> None:
    readings = iter([10.0, 12.0, 11.0, 13.0])
    recorder = HistoryRecorder(now=lambda: next(readings))  # starts at 10.0
    recorder.nemesis("a")
    recorder.nemesis("b")  # clock reads 11.0 after 12.0
    recorder.nemesis("c")
    assert [op.time for op in recorder.ops] == [2_000_000_000, 2_000_000_000, 3_000_000_000]


async def test_streams_every_op_to_history_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    recorder = HistoryRecorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.write_to, path)
        invoke = recorder.invoke(0, "write", [0, 1])
        await trio.sleep(0.01)
        # Written while the run goes on, not at the end.
        assert len(path.read_text(encoding="utf-8").splitlines()) == 1
        recorder.complete(invoke, "ok", [0, 1], node="n3")
        recorder.nemesis("kill", ["n1"])
        recorder.close()
    with pytest.raises(RecorderError, match="after the recorder was closed"):
        recorder.nemesis("late")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]
    assert [op.to_dict() for op in read_jsonl(path)] == [op.to_dict() for op in recorder.ops]


async def test_a_cancelled_run_leaves_the_whole_prefix_on_disk(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "history.jsonl"
    recorder = HistoryRecorder()

    async def busy_client(process: int) -> None:
        while True:
            invoke = recorder.invoke(process, "read", None)
            await trio.sleep(0.1)
            recorder.complete(invoke, "ok", 1)

    with trio.move_on_after(5):  # a crash elsewhere in the run, or Ctrl-C
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.write_to, path)
            for process in range(3):
                nursery.start_soon(busy_client, process)
    written = read_jsonl(path)
    assert len(written) == len(recorder.ops) > 100
    assert [op.index for op in written] == list(range(len(written)))


async def test_clients_never_wait_for_the_writer(tmp_path: Path) -> None:
    """Recording is synchronous: no checkpoint, so a slow disk cannot stall a client."""

    class SlowSink:
        def __init__(self) -> None:
            self.ops: list[int] = []

        def write(self, op: object) -> None:
            self.ops.append(op.index)  # type: ignore[attr-defined]

        def close(self) -> None:
            pass

    sink = SlowSink()
    recorder = HistoryRecorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.write_to, sink)
        # 1000 ops recorded with no checkpoint in between: the writer gets them in a batch.
        for process in range(1000):
            recorder.complete(recorder.invoke(process, "read", None), "ok", None)
        assert sink.ops == []
        await trio.sleep(0)
        await trio.sleep(0)
        assert sink.ops == list(range(2000))
        recorder.close()
