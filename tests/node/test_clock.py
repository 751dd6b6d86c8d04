"""raftnode.clock: offset and rate changes on a fake host clock."""

from __future__ import annotations

import pytest
import trio

from raftnode.clock import ClockError, SkewableClock


class FakeHost:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_normal_rate_follows_the_host() -> None:
    host = FakeHost()
    clock = SkewableClock(host)
    start = clock.current_time()
    host.now += 2.5
    assert clock.current_time() == pytest.approx(start + 2.5)
    assert clock.deadline_to_sleep_time(start + 3.5) == pytest.approx(1.0)
    assert clock.deadline_to_sleep_time(start) == 0.0


def test_rate_scales_elapsed_time_and_sleeps_without_jumping() -> None:
    host = FakeHost()
    clock = SkewableClock(host)
    host.now += 1.0
    before = clock.current_time()
    clock.set(rate=4.0)
    assert clock.current_time() == pytest.approx(before)  # a rate change never jumps
    host.now += 1.0
    assert clock.current_time() == pytest.approx(before + 4.0)
    # 8 clock-seconds ahead at rate 4 is 2 host seconds of sleep.
    assert clock.deadline_to_sleep_time(clock.current_time() + 8.0) == pytest.approx(2.0)
    clock.set(rate=0.5)
    host.now += 2.0
    assert clock.current_time() == pytest.approx(before + 5.0)


def test_offset_is_absolute_and_resettable() -> None:
    host = FakeHost()
    clock = SkewableClock(host)
    base = clock.current_time()
    clock.set(offset=30.0)
    assert clock.current_time() == pytest.approx(base + 30.0)
    clock.set(offset=-5.0)
    assert clock.current_time() == pytest.approx(base - 5.0)
    clock.set(offset=0.0, rate=1.0)
    assert (clock.offset, clock.rate) == (0.0, 1.0)
    assert clock.current_time() == pytest.approx(base)


@pytest.mark.parametrize(
    "kwargs", [{"rate": 0.0}, {"rate": -1.0}, {"rate": float("inf")}, {"offset": float("nan")}]
)
def test_bad_values_are_refused_and_change_nothing(kwargs: dict[str, float]) -> None:
    clock = SkewableClock(FakeHost())
    with pytest.raises(ClockError):
        clock.set(**kwargs)
    assert (clock.offset, clock.rate) == (0.0, 1.0)


def test_trio_runs_on_it() -> None:
    clock = SkewableClock()
    clock.set(rate=50.0, offset=100.0)
    seen: list[float] = []

    async def main() -> None:
        start = trio.current_time()
        await trio.sleep(1.0)  # one clock-second: 20 ms of host time
        seen.append(trio.current_time() - start)

    trio.run(main, clock=clock)
    assert seen and seen[0] >= 1.0
