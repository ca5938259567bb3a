"""The review per task, on plain data: which contract changes are found, how the gate judges
regression metrics and a base it cannot compare with, and the residuals chart's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlci.config import GateConfig
from mlci.review import contracts, gate, residuals
from mlci.review.contracts import ContractFacts
from mlci.review.sections import MISSING, params_diff
from tests.unit.test_report_charts import mermaid_blocks, parse_xychart, table_rows

REGRESSION = {
    "task": "regression",
    "primary": "r2",
    "model": {"rmse": 5.0, "mae": 4.0, "r2": 0.95},
    "baseline": {"rmse": 36.0, "mae": 30.0, "r2": -0.01},
    "test_rows": 100,
}
CFG = GateConfig(
    minimum={"r2": 0.9},
    maximum={"rmse": 6.0},
    max_regression={"rmse": 0.5, "r2": 0.01},
    must_beat_baseline=["rmse", "mae", "r2"],
)


def with_model(**metrics: float) -> dict:
    return {**REGRESSION, "model": {**REGRESSION["model"], **metrics}}


def failed(verdict: gate.Verdict) -> set[tuple[str, str | None]]:
    return {(c.kind, c.metric) for c in verdict.failures}


def test_an_equal_regression_model_passes_against_base() -> None:
    verdict = gate.decide(CFG, REGRESSION, REGRESSION)
    assert verdict.passed and verdict.basis == "base"
    assert (
        verdict.summary
        == "PASSED: all 7 checks; regressions judged by gate.rule: point, on the test-set numbers"
    )
    assert {c.kind for c in verdict.checks} == {"minimum", "maximum", "regression", "baseline"}


def test_regression_directions_lower_rmse_is_better() -> None:
    # rmse rose by 0.6 (allowed 0.5): worse; r2 unchanged.
    verdict = gate.decide(CFG, with_model(rmse=5.6), REGRESSION)
    assert failed(verdict) == {("regression", "rmse")}
    assert "rmse rose 0.6000 against base" in verdict.summary
    # A lower rmse is an improvement, however large.
    assert gate.decide(CFG, with_model(rmse=1.0), REGRESSION).passed
    # Above the ceiling fails even when base was as bad.
    assert ("maximum", "rmse") in failed(gate.decide(CFG, with_model(rmse=7.0), with_model(rmse=7)))


def test_a_model_no_better_than_the_baseline_fails() -> None:
    noise = with_model(rmse=36.5, mae=30.5, r2=-0.03)
    verdict = gate.decide(GateConfig(must_beat_baseline=["rmse", "mae", "r2"]), noise, None)
    assert failed(verdict) == {("baseline", "rmse"), ("baseline", "mae"), ("baseline", "r2")}


def test_a_model_that_edges_past_the_baseline_by_chance_fails_the_margin() -> None:
    """The shuffled-labels case: R² 0.02 against the mean's -0.01 is 'better', not useful."""
    shuffled = with_model(rmse=35.5, mae=29.8, r2=0.02)
    plain = GateConfig(must_beat_baseline=["r2"])
    assert gate.decide(plain, shuffled, None).passed
    margin = GateConfig(must_beat_baseline=["r2"], baseline_margin={"r2": 0.05})
    verdict = gate.decide(margin, shuffled, None)
    assert failed(verdict) == {("baseline", "r2")}
    assert "by more than 0.05" in verdict.summary
    assert gate.decide(margin, REGRESSION, None).passed  # a real model clears it easily
    lower = GateConfig(must_beat_baseline=["rmse"], baseline_margin={"rmse": 1.0})
    assert not gate.decide(lower, with_model(rmse=35.5), None).passed  # 0.5 better, not 1.0


def test_without_a_base_the_verdict_says_it_used_absolute_limits_only() -> None:
    verdict = gate.decide(CFG, REGRESSION, None)
    assert verdict.passed and verdict.basis == "absolute"
    assert not any(c.kind == "regression" for c in verdict.checks)
    assert verdict.summary.endswith("(absolute limits and baseline only)")
    assert verdict.notes[0] == gate.FIRST_PR
    changed = gate.contract_changed(["feature(s) removed: `bp`"])
    verdict = gate.decide(CFG, with_model(r2=0.5), None, notes=["other"], absolute=changed)
    assert verdict.notes == [changed, "other"]
    assert failed(verdict) == {("minimum", "r2")}
    assert verdict.summary.startswith("FAILED: r2 0.5000 (minimum 0.9)")
    assert verdict.to_dict()["basis"] == "absolute"


META = {
    "task": "classification",
    "target": "species",
    "features": ["island", "bill", "mass"],
    "classes": ["A", "B", "C"],
}


def test_contract_changes_name_what_changed() -> None:
    base = contracts.from_meta(META, "meta")
    assert contracts.changes(base, base) == []
    current = contracts.from_meta(
        {**META, "features": ["island", "bill", "wing"], "classes": ["A", "B", "D"]}, "meta"
    )
    assert contracts.changes(base, current) == [
        "feature(s) added: `wing`",
        "feature(s) removed: `mass`",
        "class(es) added: `D`",
        "class(es) removed: `C`",
    ]
    regression = contracts.from_meta(
        {"task": "regression", "target": "mass", "features": ["island", "bill"], "classes": []},
        "meta",
    )
    assert regression.classes is None
    assert contracts.changes(base, regression) == [
        "task: classification → regression",
        "target: `species` → `mass`",
        "feature(s) removed: `mass`",
    ]


