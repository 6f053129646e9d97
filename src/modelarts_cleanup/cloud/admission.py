"""Admission: whether a request started now can be expected to finish before the deadline.

A request that starts too late is cut by the deadline after it was sent, and then nobody knows
whether it took effect. One that is never started leaves a certain answer: nothing happened.
So before each request the time left is compared with what requests take in this run.

What it learns from is the transport's exchanges: one request and its whole answer, timed from
sending to the last byte of the body. That is the unit the deadline cuts and the unit admitted;
a client call would add retries and back-off sleeps, which the transport already fits into the
deadline one attempt at a time. Only exchanges that ended with an answer are counted: a timeout
or a reset says how long we waited, not how long a request takes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

# Time for what follows the answer (reading it, logging the result) and for timer slack.
MARGIN_SECONDS = 0.1
# The estimate is a high percentile of the most recent exchanges, so one slow outlier does not
# stop the run and a service that slows down is noticed.
QUANTILE = 0.95
WINDOW = 100


class Admission:
    """How long this run's requests take, and whether one can still start. Thread-safe.

    Before any request has finished, a request is expected to take `first_guess` seconds (the
    connect timeout is a fair one: it is the longest a request may wait before it is even sent).
    """

    def __init__(
        self,
        *,
        first_guess: float,
        clock: Callable[[], float] = time.monotonic,
        margin: float = MARGIN_SECONDS,
        quantile: float = QUANTILE,
        window: int = WINDOW,
    ) -> None:
        if first_guess < 0 or margin < 0:
            raise ValueError("first_guess and margin must not be negative")
        if not 0 < quantile <= 1:
            raise ValueError("quantile must be in (0, 1]")
        if window < 1:
            raise ValueError("window must be at least 1")
        self._clock = clock
        self._margin = margin
        self._quantile = quantile
        self._durations: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._needed = first_guess + margin

    def needed(self) -> float:
        """Seconds a request that starts now should have before the deadline."""
        with self._lock:
            return self._needed

    def admits(self, deadline: float | None, *, after: float = 0.0) -> bool:
        """Whether a request starting `after` seconds from now is expected to finish in time."""
        if deadline is None:
            return True
        left = deadline - self._clock() - after
        return left > 0 and left >= self.needed()

    def record(self, seconds: float) -> None:
        """Learn from one request that finished with an answer after `seconds`."""
        with self._lock:
            self._durations.append(max(0.0, seconds))
            ordered = sorted(self._durations)
            # Nearest rank: with few samples this is the slowest one seen.
            rank = max(1, math.ceil(self._quantile * len(ordered)))
            self._needed = ordered[rank - 1] + self._margin
