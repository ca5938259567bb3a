"""The report as markdown: gate verdict first, then `dvc metrics diff` / `dvc params diff` style
tables, the data check, slices, charts (Mermaid with their numbers as tables), cost and provenance.

Every section follows the task: classification shows per-class metrics, macro F1 per slice, a
confusion matrix and ROC / precision-recall curves; regression shows RMSE per slice and the
residuals. When the base cannot be compared with (first pull request, or a changed contract),
the report says why near the top and shows base numbers, if any, as "not compared".

The same document is the pull-request comment, which has no image host: the PNG plots are only
linked (relative links the comment poster points at the run's artifact), never embedded.
"""

from __future__ import annotations

from mlci import history
from mlci.config import GATE_METRICS, LOWER_IS_BETTER
from mlci.review import gate, mermaid, residuals, search
from mlci.review.compare import Comparison
from mlci.review.mermaid import cell
from mlci.review.sections import (
    confusion_section,
    data_section,
    delta,
    num,
    params_section,
    slices_section,
)

NOT_COMPARED = "not compared"


def render(c: Comparison, images: dict[str, str] | None = None, run_url: str | None = None) -> str:
    v = c.verdict
    mark = "✅" if v.passed else "❌"
    parts = [
        f"## {mark} Model gate {'passed' if v.passed else 'FAILED'}",
        "",
        f"**{v.summary}**",
        "",
        c.labels.headline(),
    ]
    for i, note in enumerate(c.notes):
        if i:  # a bare ">" between notes: one quoted paragraph each, not one run-on line
            parts.append(">")
        parts.append(f"> {note}")
    parts += _contract_section(c)
    parts += _metrics_section(c)
    parts += params_section(c)
    parts += data_section(c)
    parts += slices_section(c)
    parts += confusion_section(c)
    parts += _residuals_section(c)
    parts += _charts_section(c)
    parts += _plots_section(images or {})
    parts.append(search.markdown(c.base.sha))  # the tune stage's foldout ("" without a search)
    parts += _cost_section(c)
    parts += _provenance_section(c, run_url)
    return "\n".join(parts) + "\n"


def _contract_section(c: Comparison) -> list[str]:
    if not c.contract_changes:
        return []
    source = c.base.contract.source
    out = ["", "### Data contract changed against base", ""]
    out += [f"- {change}" for change in c.contract_changes]
    return [
        *out,
        "",
        "The two models do not answer the same question from the same columns, so the gate did "
        "not compare this branch with base: it used absolute limits and the baseline. Base "
        f"numbers below are for reference only. (Base facts from: {source}.)",
    ]


def shown_base_metrics(c: Comparison) -> tuple[dict, bool]:
    """(base model metrics to show, whether the gate compared them): base numbers the gate did
    not use are still shown for the same task, marked as not compared."""
    if c.base_metrics:
        return c.base_metrics.get("model", {}), True
    if c.base.metrics and c.base.task == c.task:
        return c.base.metrics.get("model", {}), False
    return {}, False


def _metrics_section(c: Comparison) -> list[str]:
    cur = (c.current.metrics or {}).get("model", {})
    base, compared = shown_base_metrics(c)
    checks: dict[str, list[gate.Check]] = {}
    for chk in c.verdict.checks:
        if chk.metric:
            checks.setdefault(chk.metric, []).append(chk)
    out = [
        "",
        "### Metrics (test set)",
        "",
        "| metric | base | this branch | change | gate |",
        "|---|---:|---:|---:|:---:|",
    ]
    task = c.task
    for m in GATE_METRICS.get(task, GATE_METRICS["classification"]):
        marks = checks.get(m, [])
        gate_mark = "" if not marks else ("✅" if all(x.passed for x in marks) else "❌")
        change = delta(cur.get(m), base.get(m), m in LOWER_IS_BETTER)
        if not compared and base.get(m) is not None:
            change = NOT_COMPARED
        out.append(f"| {m} | {num(base.get(m))} | {num(cur.get(m))} | {change} | {gate_mark} |")
    baseline = (c.current.metrics or {}).get("baseline", {})
    if baseline:
        names = ("f1_macro", "log_loss") if task == "classification" else GATE_METRICS[task]
        shown = ", ".join(f"{m} {num(baseline.get(m))}" for m in names)
        out += ["", f"Baseline model on this branch: {shown}."]
    out += ["", f"<details><summary>All gate checks ({len(c.verdict.checks)})</summary>", ""]
    out += ["| check | result | detail |", "|---|:---:|---|"]
    for chk in c.verdict.checks:
        label = chk.kind + (f" · {chk.metric}" if chk.metric else "")
        out.append(f"| {label} | {'✅' if chk.passed else '❌'} | {chk.detail} |")
    out += ["", "</details>"]
    per_class_cur = (c.current.metrics or {}).get("model", {}).get("per_class", {})
    if per_class_cur:
        per_class_base = base.get("per_class", {})
        out += ["", "<details><summary>Per class</summary>", ""]
        out += [
            "| class | precision | recall | base precision | base recall |",
            "|---|---:|---:|---:|---:|",
        ]
        for cls, m in per_class_cur.items():
            b = per_class_base.get(cls, {})
            out.append(
                f"| {cell(cls)} | {num(m.get('precision'))} | {num(m.get('recall'))} | "
                f"{num(b.get('precision'))} | {num(b.get('recall'))} |"
            )
        out += ["", "</details>"]
    return out


