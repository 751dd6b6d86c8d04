"""The history recorder: one ordered history of every client and nemesis op of a run.

Clients call `invoke` and `complete` synchronously: both only stamp the op (``index`` in
history order, ``time`` in nanoseconds since the run started), append it to the in-memory
history and wake the writer, so a client never waits on the disk. One writer task
(`write_to`) streams the ops to ``history.jsonl`` in batches, every line flushed to the
OS, so a crash of the harness leaves a usable prefix (conventions §1).

Time comes from Trio (`trio.current_time()`), never from the wall clock, so the
deterministic simulation, which runs under `trio.testing.MockClock`, records the same
times on every replay.

The recorder also keeps Jepsen's process discipline: a process has at most one op in
flight, and every invoke gets exactly one completion (a second completion, or a
completion for an op that is not open, raises `RecorderError`: that is a harness bug).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import trio

from checker.history import HistoryWriter
from checker.op import NEMESIS, Op

OP_COMPLETIONS = ("ok", "fail", "info")


class RecorderError(RuntimeError):
    """The harness broke the history's rules (two ops in flight on one process, …)."""


class OpSink(Protocol):
    """Where the writer puts ops, e.g. `checker.history.HistoryWriter` (a ``flush``
    method, if the sink has one, is called after every batch)."""

    def write(self, op: Op) -> None: ...

    def close(self) -> None: ...


class HistoryRecorder:
    """Stamps, keeps and streams the ops of one run.

    Construct it inside `trio.run` (its zero time is `trio.current_time()` then), or pass
    ``start_time`` / ``now`` explicitly.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = trio.current_time,
        start_time: float | None = None,
    ) -> None:
        self._now = now
        self.start_time = now() if start_time is None else start_time
        self.ops: list[Op] = []
        self.counts: Counter[str] = Counter()  # op type -> count, for progress displays
        self._open: dict[int | str, Op] = {}  # process -> its invoke awaiting completion
        self._max_process = -1
        self._written = 0  # ops[:written] are in the sink
        self._wake = trio.Event()
        self._closed = False
        self._last_time = 0

    # ---- stamping ---------------------------------------------------------------------

    def _elapsed_ns(self) -> int:
        # Monotonic by construction: a history's times never go backwards, whatever the
        # clock under us does (the real node clocks are skewed on purpose; this one is not,
        # but a cheap guard keeps the invariant the checker relies on).
        elapsed = int(round((self._now() - self.start_time) * 1e9))
        self._last_time = max(self._last_time, elapsed)
        return self._last_time

    def _append(self, op: Op) -> Op:
        if self._closed:
            raise RecorderError(f"op recorded after the recorder was closed: {op.to_dict()}")
        self.ops.append(op)
        self.counts[op.type] += 1
        self._wake.set()
        return op

    def invoke(self, process: int, f: str, value: Any = None, *, node: str | None = None) -> Op:
        """Record the start of an op; returns the invoke op to pass to `complete`."""
        if not isinstance(process, int) or isinstance(process, bool) or process < 0:
            raise RecorderError(f"client process must be a non-negative int, got {process!r}")
        if process in self._open:
            raise RecorderError(f"process {process} invoked {f} with an op still in flight")
        op = Op(len(self.ops), self._elapsed_ns(), "invoke", process, f, value, None, node)
        self._open[process] = op
        self._max_process = max(self._max_process, process)
        return self._append(op)

    def complete(
        self,
        invocation: Op,
        type: str,
        value: Any = None,
        *,
        error: Any = None,
        node: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Op:
        """Record the one completion (``ok`` / ``fail`` / ``info``) of an invoked op.

        ``extra``: more keys for the op (a client's per-call metadata, e.g. etcd's
        ``revision``), written to the history with it."""
        if type not in OP_COMPLETIONS:
            raise RecorderError(f"completion type must be one of {OP_COMPLETIONS}, got {type!r}")
        if self._open.get(invocation.process) is not invocation:
            raise RecorderError(
                f"completion of an op that is not in flight (process {invocation.process}, "
                f"index {invocation.index}): every invoke gets exactly one completion"
            )
        del self._open[invocation.process]
        op = Op(
            len(self.ops),
            self._elapsed_ns(),
            type,
            invocation.process,
            invocation.f,
            value,
            error,
            node if node is not None else invocation.node,
            dict(extra) if extra else {},
        )
        return self._append(op)

    def nemesis(self, f: str, value: Any = None, *, error: Any = None) -> Op:
        """Record a nemesis event (conventions §4: process "nemesis", type info)."""
        op = Op(len(self.ops), self._elapsed_ns(), "info", NEMESIS, f, value, error)
        return self._append(op)

    # ---- queries ----------------------------------------------------------------------

    def in_flight(self) -> list[Op]:
        """Invokes still waiting for their completion."""
        return list(self._open.values())

    def next_free_process(self) -> int:
        """A process number that no op has used yet (for final-read processes)."""
        return self._max_process + 1

    def elapsed(self) -> float:
        """Seconds since the run started, on the recorder's clock."""
        return self._now() - self.start_time

    # ---- streaming --------------------------------------------------------------------

    def _drain(self, sink: OpSink) -> None:
        pending = self.ops[self._written :]
        for op in pending:
            sink.write(op)
        self._written += len(pending)
        flush = getattr(sink, "flush", None)
        if pending and flush is not None:
            flush()

    async def write_to(
        self,
        sink: OpSink | str | os.PathLike[str],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The writer task: stream every op to ``sink`` until `close` is called.

        A path opens a `checker.history.HistoryWriter` (history.jsonl, each line flushed
        to the OS as written). Start it with ``await nursery.start(recorder.write_to,
        path)``. Cancellation (Ctrl-C, a crash elsewhere in the nursery) still writes every
        op recorded so far before the sink is closed.
        """
        owned = not hasattr(sink, "write")
        out: OpSink = HistoryWriter(sink, append=False) if owned else sink  # type: ignore[arg-type]
        task_status.started()
        try:
            while True:
                self._drain(out)
                if self._closed:
                    break
                self._wake = trio.Event()
                if self._written < len(self.ops):  # recorded while we were writing
                    continue
                await self._wake.wait()
        finally:
            # Synchronous: runs even under cancellation, so the file holds the whole prefix.
            self._drain(out)
            if owned:
                out.close()

    def close(self) -> None:
        """No more ops: the writer drains what is left and returns."""
        self._closed = True
        self._wake.set()
