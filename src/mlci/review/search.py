"""The pull request's "Search" foldout: the tune stage's top candidates with their
cross-validation score and spread, the one chosen, and whether base chose another.

Reads this branch's ``reports/search.json`` and ``models/tuned.json`` and base's
``models/tuned.json`` (committed, read with ``git show``). Nothing when neither side searched.
"""

from __future__ import annotations

from typing import Any

from mlci import history, paths

TOP = 5
# Scores within this many spreads (fold standard deviations) of the chosen one are a tie in
# practice: the folds cannot tell them apart.
NOISE_SPREADS = 1.0


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def _choice(tuned: dict | None) -> str:
    if not isinstance(tuned, dict) or "estimator" not in tuned:
        return "nothing recorded"
    return f"`{tuned['estimator']}` ({_params(tuned.get('params') or {})})"


def _same(a: dict | None, b: dict | None) -> bool:
    keys = ("estimator", "params")
    return isinstance(a, dict) and isinstance(b, dict) and all(a.get(k) == b.get(k) for k in keys)


def markdown(base_sha: str | None) -> str:
    """The foldout, or "" when neither this branch nor base ran a search."""
    table = history.read_json(paths.SEARCH) if paths.SEARCH.is_file() else None
    tuned = history.read_json(paths.TUNED) if paths.TUNED.is_file() else None
    base = history.show_json(base_sha, paths.TUNED) if base_sha else None
    return render(table, tuned, base)


def render(table: dict | None, tuned: dict | None, base: dict | None) -> str:
    searched = isinstance(table, dict) and table.get("searched")
    base_searched = isinstance(base, dict) and base.get("searched")
    if not searched and not base_searched:
        return ""
    if _same(tuned, base):
        versus = "the same as base's"
    elif base is None:
        versus = "base recorded no choice"
    else:
        versus = f"**differs** from base's {_choice(base)}"
    lines = ["<details><summary>Search</summary>", ""]
    if not searched:
        lines += [f"No search on this branch: train fits {_choice(tuned)}, {versus}.", ""]
        return "\n".join([*lines, "</details>", ""])
    assert isinstance(table, dict)
    candidates = table.get("candidates") or []
    metric = table.get("metric", "score")
    lines += [
        f"Chosen: {_choice(tuned)}, {versus}. {table.get('method')} search, "
        f"{len(candidates)} candidates, {table.get('folds')}-fold cross-validation on the "
        f"training split, by {metric} (mean ± spread over the folds; the test set took no "
        "part).",
        "",
        f"| # | estimator | hyperparameters | {metric} |",
        "|---|---|---|---|",
    ]
    best = candidates[0] if candidates else None
    for c in candidates[:TOP]:
        mark = " ✓" if c is best else ""
        lines.append(
            f"| {c['rank']}{mark} | `{c['estimator']}` | {_params(c['params'])} | "
            f"{c['mean']:.4f} ± {c['std']:.4f} |"
        )
    if best is not None and len(candidates) > 1:
        runner = candidates[1]
        gap = abs(best["mean"] - runner["mean"])
        if gap <= NOISE_SPREADS * max(best["std"], runner["std"]):
            lines += [
                "",
                f"The runner-up is within one spread ({gap:.4f}): the folds cannot tell them "
                "apart.",
            ]
    return "\n".join([*lines, "", "</details>", ""])
