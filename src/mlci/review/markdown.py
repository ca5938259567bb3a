"""The report as markdown: gate verdict first, then `dvc metrics diff` / `dvc params diff` style
tables, the data check, slices, charts (Mermaid with their numbers as tables), cost and provenance.

The same document is the pull-request comment, which has no image host: the PNG plots are only
linked (relative links the comment poster points at the run's artifact), never embedded.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlci import history
from mlci.config import GATE_METRICS, LOWER_IS_BETTER
from mlci.review import gate, mermaid
from mlci.review.compare import Comparison
from mlci.review.mermaid import cell


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
    parts += [f"> {n}" for n in c.notes]
    parts += _metrics_section(c)
    parts += _params_section(c)
    parts += _data_section(c)
    parts += _slices_section(c)
    parts += _confusion_section(c)
    parts += _charts_section(c)
    parts += _plots_section(images or {})
    parts += _cost_section(c)
    parts += _provenance_section(c, run_url)
    return "\n".join(parts) + "\n"


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _delta(new: Any, old: Any, lower_better: bool = False, digits: int = 4) -> str:
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return "—"
    d = new - old
    if abs(d) < 10 ** -(digits + 1):
        return "0"
    better = d < 0 if lower_better else d > 0
    return f"{d:+.{digits}f} ({'better' if better else 'worse'})"


def _metrics_section(c: Comparison) -> list[str]:
    cur = (c.current.metrics or {}).get("model", {})
    base = (c.base_metrics or {}).get("model", {})
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
    task = (c.current.metrics or {}).get("task", "classification")
    for m in GATE_METRICS.get(task, GATE_METRICS["classification"]):
        marks = checks.get(m, [])
        gate_mark = "" if not marks else ("✅" if all(x.passed for x in marks) else "❌")
        out.append(
            f"| {m} | {_num(base.get(m))} | {_num(cur.get(m))} | "
            f"{_delta(cur.get(m), base.get(m), m in LOWER_IS_BETTER)} | {gate_mark} |"
        )
    baseline = (c.current.metrics or {}).get("baseline", {})
    if baseline:
        names = ("f1_macro", "log_loss") if task == "classification" else ("rmse", "r2")
        shown = ", ".join(f"{m} {_num(baseline.get(m))}" for m in names)
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
                f"| {cell(cls)} | {_num(m.get('precision'))} | {_num(m.get('recall'))} | "
                f"{_num(b.get('precision'))} | {_num(b.get('recall'))} |"
            )
        out += ["", "</details>"]
    return out


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def params_diff(base: dict | None, current: dict | None) -> list[tuple[str, Any, Any]]:
    b, c = flatten(base or {}), flatten(current or {})
    missing = object()
    rows = []
    for key in sorted(set(b) | set(c)):
        old, new = b.get(key, missing), c.get(key, missing)
        if old != new:
            rows.append((key, None if old is missing else old, None if new is missing else new))
    return rows


def _params_section(c: Comparison) -> list[str]:
    rows = params_diff(c.base.params, c.current.params)
    out = ["", "### Params", ""]
    if not rows:
        return [*out, "No parameter changed."]
    out += ["| param | base | this branch |", "|---|---|---|"]
    for key, old, new in rows:
        old_s = "*(absent)*" if old is None else f"`{old}`"
        new_s = "*(removed)*" if new is None else f"`{new}`"
        out.append(f"| `{key}` | {old_s} | {new_s} |")
    return out


def _balance(validation: dict | None) -> str:
    counts = (validation or {}).get("target_counts") or {}
    total = sum(counts.values())
    if not total:
        return "—"
    return ", ".join(f"{k} {v / total:.1%}" for k, v in counts.items())


def _data_section(c: Comparison) -> list[str]:
    bi, ci = c.base.ingest or {}, c.current.ingest or {}
    changed = bi.get("source_sha256") != ci.get("source_sha256") or bi.get("source") != ci.get(
        "source"
    )
    out = [
        "",
        "### Data",
        "",
        f"Data {'**changed**' if changed else 'unchanged'} against base.",
        "",
        "| | base | this branch |",
        "|---|---|---|",
        f"| source | `{bi.get('source', '—')}` | `{ci.get('source', '—')}` |",
        f"| sha256 | `{(bi.get('source_sha256') or '—')[:16]}` | "
        f"`{(ci.get('source_sha256') or '—')[:16]}` |",
        f"| rows read → kept | {bi.get('rows_read', '—')} → {bi.get('rows_out', '—')} | "
        f"{ci.get('rows_read', '—')} → {ci.get('rows_out', '—')} |",
        f"| class balance | {_balance(c.base.validation)} | {_balance(c.current.validation)} |",
        "",
    ]
    v = c.current.validation
    if v is None:
        out.append("Data contract: no validation report (the pipeline did not reach validate).")
    elif v.get("valid"):
        out.append(f"Data contract: ✅ passed ({v.get('rows')} rows).")
    else:
        from mlci.findings import summary_markdown

        out.append(summary_markdown(v).replace("**Data contract: FAILED**", "Data contract: ❌"))
    return out


def _slices_section(c: Comparison) -> list[str]:
    cur, base = c.current.slices or {}, c.base.slices or {}
    if not cur:
        return []
    out = ["", "### Slices (macro F1 per value)", ""]
    worst = min(
        ((col, val, m["f1_macro"]) for col, vals in cur.items() for val, m in vals.items()),
        key=lambda t: t[2],
        default=None,
    )
    if worst:
        out += [
            f"Worst slice: **{cell(worst[0])} = {cell(worst[1])}** (macro F1 {worst[2]:.4f}).",
            "",
        ]
    out += ["| slice | n | base | this branch | change |", "|---|---:|---:|---:|---:|"]
    for col, vals in cur.items():
        for val, m in vals.items():
            b = base.get(col, {}).get(val, {})
            name = f"{cell(col)} = {cell(val)}"
            if worst and (col, val) == worst[:2]:
                name = f"**{name}** ⚠️"
            out.append(
                f"| {name} | {m['n']} | {_num(b.get('f1_macro'))} | {_num(m['f1_macro'])} | "
                f"{_delta(m['f1_macro'], b.get('f1_macro'))} |"
            )
    return out


def confusion_table(df: pd.DataFrame) -> list[str]:
    labels = sorted(set(df["actual"].astype(str)) | set(df["predicted"].astype(str)))
    table = pd.crosstab(df["actual"].astype(str), df["predicted"].astype(str)).reindex(
        index=labels, columns=labels, fill_value=0
    )
    out = ["| actual \\ predicted | " + " | ".join(cell(x) for x in labels) + " |"]
    out.append("|---|" + "---:|" * len(labels))
    for a in labels:
        cells = [f"**{table.loc[a, p]}**" if a == p else str(table.loc[a, p]) for p in labels]
        out.append(f"| {cell(a)} | " + " | ".join(cells) + " |")
    return out


def _confusion_section(c: Comparison) -> list[str]:
    if c.current.confusion is None:
        return []
    out = [
        "",
        "### Confusion matrix (this branch, test set)",
        "",
        *confusion_table(c.current.confusion),
    ]
    if c.base.confusion is not None:
        out += ["", "<details><summary>Base</summary>", "", *confusion_table(c.base.confusion)]
        out += ["", "</details>"]
    return out


def _charts_section(c: Comparison) -> list[str]:
    rev = c.labels
    base_name, head_name = rev.base.markdown(), rev.head.markdown()
    out: list[str] = []
    for kind in mermaid.KINDS:
        out += mermaid.curve_section(
            kind, c.base.curves.get(kind, {}), c.current.curves.get(kind, {}), base_name, head_name
        )
    out += mermaid.importance_section(c.base.importance, c.current.importance, base_name, head_name)
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
            f"| {label} | {_num(base.get(key), digits)} | {_num(cur.get(key), digits)} | "
            f"{_delta(cur.get(key), base.get(key), lower, digits)} |"
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
