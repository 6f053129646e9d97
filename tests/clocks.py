"""A fake monotonic clock whose sleeps are recorded instead of waited."""

from __future__ import annotations


class FakeTime:
    """Moves only when slept on; `oversleep` makes every sleep overrun, as real ones can."""

    def __init__(self, start: float = 1000.0, *, oversleep: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.oversleep = oversleep

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep
