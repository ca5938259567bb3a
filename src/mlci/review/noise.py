"""Is a change beyond noise? A seeded paired bootstrap over the test rows; the rows that flipped.

Both models are scored on the same test rows (:mod:`mlci.review.paired`), so each resample of
rows gives both metrics at once and their difference: the 2.5th and 97.5th percentiles of that
difference are the 95% interval of the change. Pairing matters: on 86 rows one flipped row moves
accuracy by 1.2 points, but the two models agree on almost every row, so the paired interval is
far narrower than two separate ones would be.

Vectorised: a resample is a row of weights (how often each test row was drawn), every metric is
a weighted sum over rows, and resamples are processed in blocks of a few million weights, so
memory stays bounded at any test-set size. Classification metrics come from label codes (and
probabilities, for log loss and ROC AUC); regression metrics from the predictions.

Numpy and scipy only; nothing here reads files or knows about git.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from mlci.tasks import LOWER_IS_BETTER

LEVEL = 0.95
BLOCK = 4_000_000  # weights per block of resamples (16 MB as float32)
CLIP = 1e-15


@dataclass(frozen=True)
class RowScores:
    """One model's answers on the test rows. Classification: ``truth`` and ``pred`` are class
    codes (position in the shared class list, -1 for a label the model does not know) and
    ``proba`` the probability of each class (None when only labels are known); regression:
    ``truth`` and ``pred`` are floats."""

    truth: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        return "classification" if self.classes else "regression"


@dataclass(frozen=True)
class Change:
    """A metric's change (this branch - base) with its bootstrap interval, and what it means."""

    metric: str
    base: float
    head: float
    change: float
    low: float
    high: float
    verdict: str  # better | worse | within noise | unchanged

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Flips:
    """Rows whose answer changed. Classification: correct → wrong, wrong → correct and the exact
    McNemar p-value; regression: rows whose absolute error grew or shrank."""

    rows: int
    worse: int
    better: int
    p_value: float | None = None  # classification only

    def to_dict(self) -> dict:
        return asdict(self)


