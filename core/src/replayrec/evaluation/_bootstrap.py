"""Bootstrap confidence intervals over users."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["bootstrap_ci", "paired_lift", "paired_ratio"]

F64 = npt.NDArray[np.float64]


def bootstrap_ci(
    values: dict[str, F64],
    weights: dict[str, F64] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the (weighted) mean of each per-user metric, resampling users with replacement.

    All metrics share the same resamples, so their intervals are consistent with each other. NaN entries are
    left out of their metric's mean.
    """
    names = list(values)
    if not names or n_boot <= 0:
        return {}
    n = next(iter(values.values())).size
    w = weights or {}
    vals = np.stack([np.nan_to_num(values[k], nan=0.0) for k in names], axis=1)
    wts = np.stack([w.get(k, np.ones(n)) * ~np.isnan(values[k]) for k in names], axis=1)
    rng = np.random.default_rng(seed)
    means = np.empty((n_boot, len(names)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        num = counts @ (vals * wts)
        den = counts @ wts
        with np.errstate(invalid="ignore", divide="ignore"):
            means[done : done + b] = num / den
        done += b
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, tuple[float, float]] = {}
    for j, k in enumerate(names):
        col = means[:, j][np.isfinite(means[:, j])]
        out[k] = (
            (float(np.percentile(col, lo)), float(np.percentile(col, hi)))
            if col.size
            else (float("nan"),) * 2
        )
    return out


def paired_lift(
    base: F64, other: F64, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Relative lift ``mean(other) / mean(base) - 1`` of two metrics measured on the same users, with a
    percentile interval from resampling users (the same resample for both, so the pairing is kept)."""
    if base.shape != other.shape:
        raise ValueError(f"paired values need the same users: {base.shape} vs {other.shape}")
    ok = np.isfinite(base) & np.isfinite(other)
    a, b = base[ok], other[ok]
    if a.size == 0 or a.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(b.mean() / a.mean() - 1)
    if n_boot <= 0:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    lifts = np.empty(n_boot)
    for i in range(0, n_boot, 100):
        m = min(100, n_boot - i)
        counts = np.stack([np.bincount(rng.integers(0, a.size, a.size), minlength=a.size) for _ in range(m)])
        with np.errstate(invalid="ignore", divide="ignore"):
            lifts[i : i + m] = (counts @ b) / (counts @ a) - 1
    lifts = lifts[np.isfinite(lifts)]  # resamples whose base mean is 0 have no defined lift
    if lifts.size == 0:
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(lifts, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return point, float(lo), float(hi)


def paired_ratio(
    num: F64, den: F64, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``sum(num) / sum(den)`` of per-user sums measured on the same users (e.g. hits of two arms), with a
    percentile interval from resampling users: event-level rates, clustered by user."""
    if num.shape != den.shape:
        raise ValueError(f"paired values need the same users: {num.shape} vs {den.shape}")
    if den.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(num.sum() / den.sum())
    if n_boot <= 0 or num.size == 0:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, num.size, num.size), minlength=num.size)
                       for _ in range(n_boot)]).astype(np.float64)  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = (counts @ num) / (counts @ den)
    # a resample whose baseline has no hit has an infinite ratio: kept (it is the top of the interval);
    # only 0 / 0 is undefined
    ratios = ratios[~np.isnan(ratios)]
    if ratios.size == 0:
        return point, float("nan"), float("nan")
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return point, float(np.percentile(ratios, lo)), float(np.percentile(ratios, hi))
