"""Benchmarks: our function against the official SDK's one-at-a-time loop and the physical limit.

`python -m benchmarks [--quick]` prints the tables; they are numbers to read, not timed tests.
"""

from __future__ import annotations
