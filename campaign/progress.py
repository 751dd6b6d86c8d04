"""The live progress of a run: a rich panel on a terminal, plain lines elsewhere (CI logs).

The campaign keeps a `ProgressState` up to date (the recorder's counts, the nemesis's
active faults, the leader seen by status polls) and a `ProgressDisplay` task redraws it a
few times a second. Nothing here touches the cluster.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from checker.op import NEMESIS, Op


@dataclass(slots=True)
class ProgressState:
    """What the display shows; the campaign mutates it, the display only reads."""

    name: str = "raftlab"
    time_limit: float = 0.0
    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    fail: int = 0
    info: int = 0
    invokes: int = 0
    active_faults: list[str] = field(default_factory=list)
    leader: str | None = None
    term: int | None = None
    recent_completions: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))

    def elapsed(self, now: float | None = None) -> float:
        return (now if now is not None else time.monotonic()) - self.started

    def observe(self, op: Op) -> None:
        """Count one history op (called by the recorder's observer for every op)."""
        if op.process == NEMESIS:
            self._observe_nemesis(op)
            return
        if op.type == "invoke":
            self.invokes += 1
            return
        if op.type == "ok":
            self.ok += 1
        elif op.type == "fail":
            self.fail += 1
        elif op.type == "info":
            self.info += 1
        self.recent_completions.append(time.monotonic())

    def _observe_nemesis(self, op: Op) -> None:
        # Shown as the last few nemesis actions; the nemesis also sets active_faults
        # directly when it can say exactly what is in force.
        if op.type != "info":
            return
        label = op.f if op.value is None else f"{op.f} {_brief(op.value)}"
        if op.f.startswith("stop-") or op.f in ("start", "resume", "heal", "heal-all"):
            opened = op.f.replace("stop-", "start-")
            self.active_faults = [
                fault for fault in self.active_faults if not fault.startswith(opened)
            ]
            if op.f in ("start", "resume"):
                self.active_faults = [
                    f for f in self.active_faults if not f.startswith(("kill", "pause"))
                ]
            if op.f in ("heal", "heal-all"):
                self.active_faults = []
        else:
            self.active_faults = (self.active_faults + [label])[-6:]

    def ops_per_second(self, window: float = 5.0, now: float | None = None) -> float:
        now = now if now is not None else time.monotonic()
        completions = self.recent_completions
        while completions and completions[0] < now - window:
            completions.popleft()
        span = min(window, max(self.elapsed(now), 1e-9))
        return len(completions) / span


def _brief(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_line(state: ProgressState) -> str:
    """One plain line: what a CI log gets every few seconds."""
    faults = ", ".join(state.active_faults) if state.active_faults else "none"
    leader = state.leader or "?"
    if state.term is not None:
        leader += f" (term {state.term})"
    return (
        f"[{state.name}] {state.phase} {state.elapsed():5.1f}/{state.time_limit:.0f}s "
        f"{state.ops_per_second():6.1f} ops/s ok={state.ok} fail={state.fail} info={state.info} "
        f"leader={leader} faults={faults}"
    )


def progress_table(state: ProgressState) -> Table:
    table = Table(title=f"raftlab test {state.name}", show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column()
    limit = state.time_limit or 1.0
    fraction = min(state.elapsed() / limit, 1.0)
    bar = "█" * int(fraction * 30) + "░" * (30 - int(fraction * 30))
    table.add_row("phase", state.phase)
    table.add_row("elapsed", f"{bar} {state.elapsed():.1f} / {state.time_limit:.0f} s")
    table.add_row("rate", f"{state.ops_per_second():.1f} ops/s")
    counts = Text()
    counts.append(f"ok {state.ok}", style="green")
    counts.append("  ")
    counts.append(f"fail {state.fail}", style="red")
    counts.append("  ")
    counts.append(f"info {state.info}", style="yellow")
    table.add_row("completions", counts)
    table.add_row(
        "leader",
        (state.leader or "none known") + ("" if state.term is None else f" (term {state.term})"),
    )
    table.add_row("faults", ", ".join(state.active_faults) if state.active_faults else "none")
    return table


class ProgressDisplay:
    """Redraws `state` until cancelled: rich Live on a terminal, a plain line every few seconds otherwise."""

    def __init__(
        self,
        state: ProgressState,
        *,
        stream: TextIO | None = None,
        force_terminal: bool | None = None,
        line_interval: float = 5.0,
        refresh_interval: float = 0.25,
    ) -> None:
        self.state = state
        self.console = Console(file=stream, force_terminal=force_terminal, stderr=stream is None)
        self.line_interval = line_interval
        self.refresh_interval = refresh_interval

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    async def run(self) -> None:
        if self.live:
            with Live(
                progress_table(self.state),
                console=self.console,
                auto_refresh=False,
                transient=False,
            ) as live:
                try:
                    while True:
                        live.update(progress_table(self.state), refresh=True)
                        await trio.sleep(self.refresh_interval)
                finally:
                    live.update(progress_table(self.state), refresh=True)
        else:
            try:
                while True:
                    await trio.sleep(self.line_interval)
                    self.console.print(
                        progress_line(self.state), markup=False, highlight=False, soft_wrap=True
                    )
            finally:
                self.console.print(
                    progress_line(self.state), markup=False, highlight=False, soft_wrap=True
                )
