"""The "Search" foldout of the pull-request comment."""

from __future__ import annotations

from mlci.review.search import render

TABLE = {
    "searched": True,
    "metric": "r2",
    "method": "grid",
    "folds": 5,
    "candidates": [
        {
            "estimator": "random_forest",
            "params": {"max_depth": 8},
            "mean": 0.45,
            "std": 0.08,
            "rank": 1,
        },
        {"estimator": "ridge", "params": {"alpha": 100.0}, "mean": 0.40, "std": 0.1, "rank": 2},
        {"estimator": "ridge", "params": {"alpha": 0.001}, "mean": -0.6, "std": 0.3, "rank": 3},
    ],
}
CHOSEN = {"searched": True, "estimator": "random_forest", "params": {"max_depth": 8}}
FIXED = {"searched": False, "estimator": "ridge", "params": {"alpha": 1.0}}


def test_top_candidates_chosen_and_base_difference() -> None:
    text = render(TABLE, CHOSEN, FIXED)
    assert text.startswith("<details><summary>Search</summary>")
    assert "| 1 ✓ | `random_forest` | max_depth=8 | 0.4500 ± 0.0800 |" in text
    assert "| 3 | `ridge` | alpha=0.001 | -0.6000 ± 0.3000 |" in text
    assert "**differs** from base's `ridge` (alpha=1.0)" in text
    assert "within one spread" in text  # 0.05 apart, spreads 0.08 and 0.1
    assert "same as base's" in render(TABLE, CHOSEN, CHOSEN)


def test_nothing_without_a_search_on_either_side() -> None:
    assert render({"searched": False, "candidates": []}, FIXED, FIXED) == ""
    assert render(None, None, None) == ""
    # base searched, this branch switched it off: say what train fits now
    text = render({"searched": False, "candidates": []}, FIXED, CHOSEN)
    assert "No search on this branch" in text and "**differs**" in text
