"""The report as markdown, in the order a reviewer needs it: the gate verdict (naming the rule
that judged regressions), the largest changes in one line, the metrics with their 95% intervals
and the rows that flipped (:mod:`mlci.review.headline`), the params diff and the moved cells of
the confusion matrix; then the detail, each part a foldout whose summary says its news: gate
checks, per class, slices, data, residuals, curves, importance, cost, provenance.

Every section follows the task: classification shows per-class metrics, macro F1 per slice, a
confusion matrix and ROC / precision-recall curves; regression shows RMSE per slice and the
residuals. When the base cannot be compared with (first pull request, or a changed contract),
the report says why near the top and shows base numbers, if any, as "not compared".

The same document is the pull-request comment, which has no image host: the PNG plots are only
linked (relative links the comment poster points at the ``model-report`` artifact), never
embedded. Each section is a function returning lines, so a new one is one more call in
:func:`render`.
"""

from __future__ import annotations

from mlci import history
from mlci.review import mermaid, residuals, search
from mlci.review.compare import Comparison
from mlci.review.headline import largest_changes, metrics_table
from mlci.review.mermaid import cell
from mlci.review.sections import (
    confusion_section,
    data_section,
    delta,
    num,
    params_section,
    slices_section,
)
from mlci.tasks import BASELINE_SHOWN


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
    # The first screen: verdict, what changed most, the metrics with their noise, the params.
    # Everything after it is detail, mostly in foldouts; sections are independent line lists,
    # so a new one is one more call here.
    base, compared = shown_base_metrics(c)
    parts += largest_changes(c, base if compared else {})
    parts += _contract_section(c)
    parts += _metrics_section(c)
    parts += params_section(c)
    parts += confusion_section(c)
    parts += slices_section(c)
    parts += data_section(c)
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
    base, compared = shown_base_metrics(c)
    out = metrics_table(c, base, compared)
    task = c.task
    baseline = (c.current.metrics or {}).get("baseline", {})
    if baseline:
        names = BASELINE_SHOWN[task]
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
        out += ["", "<details><summary>Per class (precision and recall)</summary>", ""]
        out += [
            "| class | base precision | precision | change | base recall | recall | change |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for cls, m in per_class_cur.items():
            b = per_class_base.get(cls, {})
            p, r = m.get("precision"), m.get("recall")
            bp, br = b.get("precision"), b.get("recall")
            out.append(
                f"| {cell(cls)} | {num(bp)} | {num(p)} | {delta(p, bp).split(' (')[0]} | "
                f"{num(br)} | {num(r)} | {delta(r, br).split(' (')[0]} |"
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
    flat: list[str] = []  # curve kinds not charted: one line of text for all of them
    for kind in mermaid.KINDS:
        lines = mermaid.curve_section(
            kind, c.base.curves.get(kind, {}), c.current.curves.get(kind, {}), base_name, head_name
        )
        if len(lines) == 2 and lines[1].startswith("**"):
            flat.append(lines[1])
        else:
            out += lines
    if len(flat) > 1:  # "**ROC curves**: not charted ...", twice: one sentence each
        out += ["", " ".join(flat)]
    elif flat:
        out += ["", flat[0]]
    metric = mermaid.primary_name(c.current.metrics)
    # Another task's importance measured the drop of another metric: not drawn beside this one.
    same = mermaid.primary_name(c.base.metrics) == metric
    out += mermaid.importance_section(
        c.base.importance if same else None, c.current.importance, base_name, head_name, metric
    )
    return out


def _plots_section(images: dict[str, str]) -> list[str]:
    """Links (never ``![]()`` images) to the PNGs next to report.md: the comment poster points
    them at the ``model-report`` artifact (a zip), so the text says they are inside it."""
    if not images:
        return []
    links = ", ".join(f"[{title}]({path})" for title, path in images.items())
    return [
        "",
        f"📦 PNG charts, inside the workflow run's `model-report` artifact (a zip): {links}.",
    ]


def _cost_section(c: Comparison) -> list[str]:
    cur, base = c.current.cost or {}, c.base.cost or {}
    rows = [
        ("training time (s)", "fit_seconds", 1, 3),
        ("model size (KB)", "model_size_bytes", 1024, 1),
        ("predict 1 row (ms)", "predict_1_row_ms", 1, 3),
        ("predict 1,000 rows (ms)", "predict_1000_rows_ms", 1, 3),
    ]
    size = _scaled(cur.get("model_size_bytes"), 1024)
    summary = "Cost" + (f": model {size:,.1f} KB" if size is not None else "")
    out = ["", f"<details><summary>{summary}</summary>", ""]
    out += ["| | base | this branch | change |", "|---|---:|---:|---:|"]
    for label, key, unit, digits in rows:
        new, old = _scaled(cur.get(key), unit), _scaled(base.get(key), unit)
        out.append(
            f"| {label} | {num(old, digits)} | {num(new, digits)} | {_cost_change(new, old)} |"
        )
    out += [
        "",
        "Timings are measured on the machine that ran this pipeline and vary from run to run; "
        "they are not committed, so the base shows none.",
        "",
        "</details>",
    ]
    return out


def _scaled(v: object, unit: int) -> float | None:
    return float(v) / unit if isinstance(v, int | float) and not isinstance(v, bool) else None


def _cost_change(new: float | None, old: float | None) -> str:
    """Relative change; under 1% is no change worth a verdict (a byte of model size)."""
    if new is None or old is None:
        return "—"
    if old == 0 or abs(new - old) / abs(old) < 0.01:
        return "< 1%"
    return f"{(new - old) / abs(old):+.0%} ({'better' if new < old else 'worse'})"


def _provenance_section(c: Comparison, run_url: str | None) -> list[str]:
    rev = c.labels
    lock_digest = history.text_digest(c.current.lock_text)
    data = (c.current.ingest or {}).get("source_sha256")
    head = f"`{rev.head.sha or 'uncommitted'}`"
    if rev.pr_number is not None:
        head += f" (head of pull request #{rev.pr_number})"
    out = ["", "<details><summary>Provenance</summary>", "", f"- commit: {head}"]
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
    return [*out, "", "</details>"]
