"""``mlci adopt``, part 3: the config files. ``params.yaml``'s dataset-specific settings reset
for the new table (a round trip that keeps every comment and every other setting) and the
task's ``plots:`` in ``dvc.yaml``.
"""

from __future__ import annotations

import io
import math
import re

from ruamel.yaml import YAML  # DVC's own YAML library: round-trips params.yaml with comments
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mlci import estimators
from mlci.adopt.infer import MAX_SLICE_CATEGORIES, Plan
from mlci.errors import UserError

ESTIMATOR = {
    "classification": ("logistic_regression", {"C": 1.0, "max_iter": 1000}),
    "regression": ("ridge", {"alpha": 1.0}),
}
BASELINE = {"classification": "prior", "regression": "mean"}
# rmse and mae are in the target's units: no default drop makes sense for every target.
MAX_REGRESSION = {
    "classification": {"accuracy": 0.01, "balanced_accuracy": 0.01, "f1_macro": 0.01},
    "regression": {"r2": 0.01},
}
MUST_BEAT = {
    "classification": ["balanced_accuracy", "f1_macro", "log_loss"],
    "regression": ["rmse", "mae", "r2"],
}
# A model trained on shuffled labels still edges past the baseline by chance; these unitless
# margins (the baseline scores about 1/classes and 0) make it fail the gate from the first PR.
BASELINE_MARGIN = {"classification": {"balanced_accuracy": 0.05}, "regression": {"r2": 0.05}}


# Above this many rows the tree candidate is histogram gradient boosting (its cost grows with
# bins, not rows); below it a random forest, steadier on small tables.
LARGE_TABLE = 20_000
# The smallest class below this share of the largest: class weights join the search.
IMBALANCED = 0.5
# Regularisation strength on a log grid: the one setting a linear model cannot do without
# (strongly collinear features need far more than the default, tiny samples need less).
LOG_GRID = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


def default_search(plan: Plan, test_size: float) -> CommentedMap:
    """A small grid for the task: the linear model's regularisation plus a tree ensemble,
    with class weights for an imbalanced target. Chosen by 5-fold CV on the training split
    (fewer folds when the rarest class is too rare for five)."""
    task = plan.task
    folds = 5
    balanced: list[str | None] = [None]
    if task == "classification":
        smallest, largest = min(plan.class_counts.values()), max(plan.class_counts.values())
        folds = max(2, min(5, math.floor(smallest * (1 - test_size))))
        if smallest < IMBALANCED * largest:
            balanced = [None, "balanced"]
    tree = "hist_gradient_boosting" if plan.rows > LARGE_TABLE else "random_forest"
    trees = (
        {"max_iter": [100, 300], "learning_rate": [0.05, 0.1]}
        if tree == "hist_gradient_boosting"
        else {"n_estimators": [200], "max_depth": [None, 8], "min_samples_leaf": [1, 5]}
    )
    if task == "classification":
        linear = {"max_iter": 1000, "C": [1 / a for a in reversed(LOG_GRID)]}
        if len(balanced) > 1:
            linear["class_weight"] = balanced
            trees["class_weight"] = balanced
        estimators = {"logistic_regression": linear, tree: trees}
    else:
        estimators = {"ridge": {"alpha": list(LOG_GRID)}, tree: trees}
    search = CommentedMap(method="grid", folds=folds)
    search["estimators"] = CommentedMap(
        (name, CommentedMap((k, _flow(v) if isinstance(v, list) else v) for k, v in space.items()))
        for name, space in estimators.items()
    )
    search.yaml_add_eol_comment("grid | random | halving", "method")
    return search


