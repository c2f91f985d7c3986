"""Latency timing: per-call milliseconds on one core, summarised as medians over repeated runs."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["one_core", "percentiles", "time_calls"]


@contextmanager
def one_core() -> Iterator[None]:
    """BLAS (and torch, when a stage has imported it: build the stages before entering) limited to one
    thread."""
    with threadpool_limits(limits=1):
        torch = sys.modules.get("torch")  # never imported here: only limited when already in use
        before = torch.get_num_threads() if torch is not None else None
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)


def time_calls(
    fn: Callable[[Any], object], inputs: Sequence[Any], repeat: int, warm: int = 20
) -> list[list[float]]:
    """``fn(x)`` for every input, ``repeat`` times after ``warm`` warm-up calls: milliseconds per call."""
    for x in inputs[:warm]:
        fn(x)
    runs = []
    for _ in range(repeat):
        times = []
        for x in inputs:
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1e3)
        runs.append(times)
    return runs


def percentiles(runs: Sequence[Sequence[float]]) -> dict[str, float]:
    """p50, p99 and mean of each run, the median over runs."""
    arrs = [np.asarray(r, dtype=np.float64) for r in runs]
    return {
        "p50_ms": round(statistics.median(float(np.percentile(a, 50)) for a in arrs), 3),
        "p99_ms": round(statistics.median(float(np.percentile(a, 99)) for a in arrs), 3),
        "mean_ms": round(statistics.median(float(a.mean()) for a in arrs), 3),
    }
