"""Per-reward binning: raw score -> bin index b in [0, B) -> model input b / (B - 1) in [0, 1].

MIRO conditions on binned scores so that rewards with wildly different scales (and any
monotone rescaling of them) look the same to the model. Edges are fitted once per dataset and
saved as JSON that travels with the data and with every checkpoint.

Policies (documented in docs/REWARDS.md):
- NaN / inf at fit: ValueError naming the reward and the count (``nonfinite="drop"`` drops
  them instead, with a warning). At transform: ValueError by default; ``nonfinite="neutral"``
  maps them to 0.5.
- Constant reward (all fitted edges equal): carries no information; fit warns, every value
  maps to bin ``(B - 1) // 2`` and to the value 0.5 exactly.
- At most as many unique values as bins: quantile edges interpolate between the unique values, so the
  smallest value maps to 0, the largest to 1 and the rest spread in between; some bins are empty.
- Values outside the fitted range clip to the first / last bin.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from rewardflow.utils.atomic import atomic_write_bytes

FORMAT_VERSION = 1
QUANTILE_RULE = 2  # 2: equal mass over the data, ties never split (1: quantiles of the distinct values)
METHODS = ("quantile", "uniform")
NONFINITE_FIT = ("error", "drop")
NONFINITE_TRANSFORM = ("error", "neutral")
NEUTRAL_VALUE = 0.5


def _finite_values(key: str, values, nonfinite: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(v)
    n_bad = int(bad.sum())
    if n_bad:
        if nonfinite == "error":
            raise ValueError(
                f"reward {key!r}: {n_bad} of {v.size} scores are NaN or inf; fix the scores or "
                f"fit with nonfinite='drop' (`rewardflow bins fit --drop-nonfinite`) to ignore them"
            )
        warnings.warn(f"reward {key!r}: dropping {n_bad} of {v.size} NaN/inf scores before fitting bins", stacklevel=3)
        v = v[~bad]
    if v.size == 0:
        raise ValueError(f"reward {key!r}: no finite scores to fit bins on")
    return v


def quantile_edges(v: np.ndarray, num_bins: int) -> np.ndarray:
    """Equal-mass edges over the data, never splitting a block of tied values.

    Each inner edge k is the tied block whose start (the count of smaller values) lies nearest
    to k * n / B, so bin b / (B - 1) stays close to the data quantile, and a block holding many
    bins' worth of values takes one bin, leaving the ones it spans empty. A nonempty bin under
    half the mean mass (a sliver beside a large block) is merged into its smaller neighbour.
    With at most B distinct values the edges interpolate between them instead, so the smallest
    maps to 0 and the largest to 1.
    """
    u, counts = np.unique(v, return_counts=True)
    if u.size <= num_bins:
        return np.quantile(u, np.linspace(0.0, 1.0, num_bins + 1))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])  # values below each distinct value
    target = np.arange(1, num_bins) * (v.size / num_bins)
    j = np.clip(np.searchsorted(start, target), 1, u.size - 1)
    j -= (target - start[j - 1]) <= (start[j] - target)  # the nearer of the two neighbours
    first = np.concatenate([[0], j, [u.size]])  # bin b holds distinct values first[b]:first[b+1]
    _merge_slivers(first, start, v.size, num_bins)
    return np.concatenate([[u[0]], u[first[1:-1]], [u[-1]]])


def _merge_slivers(first: np.ndarray, start: np.ndarray, n: int, num_bins: int) -> None:
    """In place: fold nonempty bins under half the mean mass into their smaller nonempty neighbour.

    The merged values take the neighbour's bin, except that the bottom and top bins keep their
    index, so the smallest value stays in bin 0 and the largest in bin B - 1."""
    total = np.append(start, n)
    for _ in range(num_bins):
        occ = total[first[1:]] - total[first[:-1]]
        full = np.flatnonzero(occ > 0)
        small = [i for i, b in enumerate(full) if occ[b] < 0.5 * n / num_bins]
        if not small or full.size < 2:
            return
        i = small[0]
        b = full[i]
        lo = full[i - 1] if i > 0 else None
        hi = full[i + 1] if i + 1 < full.size else None
        x, y = (b, hi) if hi is not None and (lo is None or occ[hi] <= occ[lo]) else (lo, b)
        if x == 0 and y == num_bins - 1:
            return  # both ends pinned: a sliver there stays
        keep_lower = x == 0 or (y != num_bins - 1 and x != b)  # the neighbour's index, ends pinned
        if keep_lower:
            first[x + 1 : y + 1] = first[y + 1]  # bins x+1..y empty: x holds both
        else:
            first[x + 1 : y + 1] = first[x]  # bins x..y-1 empty: y holds both


@dataclass
class RewardBins:
    """Fitted bin edges for an ordered set of reward keys (the order is the model's order)."""

    keys: list[str]
    edges: dict[str, list[float]]
    num_bins: int = 64
    method: str = "quantile"
    version: int = FORMAT_VERSION
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = list(self.keys)
        if self.method not in METHODS:
            raise ValueError(f"unknown binning method {self.method!r}; expected one of {METHODS}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"duplicate reward keys: {self.keys}")
        missing = [k for k in self.keys if k not in self.edges]
        if missing:
            raise ValueError(f"no edges for reward(s) {missing}")
        for k in self.keys:
            e = np.asarray(self.edges[k], dtype=np.float64)
            if e.shape != (self.num_bins + 1,):
                raise ValueError(f"reward {k!r}: expected {self.num_bins + 1} edges, got {e.size}")
            if not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
                raise ValueError(f"reward {k!r}: edges must be finite and non-decreasing")
        self._inner = {k: np.asarray(self.edges[k], dtype=np.float64)[1:-1] for k in self.keys}

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        scores: Mapping[str, object],
        num_bins: int = 64,
        method: str = "quantile",
        max_samples: int | None = 100_000,
        seed: int = 0,
        nonfinite: str = "error",
    ) -> RewardBins:
        """Fit edges per reward on at most `max_samples` random scores (same indices for all)."""
        if method not in METHODS:
            raise ValueError(f"unknown binning method {method!r}; expected one of {METHODS}")
        if nonfinite not in NONFINITE_FIT:
            raise ValueError(f"nonfinite must be one of {NONFINITE_FIT}, got {nonfinite!r}")
        if not scores:
            raise ValueError("no rewards to fit bins on")
        edges: dict[str, list[float]] = {}
        for key, values in scores.items():
            v = _finite_values(key, values, nonfinite)
            if max_samples is not None and v.size > max_samples:
                # Index choice depends only on (size, seed), never on the values, so a
                # monotone rescaling of a reward selects the same samples.
                idx = np.random.default_rng(seed).choice(v.size, size=max_samples, replace=False)
                v = v[idx]
            if method == "quantile":
                e = quantile_edges(v, num_bins)
            else:
                e = np.linspace(v.min(), v.max(), num_bins + 1)
            e = np.maximum.accumulate(e)  # guards against 1-ulp interpolation wiggles
            if e[0] == e[-1]:
                warnings.warn(
                    f"reward {key!r} is constant ({e[0]!r}) on the fitted data; "
                    f"every value will map to {NEUTRAL_VALUE}",
                    stacklevel=2,
                )
            edges[key] = [float(x) for x in e]
        return cls(keys=list(scores.keys()), edges=edges, num_bins=num_bins, method=method)

    # --------------------------------------------------------------- transform
    def is_constant(self, key: str) -> bool:
        e = self.edges[key]
        return e[0] == e[-1]

    def _column(self, key: str, values, nonfinite: str) -> np.ndarray:
        if key not in self._inner:
            raise ValueError(f"unknown reward key {key!r}; the bins know {self.keys}")
        v = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(v)
        if bad.any() and nonfinite == "error":
            raise ValueError(
                f"reward {key!r}: {int(bad.sum())} scores are NaN or inf; pass nonfinite='neutral' "
                f"to map them to {NEUTRAL_VALUE} (in training: data.nonfinite_rewards=neutral)"
            )
        if self.is_constant(key):
            b = np.full(v.shape, (self.num_bins - 1) // 2, dtype=np.int64)
        else:
            b = np.searchsorted(self._inner[key], v, side="right").astype(np.int64)
        return b

    def bin_index(self, key_or_scores, values=None, nonfinite: str = "error"):
        """`bin_index(key, values) -> int array` or `bin_index({key: values}) -> {key: int array}`.

        NaN/inf entries get index -1 when ``nonfinite="neutral"``.
        """
        if isinstance(key_or_scores, Mapping):
            return {k: self.bin_index(k, v, nonfinite) for k, v in key_or_scores.items()}
        b = self._column(key_or_scores, values, nonfinite)
        b[~np.isfinite(np.asarray(values, dtype=np.float64))] = -1
        return b

    def transform(self, scores, nonfinite: str = "error") -> np.ndarray:
        """Scores -> model inputs in [0, 1], float32 of shape (n, N) in the order of `self.keys`.

        `scores` is a mapping holding every key (extra keys are ignored) or an (n, N) array whose
        columns follow `self.keys`.
        """
        if nonfinite not in NONFINITE_TRANSFORM:
            raise ValueError(f"nonfinite must be one of {NONFINITE_TRANSFORM}, got {nonfinite!r}")
        if isinstance(scores, Mapping):
            missing = [k for k in self.keys if k not in scores]
            if missing:
                raise ValueError(f"scores lack reward(s) {missing}; the bins need {self.keys}")
            cols = [np.asarray(scores[k], dtype=np.float64).reshape(-1) for k in self.keys]
            if len({c.size for c in cols}) > 1:
                raise ValueError("reward score columns have different lengths")
            arr = np.stack(cols, axis=1) if cols else np.zeros((0, 0))
        else:
            arr = np.asarray(scores, dtype=np.float64)
            if arr.ndim == 1 and len(self.keys) == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or arr.shape[1] != len(self.keys):
                raise ValueError(
                    f"expected scores of shape (n, {len(self.keys)}) for rewards {self.keys}, got {arr.shape}"
                )
        out = np.empty(arr.shape, dtype=np.float32)
        for j, k in enumerate(self.keys):
            b = self._column(k, arr[:, j], nonfinite)
            val = b / (self.num_bins - 1)
            if self.is_constant(k):
                val = np.full(b.shape, NEUTRAL_VALUE)
            val[~np.isfinite(arr[:, j])] = NEUTRAL_VALUE
            out[:, j] = val
        return out

    # ---------------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        return {
            "format": "rewardflow.bins",
            "version": self.version,
            "method": self.method,
            "num_bins": self.num_bins,
            "keys": list(self.keys),
            "edges": {k: [float(x) for x in self.edges[k]] for k in self.keys},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> RewardBins:
        if d.get("format") != "rewardflow.bins":
            raise ValueError("not a rewardflow bins file (missing format: rewardflow.bins)")
        if int(d.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"bins format version {d['version']} is newer than this rewardflow ({FORMAT_VERSION})")
        try:
            return cls(
                keys=list(d["keys"]),
                edges={k: [float(x) for x in v] for k, v in d["edges"].items()},
                num_bins=int(d["num_bins"]),
                method=str(d["method"]),
                version=int(d["version"]),
                meta=dict(d.get("meta", {})),
            )
        except KeyError as exc:
            raise ValueError(f"bins file lacks field {exc}") from None

    def save(self, path: str | os.PathLike) -> None:
        # json writes floats with repr(), the shortest string that parses back bit-exactly.
        data = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        atomic_write_bytes(path, data.encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RewardBins:
        with open(path, encoding="utf-8") as fh:
            try:
                d = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(d)

    def __eq__(self, other) -> bool:
        if not isinstance(other, RewardBins):
            return NotImplemented
        return self.to_dict() == other.to_dict()