def _flow(items: list[str]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _section(doc: CommentedMap, key: str) -> CommentedMap:
    if not isinstance(doc.get(key), dict):
        doc[key] = CommentedMap()
    return doc[key]


def edit_params(text: str, plan: Plan, source: str, settings: list[str]) -> str:
    """``params.yaml`` with its dataset-specific settings reset for ``plan``; every other
    setting and every comment stays. ``settings`` collects a line per change for the user."""
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a long line
    doc = rt.load(text)
    if not isinstance(doc, CommentedMap):
        raise UserError("params.yaml: expected a mapping of settings at the top level")
    task = plan.task
    if "task" in doc:
        doc["task"] = task
    else:
        at = list(doc).index("seed") + 1 if "seed" in doc else 0
        doc.insert(at, "task", task, comment="classification | regression (the contract's target)")
        _blank_line_after(doc, "seed", "task")
    settings.append(f"task: {task}")

    data = _section(doc, "data")
    data["source"], data["format"] = source, plan.fmt
    settings.append(f"data.source: {source}")

    validate = _section(doc, "validate")
    validate["min_rows"] = max(1, min(100, plan.rows // 2))
    if int(validate.get("max_rows", 0)) < plan.rows:
        validate["max_rows"] = plan.rows * 10
    if task == "classification":
        smallest = min(plan.class_counts.values()) / plan.rows
        validate["min_class_share"] = min(0.1, _round_down(0.8 * smallest))
        settings.append(f"validate.min_class_share: {validate['min_class_share']}")
    limit = float(validate.get("max_missing_share", 0.1))
    gappy = {c.name: c.missing / plan.rows for c in plan.features if c.missing / plan.rows > limit}
    if gappy:
        validate["max_missing_share"] = min(1.0, round(max(gappy.values()) + 0.05, 2))
        shown = ", ".join(f"{k!r} {v:.0%}" for k, v in gappy.items())
        settings.append(
            f"validate.max_missing_share: {validate['max_missing_share']}, raised from {limit} "
            f"for the columns missing most ({shown}): drop them (RAW_UNUSED) and lower it"
        )
    settings.append(f"validate.min_rows: {validate['min_rows']}")

    train = _section(doc, "train")
    estimator = _section(train, "estimator")
    name, hyper = ESTIMATOR[task]
    estimator["name"], estimator["params"] = name, CommentedMap(hyper)
    train["baseline"] = BASELINE[task]
    # The template's comments name the example's task: say what this task accepts instead.
    estimator.yaml_add_eol_comment(" | ".join(estimators.names(task)), "name")
    dummy = "DummyClassifier" if task == "classification" else "DummyRegressor"
    train.yaml_add_eol_comment(
        f"{dummy} strategy the model must beat: {' | '.join(estimators.BASELINES[task])}",
        "baseline",
    )
    settings.append(f"train: {name}, baseline {BASELINE[task]}")
    test_size = float(_section(doc, "split").get("test_size", 0.25))
    search = default_search(plan, test_size)
    _replace(doc, "search", search, before="evaluate")
    # With the search on, train fits the search's choice (models/tuned.json): an edit here
    # alone would change nothing, so the file says so where that edit would be made.
    estimator.yaml_add_eol_comment(
        "used only when `search:` is empty; else the search's choice (models/tuned.json)",
        "params",
    )
    settings.append(
        "search: " + " + ".join(search["estimators"]) + f", {search['folds']}-fold CV on the "
        "training split (the tune stage; empty `search:` fits train.estimator as it is)"
    )

    slices = [
        c.name
        for c in plan.features
        if c.categories is not None and 2 <= len(c.categories) <= MAX_SLICE_CATEGORIES
    ][:2]
    _section(doc, "evaluate")["slices"] = _flow(slices)
    settings.append(f"evaluate.slices: {slices}")

    gate = _section(doc, "gate")
    gate["minimum"], gate["maximum"] = CommentedMap(), CommentedMap()
    regression = CommentedMap(MAX_REGRESSION[task])
    if task == "classification":
        regression["log_loss"] = 0.05
        regression.yaml_add_eol_comment("for log loss: the largest rise allowed", "log_loss")
    else:
        regression.yaml_add_eol_comment(
            "rmse, mae: in the target's units: add the rise you accept", "r2"
        )
    gate["max_regression"] = regression
    margin = gate.get("baseline_margin")
    if isinstance(margin, CommentedMap):  # in place: the comments stay where they are
        for key in list(margin):
            del margin[key]
        margin.update(BASELINE_MARGIN[task])
    else:
        gate["baseline_margin"] = CommentedMap(BASELINE_MARGIN[task])
    gate["must_beat_baseline"] = _flow(MUST_BEAT[task])
    # Noise-aware: a drop within the test set's sampling noise does not fail a pull request.
    gate["rule"] = "interval"
    settings.append("gate: no floors yet (the first run sets the baseline); rule: interval")

    buffer = io.StringIO()
    rt.dump(doc, buffer)
    return _drop_commented_search(buffer.getvalue())


def _drop_commented_search(text: str) -> str:
    """The template's commented-out example search (``#  ...`` lines under ``search:``) is
    replaced by the real one: drop it, so the file shows one search."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("search:"):
            inside = True
        elif inside and line.strip() and not line.startswith((" ", "#")):
            inside = False
        if inside and line.startswith("#  "):
            continue
        out.append(line)
    return "".join(out)


def _replace(doc: CommentedMap, key: str, value: CommentedMap, before: str) -> None:
    """Set ``doc[key]``, keeping its place, or put it before ``before`` when new."""
    if key in doc:
        doc[key] = value
    else:
        at = list(doc).index(before) if before in doc else len(doc)
        doc.insert(at, key, value)


def _blank_line_after(doc: CommentedMap, before: str, inserted: str) -> None:
    """Move the blank line that followed ``before`` to after ``inserted``: ruamel keeps blank
    lines as comments of the preceding key. Cosmetic, so skipped if ruamel's layout differs."""
    try:
        blank, own = doc.ca.items[before][2], doc.ca.items[inserted][2]
        if blank is not None and own is not None and not blank.value.strip():
            own.value = own.value.rstrip("\n") + blank.value
            doc.ca.items[before][2] = None
    except (KeyError, IndexError, AttributeError, TypeError):
        pass


def _round_down(x: float) -> float:
    """Two significant digits, rounded down: 0.0867 -> 0.086."""
    if x <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return round(math.floor(x / step) * step, 12)


PLOTS = {
    "classification": """plots:
  - Confusion matrix (test set):
      template: confusion
      x: predicted
      y:
        reports/plots/confusion.csv: actual
  - reports/plots/roc:
      template: simple
      x: fpr
      y: tpr
      x_label: False positive rate
      y_label: True positive rate
  - reports/plots/precision_recall:
      template: simple
      x: recall
      y: precision
  - Permutation importance (test set, macro F1 drop):
      template: bar_horizontal
      x: importance
      y:
        reports/plots/importance.csv: feature
""",
    "regression": """plots:
  # One point per test row: on the diagonal, the prediction was exact.
  - Actual vs predicted (test set):
      template: scatter
      x: predicted
      y:
        reports/plots/residuals.csv: actual
      x_label: Predicted
      y_label: Actual
  - Permutation importance (test set, R² drop):
      template: bar_horizontal
      x: importance
      y:
        reports/plots/importance.csv: feature
""",
}


def render_dvc_yaml(text: str, task: str) -> str:
    """``dvc.yaml`` with the task's ``plots:`` section and artifact label; the stages and every
    comment outside the plots section stay as they are."""
    lines = text.splitlines(keepends=True)
    try:
        start = lines.index("plots:\n")
    except ValueError:
        raise UserError(
            "dvc.yaml: no top-level `plots:` section to update for the task; restore it from "
            "the template (or add one) and run again"
        ) from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():  # keep the blank separator lines
        end -= 1
    out = [*lines[:start], PLOTS[task], *lines[end:]]
    in_artifacts = False
    other = "regression" if task == "classification" else "classification"
    for i, line in enumerate(out):
        if line and not line[0].isspace() and line.strip():
            in_artifacts = line.startswith("artifacts:")
        elif in_artifacts and line.lstrip().startswith("labels:"):
            out[i] = re.sub(rf"\b{other}\b", task, line)
    return "".join(out)
