"""The drift statistics: KS and chi-square tests, PSI, and the family-wise correction.

All tests of one run form one family: their p-values are corrected together (Holm by default),
so ``monitor.alpha`` bounds the chance that a run on undrifted data reports any drift at all.
A column drifts when its corrected p-value is at most ``alpha`` and its PSI is at least
``monitor.min_psi`` (a large batch makes tiny, harmless shifts significant).

An open categorical (a text column without ``isin``, e.g. a postcode) is tested over the
reference's most frequent values plus one "other" bucket: hundreds of codes seen a few times
each would make a table of sparse cells with next to no power.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlci import contract
from mlci.config import MonitorConfig
from mlci.monitoring.batches import Batch

MISSING = "(missing)"
OTHER = "(other)"
PREDICTION = "(predicted class)"
PREDICTED_VALUE = "(predicted value)"  # regression
# Added to every bin count before PSI (Jeffreys smoothing): an empty bin gets a small share
# that shrinks with the sample size, so PSI stays finite and a few rows do not blow it up.
PSI_PSEUDOCOUNT = 0.5
MC_RESAMPLES = 4999  # Monte Carlo chi-square where an expected count is below 5
MC_MIN_EXPECTED = 5.0
# Open categoricals: at most this many of the reference's values get a cell of their own, and
# only those expected at least MC_MIN_EXPECTED times in the smaller sample.
OPEN_MAX_VALUES = 10


def _numeric(values: pd.Series) -> np.ndarray:
    """Float values (anything that is not a number becomes NaN, i.e. missing)."""
    if pd.api.types.is_float_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _categorical(values: pd.Series) -> np.ndarray:
    """Category labels as strings, with ``MISSING`` for a missing value."""
    arr = values.to_numpy(dtype=object, na_value=None)
    missing = pd.isna(arr)
    out = np.empty(len(arr), dtype=object)
    out[missing] = MISSING
    out[~missing] = [v if isinstance(v, str) else str(v) for v in arr[~missing]]
    return out


def _shares(counts: np.ndarray) -> np.ndarray:
    smoothed = counts + PSI_PSEUDOCOUNT
    return smoothed / smoothed.sum()


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index, sum over bins of (cur - ref) * ln(cur / ref)."""
    r, c = _shares(np.asarray(reference, float)), _shares(np.asarray(current, float))
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_bins(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of the reference's quantile bins (ties merge bins)."""
    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def numeric_psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """PSI over the reference's quantile bins, plus one bin for missing values (a jump in
    gaps is a shift too)."""
    r_missing, c_missing = np.isnan(ref), np.isnan(cur)
    r, c = ref[~r_missing], cur[~c_missing]
    edges = numeric_bins(r, bins)
    n = len(edges) + 1
    rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=n)
    cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=n)
    return psi_from_counts(np.append(rc, r_missing.sum()), np.append(cc, c_missing.sum()))


def category_counts(
    ref: np.ndarray, cur: np.ndarray, known: tuple[str, ...]
) -> tuple[list[str], np.ndarray]:
    """Categories seen (contract categories first, then any others, then missing) and a
    2 x k table of counts: reference, current."""
    rk, rn = np.unique(ref, return_counts=True)
    ck, cn = np.unique(cur, return_counts=True)
    rc, cc = (
        dict(zip(rk.tolist(), rn.tolist(), strict=True)),
        dict(zip(ck.tolist(), cn.tolist(), strict=True)),
    )
    others = sorted((set(rc) | set(cc)) - set(known) - {MISSING})
    order = [k for k in [*known, *others, MISSING] if rc.get(k, 0) + cc.get(k, 0) > 0]
    table = np.array([[rc.get(k, 0) for k in order], [cc.get(k, 0) for k in order]])
    return order, table