def weights(n: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of bootstrap weights (resamples × rows): how often each row was drawn, as float32
    (small integer counts are exact; half the memory traffic of float64).

    Up to ``EXACT_ROWS`` rows, the exact bootstrap: n rows drawn with replacement. Beyond, the
    Poisson bootstrap (each row's count an independent Poisson(1), which the multinomial
    approaches as n grows), drawn through a table of 16-bit uniforms: at 100,000 rows
    generating the exact counts would cost more than every metric together."""
    rng = np.random.default_rng(seed)
    per_block = max(1, BLOCK // max(n, 1))
    done = 0
    while done < samples:
        k = min(per_block, samples - done)
        if n <= EXACT_ROWS:
            drawn = rng.integers(0, n, size=(k, n), dtype=np.int64)
            drawn += (np.arange(k, dtype=np.int64) * n)[:, None]
            counts = np.bincount(drawn.ravel(), minlength=k * n).reshape(k, n)
            yield counts.astype(np.float32)
        else:
            yield POISSON_TABLE[rng.integers(0, 1 << 16, size=(k, n), dtype=np.uint16)]
        done += k


def _poisson_table() -> np.ndarray:
    """Poisson(1) counts indexed by a uniform 16-bit number (inverse CDF; counts past 8, with
    probability under 1e-5, are folded into 8)."""
    cdf = np.cumsum([math.exp(-1) / math.factorial(i) for i in range(9)])
    cdf[-1] = 1.0
    return np.searchsorted(cdf, (np.arange(1 << 16) + 0.5) / (1 << 16)).astype(np.float32)


EXACT_ROWS = 20_000
POISSON_TABLE = _poisson_table()


# --- metrics as functions of weights (W: resamples × rows) ---------------------------------------


def _onehot(codes: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(codes), k))
    ok = codes >= 0
    out[np.flatnonzero(ok), codes[ok]] = 1.0
    return out


@dataclass(frozen=True)
class _Ranking:
    """One class's scores, sorted once: what every resample's AUC reuses."""

    order: np.ndarray
    positive: np.ndarray  # in sorted order, float32
    starts: np.ndarray | None  # first row of each group of equal scores; None: all distinct

    @classmethod
    def of(cls, score: np.ndarray, positive: np.ndarray) -> _Ranking:
        order = np.argsort(score, kind="stable")
        s = score[order]
        distinct = s[1:] != s[:-1]
        starts = None if distinct.all() else np.flatnonzero(np.r_[True, distinct])
        return cls(order, positive[order].astype(np.float32), starts)


def _weighted_auc(W: np.ndarray, r: _Ranking) -> np.ndarray:
    """ROC AUC per resample: the weighted share of (positive, negative) pairs ranked right,
    ties counting half: cumulative sums of the negatives' weight below each row (over groups
    of equal scores when there are ties)."""
    ws = W[:, r.order]
    wp = ws * r.positive.astype(W.dtype, copy=False)
    wn = ws - wp
    total = wp.sum(axis=1, dtype=np.float64) * wn.sum(axis=1, dtype=np.float64)
    if r.starts is None:
        # Distinct scores: a row is positive or negative, so wp * wn = 0 row by row. Weights
        # are integer counts: float32 cumulative sums are exact up to 16 million.
        right = np.einsum("ij,ij->i", wp, np.cumsum(wn, axis=1)).astype(np.float64)
    else:
        gp = np.add.reduceat(wp, r.starts, axis=1, dtype=np.float64)
        gn = np.add.reduceat(wn, r.starts, axis=1, dtype=np.float64)
        below = np.cumsum(gn, axis=1) - gn
        right = (gp * (below + 0.5 * gn)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, right / total, np.nan)


class _Classification:
    """Precomputed per-row arrays for one model; ``metrics(W)`` gives every metric per resample."""

    def __init__(self, s: RowScores):
        k = len(s.classes)
        self.k = k
        self.truth = _onehot(s.truth, k)
        self.predicted = _onehot(s.pred, k)
        self.hits = self.truth * (s.truth == s.pred)[:, None]
        self.correct = (s.truth == s.pred).astype(float)
        self.cols = np.hstack([self.truth, self.predicted, self.hits, self.correct[:, None]])
        self.rankings: list[_Ranking] = []
        if s.proba is not None:
            present = self.truth.any(axis=0)
            # Binary: the second class's score, as roc_auc_score; else one-vs-rest, macro.
            columns = [1] if k == 2 else [j for j in range(k) if present[j]]
            self.rankings = [_Ranking.of(s.proba[:, j], self.truth[:, j] > 0) for j in columns]
        self.proba = s.proba
        self.loss = None
        if s.proba is not None:
            known = s.truth >= 0
            p_true = np.where(known, s.proba[np.arange(len(s.truth)), np.maximum(s.truth, 0)], 0)
            self.loss = -np.log(np.clip(p_true, CLIP, 1.0))

    def metrics(self, W: np.ndarray) -> dict[str, np.ndarray]:
        n = W.sum(axis=1, dtype=np.float64)
        # One product for every count: support, predicted and right per class, right overall.
        sums = (W @ self.cols.astype(W.dtype, copy=False)).astype(np.float64)
        k = self.k
        support, predicted, hits = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k : 3 * k]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, hits / support, np.nan)
            both = support + predicted
            f1 = np.where(both > 0, 2 * hits / both, np.nan)
            out = {
                "accuracy": sums[:, -1] / n,
                "balanced_accuracy": np.nanmean(recall, axis=1),
                "f1_macro": np.nanmean(f1, axis=1),
            }
        if self.loss is not None:
            out["log_loss"] = (W @ self.loss.astype(W.dtype)).astype(np.float64) / n
        if self.rankings:
            aucs = np.vstack([_weighted_auc(W, r) for r in self.rankings])
            with np.errstate(invalid="ignore"):
                out["roc_auc_ovr"] = np.nanmean(aucs, axis=0)
        return out


class _Regression:
    def __init__(self, s: RowScores):
        y = np.asarray(s.truth, float)
        self.err = y - np.asarray(s.pred, float)
        self.y = y - y.mean()  # R²'s spread is shift-free: centring keeps float32 sums exact

    def metrics(self, W: np.ndarray) -> dict[str, np.ndarray]:
        n = W.sum(axis=1, dtype=np.float64)
        # self.y is centred (see __init__): float32 sums of large squares would lose digits.
        cols = np.column_stack([self.err**2, np.abs(self.err), self.y, self.y**2])
        sums = (W @ cols.astype(W.dtype)).astype(np.float64)
        sq = sums[:, 0] / n
        spread = sums[:, 3] / n - (sums[:, 2] / n) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = np.where(spread > 1e-12, 1 - sq / spread, np.nan)
        return {"rmse": np.sqrt(sq), "mae": sums[:, 1] / n, "r2": r2}


def _scorer(s: RowScores) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    return (_Classification(s) if s.task == "classification" else _Regression(s)).metrics


# --- the comparison ------------------------------------------------------------------------------


def verdict(metric: str, low: float, high: float, diffs_all_zero: bool = False) -> str:
    """better / worse when the whole interval is on one side of 0, else within noise."""
    if diffs_all_zero:
        return "unchanged"
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 <= high:
        return "within noise"
    rose = low > 0
    return "worse" if rose == (metric in LOWER_IS_BETTER) else "better"


def compare(base: RowScores, head: RowScores, seed: int, samples: int = 1000) -> dict[str, Change]:
    """Every metric both sides have: point change, 95% paired-bootstrap interval, verdict."""
    n = len(head.truth)
    if n == 0 or len(base.truth) != n:
        return {}
    score_base, score_head = _scorer(base), _scorer(head)
    ones = np.ones((1, n))
    point_base, point_head = score_base(ones), score_head(ones)
    names = [m for m in point_head if m in point_base]
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in names}
    for W in weights(n, samples, seed):
        b, h = score_base(W), score_head(W)
        for m in names:
            diffs[m].append(h[m] - b[m])
    out = {}
    tail = (1 - LEVEL) / 2
    for m in names:
        d = np.concatenate(diffs[m])
        d = d[np.isfinite(d)]
        pb, ph = float(point_base[m][0]), float(point_head[m][0])
        if not len(d) or not (math.isfinite(pb) and math.isfinite(ph)):
            continue
        low, high = (float(q) for q in np.quantile(d, [tail, 1 - tail]))
        same = bool(np.all(np.abs(d) < 1e-12)) and abs(ph - pb) < 1e-12
        out[m] = Change(m, pb, ph, ph - pb, low, high, verdict(m, low, high, same))
    return out


def flips(base: RowScores, head: RowScores) -> Flips | None:
    """The rows whose answer changed between the two models (same rows, same order)."""
    n = len(head.truth)
    if n == 0 or len(base.truth) != n:
        return None
    if head.task == "regression":
        grew = np.abs(head.truth - head.pred) - np.abs(base.truth - base.pred)
        return Flips(n, int((grew > 1e-9).sum()), int((grew < -1e-9).sum()))
    was, now = base.pred == base.truth, head.pred == head.truth
    worse, better = int((was & ~now).sum()), int((~was & now).sum())
    return Flips(n, worse, better, mcnemar(worse, better))


def mcnemar(worse: int, better: int) -> float:
    """Exact McNemar test: under "no difference", each discordant row is a fair coin."""
    if worse + better == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(worse, worse + better, 0.5).pvalue)