def _residuals_section(c: Comparison) -> list[str]:
    rev = c.labels
    test_rows = (c.current.metrics or {}).get("test_rows")
    return residuals.section(
        c.base.residuals,
        c.current.residuals,
        rev.base.markdown(),
        rev.head.markdown(),
        test_rows if isinstance(test_rows, int) else None,
    )


def _charts_section(c: Comparison) -> list[str]:
    rev = c.labels
    base_name, head_name = rev.base.markdown(), rev.head.markdown()
    out: list[str] = []
    for kind in mermaid.KINDS:
        out += mermaid.curve_section(
            kind, c.base.curves.get(kind, {}), c.current.curves.get(kind, {}), base_name, head_name
        )
    metric = mermaid.primary_name(c.current.metrics)
    # Another task's importance measured the drop of another metric: not drawn beside this one.
    same = mermaid.primary_name(c.base.metrics) == metric
    out += mermaid.importance_section(
        c.base.importance if same else None, c.current.importance, base_name, head_name, metric
    )
    return out


def _plots_section(images: dict[str, str]) -> list[str]:
    """Links (never ``![]()`` images) to the PNGs next to report.md: the workflow artifact."""
    if not images:
        return []
    links = " · ".join(f"[{title} (PNG)]({path})" for title, path in images.items())
    return ["", f"PNG versions of the charts, in the workflow run's artifact: {links}."]


def _cost_section(c: Comparison) -> list[str]:
    cur, base = c.current.cost or {}, c.base.cost or {}
    rows = [
        ("training time (s)", "fit_seconds", True, 3),
        ("model size (bytes)", "model_size_bytes", True, 0),
        ("predict 1 row (ms)", "predict_1_row_ms", True, 3),
        ("predict 1,000 rows (ms)", "predict_1000_rows_ms", True, 3),
    ]
    out = ["", "### Cost", "", "| | base | this branch | change |", "|---|---:|---:|---:|"]
    for label, key, lower, digits in rows:
        out.append(
            f"| {label} | {num(base.get(key), digits)} | {num(cur.get(key), digits)} | "
            f"{delta(cur.get(key), base.get(key), lower, digits)} |"
        )
    out += [
        "",
        "Timings are measured on the machine that ran this pipeline and vary from run to run; "
        "they are not committed, so the base shows none.",
    ]
    return out


def _provenance_section(c: Comparison, run_url: str | None) -> list[str]:
    rev = c.labels
    lock_digest = history.text_digest(c.current.lock_text)
    data = (c.current.ingest or {}).get("source_sha256")
    head = f"`{rev.head.sha or 'uncommitted'}`"
    if rev.pr_number is not None:
        head += f" (head of pull request #{rev.pr_number})"
    out = ["", "### Provenance", "", f"- commit: {head}"]
    if rev.checked_out:
        out.append(
            f"- measured on: `{rev.checked_out}` (the merge of the head into the base that "
            "GitHub checks out for a pull request)"
        )
    base_name = rev.base_name.replace("`", "'")
    out += [
        f"- base: `{rev.base.sha or '—'}` (`{base_name}`)",
        f"- dvc.lock sha256: `{lock_digest or '—'}`",
        f"- data sha256: `{data or '—'}`",
    ]
    if run_url:
        out.append(f"- workflow run: {run_url}")
    return out