def open_buckets(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Values of an open set mapped to the reference's frequent values, ``OTHER`` and ``MISSING``.

    The buckets are chosen from the reference alone (never from the batch, which would bias the
    test towards its own chance peaks)."""
    present = ref[ref != MISSING]
    values, counts = np.unique(present, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    smaller = min(len(ref), len(cur))
    top = [
        str(values[i])
        for i in order[:OPEN_MAX_VALUES]
        if counts[i] / len(ref) * smaller >= MC_MIN_EXPECTED
    ]
    keep = {*top, MISSING}

    def bucket(a: np.ndarray) -> np.ndarray:
        return np.array([v if v in keep else OTHER for v in a.tolist()], dtype=object)

    return bucket(ref), bucket(cur), top


def chi_square(observed: np.ndarray, seed: int) -> tuple[float, float, str]:
    """Chi-square test of a 2 x k table of counts (reference row, current row)."""
    if observed.shape[1] < 2:
        return 0.0, 1.0, "chi-square"
    expected = stats.contingency.expected_freq(observed)
    if expected.min() >= MC_MIN_EXPECTED:
        res = stats.chi2_contingency(observed, correction=False)
        return float(res.statistic), float(res.pvalue), "chi-square"
    # Sparse categories: the chi-square distribution is a poor approximation there (and errs
    # towards false alarms), so the p-value comes from random tables with the same margins.
    method = stats.MonteCarloMethod(n_resamples=MC_RESAMPLES, rng=np.random.default_rng(seed))
    res = stats.chi2_contingency(observed, correction=False, method=method)
    return float(res.statistic), float(res.pvalue), "chi-square (Monte Carlo)"


def adjust(pvalues: list[float], method: str) -> list[float]:
    """Multiple-testing adjusted p-values (Holm step-down, Bonferroni, or none)."""
    m = len(pvalues)
    if method == "none" or m == 0:
        return list(pvalues)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in pvalues]
    order = np.argsort(pvalues, kind="stable")
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def psi_level(psi: float, cfg: MonitorConfig) -> str:
    if psi >= cfg.psi_major:
        return "major"
    if psi >= cfg.psi_moderate:
        return "moderate"
    return "small"


def numeric_drift(
    name: str, ref_values: pd.Series, cur_values: pd.Series, cfg: MonitorConfig
) -> dict[str, Any]:
    """Kolmogorov-Smirnov test on the present values, PSI, and the mean's move in SDs."""
    ref, cur = _numeric(ref_values), _numeric(cur_values)
    r, c = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    out: dict[str, Any] = {
        "column": name,
        "kind": "numeric",
        "test": "kolmogorov-smirnov",
        "n_reference": len(r),
        "n_current": len(c),
        "missing_share_reference": _share(len(ref) - len(r), len(ref)),
        "missing_share_current": _share(len(cur) - len(c), len(cur)),
    }
    if min(len(r), len(c)) < cfg.min_batch_size:
        return {**out, "status": "not_enough_data"}
    res = stats.ks_2samp(r, c)
    sd = float(r.std(ddof=1)) or 1.0
    return {
        **out,
        "status": "tested",
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "psi": numeric_psi(ref, cur, cfg.psi_bins),
        "mean_reference": float(r.mean()),
        "mean_current": float(c.mean()),
        "mean_shift_sd": float((c.mean() - r.mean()) / sd),
    }


def categorical_drift(
    name: str,
    ref_values: pd.Series,
    cur_values: pd.Series,
    cfg: MonitorConfig,
    known: tuple[str, ...],
    seed: int,
    *,
    open_set: bool = False,
) -> dict[str, Any]:
    """Chi-square test of the category counts (missing is a category), PSI, shares.

    ``open_set``: any value is allowed (no ``known`` list); the test runs over the reference's
    frequent values and an "other" bucket."""
    r, c = _categorical(ref_values), _categorical(cur_values)
    out: dict[str, Any] = {
        "column": name,
        "kind": "categorical",
        "test": "chi-square",
        "n_reference": len(r),
        "n_current": len(c),
        "missing_share_reference": _share((r == MISSING).sum(), len(r)),
        "missing_share_current": _share((c == MISSING).sum(), len(c)),
    }
    if min(len(r), len(c)) < cfg.min_batch_size:
        return {**out, "status": "not_enough_data"}
    extra: dict[str, Any] = {}
    if open_set:
        seen = set(r.tolist())
        values = c[c != MISSING].tolist()
        extra["unseen_share_current"] = _share(sum(v not in seen for v in values), len(values))
        r, c, top = open_buckets(r, c)
        known = tuple(top)
        extra["values_tested"] = len(top)  # each with a cell of its own; the rest are "other"
    order, table = category_counts(r, c, known)
    statistic, p, test = chi_square(table, seed)
    if open_set:
        test += f" over {len(known)} frequent value(s) + other"
    return {
        **out,
        "status": "tested",
        "test": test,
        "statistic": statistic,
        "p_value": p,
        "psi": psi_from_counts(table[0], table[1]),
        "shares": {
            k: {"reference": _share(table[0, i], len(r)), "current": _share(table[1, i], len(c))}
            for i, k in enumerate(order)
        },
        "new_categories": (
            [] if open_set else [k for k in order if k not in known and k != MISSING]
        ),
        **extra,
    }


def _share(part: float, whole: int) -> float | None:
    return float(part) / whole if whole else None


def compare(
    reference: pd.DataFrame,
    batch: Batch,
    cfg: MonitorConfig,
    *,
    reference_predictions: pd.Series | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Test every contract feature (and the prediction: the class, or the predicted value for
    regression) and decide, as one family."""
    spec = contract.spec()
    results: list[dict[str, Any]] = []
    for i, feature in enumerate(spec.features):
        name = feature.name
        if name not in batch.available or not batch.available[name].any():
            results.append(
                {
                    "column": name,
                    "kind": feature.kind,
                    "status": "not_available",
                    "note": "not in the batch"
                    + (
                        " (left out of the prediction log)"
                        if batch.kind == "prediction_log"
                        else ""
                    ),
                }
            )
            continue
        ref, cur = reference[name], batch.values(name)
        if feature.kind == "numeric":
            results.append(numeric_drift(name, ref, cur, cfg))
        else:
            open_set = not feature.categories  # no `isin` in the contract: any value goes
            results.append(
                categorical_drift(
                    name, ref, cur, cfg, feature.categories, seed + i, open_set=open_set
                )
            )
    if batch.predictions is not None:
        label = PREDICTION if spec.task == "classification" else PREDICTED_VALUE
        if reference_predictions is None:
            res = {"status": "not_available", "note": "no model to predict the reference with"}
        elif spec.task == "classification":
            res = categorical_drift(
                label, reference_predictions, batch.predictions, cfg, spec.classes, seed + 99
            )
        else:  # a predicted value is tested as a numeric feature is
            res = numeric_drift(label, reference_predictions, batch.predictions, cfg)
        results.append({**res, "column": label, "kind": "prediction"})
    decide(results, cfg)
    return results


def decide(results: list[dict[str, Any]], cfg: MonitorConfig) -> None:
    tested = [r for r in results if r["status"] == "tested"]
    adjusted = adjust([r["p_value"] for r in tested], cfg.correction)
    for r, p_adj in zip(tested, adjusted, strict=True):
        r["p_adjusted"] = p_adj
        r["psi_level"] = psi_level(r["psi"], cfg)
        significant = p_adj <= cfg.alpha
        r["significant"] = significant
        r["drifted"] = bool(significant and r["psi"] >= cfg.min_psi)
    for r in results:
        r.setdefault("drifted", False)