def test_contract_facts_from_committed_reports_when_there_is_no_metadata() -> None:
    metrics = {"model": {"f1_macro": 0.9, "per_class": {"A": {}, "B": {}}}}  # no "task" key
    importance = pd.DataFrame({"feature": ["mass", "bill"], "importance": [0.2, 0.1]})
    found = contracts.facts(None, "", metrics, importance)
    assert found == ContractFacts(
        "classification", None, ("bill", "mass"), ("A", "B"), found.source
    )
    assert found.source == "committed reports"
    # Mixed sources compare on what both know (here: no target on one side).
    assert contracts.changes(found, contracts.from_meta(META, "meta")) == [
        "feature(s) added: `island`",
        "class(es) added: `C`",
    ]
    assert not contracts.facts(None, "", None, None).known
    assert contracts.code("a`b\nc") == "`a'b c`"


def frame(values: np.ndarray) -> pd.DataFrame:
    actual = np.linspace(100, 200, len(values))
    return pd.DataFrame({"actual": actual, "predicted": actual - values, "residual": values})


def test_residual_histogram_has_a_table_of_the_same_numbers() -> None:
    rng = np.random.default_rng(0)
    cur, base = frame(rng.normal(0, 5, 200)), frame(rng.normal(1, 8, 150))
    lines = residuals.section(base, cur, "`b`", "`h`", test_rows=400)
    text = "\n".join(lines)
    assert "A fixed random sample of 200 of the 400 test rows." in text
    (block,) = mermaid_blocks(lines)
    chart = parse_xychart(block)
    assert len(chart["x_bands"]) == residuals.BINS
    # Both sides as lines (a bar series would hide the other), base first; legend names them.
    (k1, line), (k2, bars) = chart["plots"]
    assert (k1, k2) == ("line", "line")
    assert [n.split()[0] for n in chart["names"]] == ["base", "this"]
    rows = table_rows(lines, "| residual from |")
    assert [float(r[3]) for r in rows] == bars and [float(r[2]) for r in rows] == line
    assert sum(int(r[5]) for r in rows) == 200 and sum(int(r[4]) for r in rows) == 150
    assert sum(bars) == pytest.approx(1.0, abs=0.01)
    # Bin edges: contiguous, covering both sides.
    assert float(rows[0][0]) <= min(cur["residual"].min(), base["residual"].min()) + 0.05
    assert float(rows[-1][1]) >= max(cur["residual"].max(), base["residual"].max()) - 0.05
    summary = table_rows(lines, "| | base | this branch |")
    assert summary[0] == ["rows", "150", "200"]


def test_residuals_without_base_or_data() -> None:
    lines = residuals.section(None, frame(np.full(10, 2.5)))
    chart = parse_xychart(mermaid_blocks(lines)[0])
    assert [k for k, _ in chart["plots"]] == ["line"] and chart["names"] == ["this branch"]
    assert residuals.section(None, None) == []
    assert residuals.section(None, pd.DataFrame({"x": [1]})) == []
    assert residuals.digits(50.0) == 0 and residuals.digits(0.05) == 3


def test_params_diff_tells_absent_from_null_and_ignores_empty_mappings() -> None:
    base = {"gate": {"minimum": {}}, "train": {"baseline": None, "estimator": {"alpha": 1.0}}}
    current = {"gate": {"minimum": {"r2": 0.5}}, "train": {"estimator": {"alpha": 1.0}}}
    assert params_diff(base, current) == [
        ("gate.minimum.r2", MISSING, 0.5),
        ("train.baseline", None, MISSING),
    ]
    assert params_diff(base, base) == []


def params(task: str, gate_cfg: dict) -> dict:
    """A minimal valid params.yaml mapping for ``task``."""
    estimator = "ridge" if task == "regression" else "logistic_regression"
    return {
        "seed": 1,
        "task": task,
        "data": {"source": "data.csv"},
        "validate": {"min_rows": 10, "max_rows": 1000, "max_missing_share": 0.1},
        "split": {"test_size": 0.25},
        "train": {"estimator": {"name": estimator}},
        "evaluate": {},
        "gate": gate_cfg,
    }


def test_gate_settings_come_from_base_unless_they_cannot_judge_this_branch(monkeypatch) -> None:
    from types import SimpleNamespace

    from mlci.review import compare
    from mlci.review.sides import Side

    mine = GateConfig(minimum={"r2": 0.1})
    monkeypatch.setattr(compare, "load_params", lambda: SimpleNamespace(gate=mine))
    current = Side("this branch", None, metrics=REGRESSION)

    base = Side("main", "a" * 40, params=params("regression", {"minimum": {"r2": 0.8}}))
    cfg, note = compare.gate_config(base, current)
    assert cfg.minimum == {"r2": 0.8} and note is None  # a pull request cannot loosen it

    other_task = Side(
        "main", "a" * 40, params=params("classification", {"minimum": {"f1_macro": 1}})
    )
    cfg, note = compare.gate_config(other_task, current)
    assert cfg is mine
    assert "its `gate:` is for classification and this branch is regression" in note
    assert "review its thresholds" in note

    broken = params("regression", {"minimum": {"r2": "high"}})
    cfg, note = compare.gate_config(Side("main", "a" * 40, params=broken), current)
    assert cfg is mine and "does not parse with this branch's schema (gate.minimum.r2" in note

    cfg, note = compare.gate_config(Side("main", "a" * 40, params={"seed": 1}), current)
    assert cfg is mine and "its params.yaml has no `gate:`" in note
