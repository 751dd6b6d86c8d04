"""start-clock / stop-clock: skew the clocks of a random set of nodes; reset them on stop.

Modes (Jepsen's clock nemesis, without root: see ``nemesis.clock``):
- ``bump``: jump each target's clock by +/- 2**u seconds, u uniform in [-4, 6]
  (60 ms to 64 s, forwards or backwards);
- ``strobe``: flip each target's offset between +delta and 0 every ``period`` for
  ``strobe_seconds`` (run inside start, as Jepsen's strobe op takes its duration);
- ``rate``: make each target's clock run fast or slow (x0.5, x0.8, x1.25 or x2): timers
  fire early or late, the closest we get to a drifting oscillator.
A node that is down or paused cannot take the request: it is listed under ``errors``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

import trio

from nemesis.clock import NORMAL_CLOCK, ClockFaultError, ClockSetting, set_clock, strobe
from nemesis.control import ClusterControl
from nemesis.faults.base import FaultEvent, check_variants, node_address

MODES: tuple[str, ...] = ("bump", "strobe", "rate")
RATES: tuple[float, ...] = (0.5, 0.8, 1.25, 2.0)


class ClockFault:
    name: ClassVar[str] = "clock"
    variants: ClassVar[tuple[str, ...]] = MODES

    def __init__(self, modes: Sequence[str] = (), strobe_seconds: float = 3.0) -> None:
        self.modes = check_variants(self.name, tuple(modes), MODES)
        self.strobe_seconds = strobe_seconds
        self.skewed: list[str] = []

    async def _apply(
        self, ctx: ClusterControl, node_id: str, setting: ClockSetting, errors: dict[str, str]
    ) -> bool:
        host, port = node_address(ctx, node_id)
        process = ctx.processes[node_id]
        if not process.running or process.paused:
            errors[node_id] = "down" if not process.running else "paused"
            return False
        try:
            await set_clock(host, port, cluster_id=ctx.cluster_id, setting=setting)
        except ClockFaultError as error:
            errors[node_id] = str(error)
            return False
        return True

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        node_ids = list(ctx.node_ids)
        mode = rng.choice(self.modes)
        targets = sorted(rng.sample(node_ids, rng.randint(1, len(node_ids))))
        value: dict[str, Any] = {"fault": self.name, "mode": mode, "nodes": targets}
        errors: dict[str, str] = {}
        if mode == "strobe":
            delta = 2 ** rng.uniform(-4, 4)
            period = rng.uniform(0.05, 0.5)
            value.update(delta=delta, period=period, seconds=self.strobe_seconds)
            flips: dict[str, int] = {}

            async def strobe_one(node_id: str) -> None:
                host, port = node_address(ctx, node_id)
                try:
                    flips[node_id] = await strobe(
                        host,
                        port,
                        cluster_id=ctx.cluster_id,
                        delta=delta,
                        period=period,
                        duration=self.strobe_seconds,
                    )
                except ClockFaultError as error:
                    errors[node_id] = str(error)

            async with trio.open_nursery() as nursery:
                for node_id in targets:
                    nursery.start_soon(strobe_one, node_id)
            value["flips"] = flips
            self.skewed = sorted(flips)
        else:
            settings: dict[str, dict[str, float]] = {}
            for node_id in targets:
                if mode == "bump":
                    setting = ClockSetting(offset=rng.choice((-1, 1)) * 2 ** rng.uniform(-4, 6))
                else:
                    setting = ClockSetting(rate=rng.choice(RATES))
                if await self._apply(ctx, node_id, setting, errors):
                    settings[node_id] = setting.describe()
                    self.skewed.append(node_id)
            value["settings"] = settings
        if errors:
            value["errors"] = errors
        return FaultEvent("start-clock", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        errors: dict[str, str] = {}
        reset: list[str] = []
        for node_id in self.skewed:
            if await self._apply(ctx, node_id, NORMAL_CLOCK, errors):
                reset.append(node_id)
        self.skewed = []
        value: dict[str, Any] = {"fault": self.name, "reset": reset}
        if errors:
            value["errors"] = errors
        return FaultEvent("stop-clock", value)
