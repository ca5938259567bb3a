"""The report's tables about inputs and errors: params diff, data, slices, confusion matrix.

Split from :mod:`mlci.review.markdown` (which assembles the document) to keep files small;
each function takes the :class:`~mlci.review.compare.Comparison` and returns markdown lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from mlci import tasks
from mlci.review.mermaid import cell, html_text

if TYPE_CHECKING:
    from mlci.review.compare import Comparison


def num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def delta(new: Any, old: Any, lower_better: bool = False, digits: int = 4) -> str:
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return "—"
    d = new - old
    if abs(d) < 10 ** -(digits + 1):
        return "0"
    better = d < 0 if lower_better else d > 0
    return f"{d:+.{digits}f} ({'better' if better else 'worse'})"


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values; an empty mapping has no leaves (so ``{}`` → ``{r2: 0.5}``
    is one added key, not a removed ``{}`` and an added key)."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


MISSING = object()  # a key one side does not have (unlike a key set to null)


def params_diff(base: dict | None, current: dict | None) -> list[tuple[str, Any, Any]]:
    """(key, base value, this branch's value) per changed key; MISSING where a side lacks it."""
    b, c = flatten(base or {}), flatten(current or {})
    rows = []
    for key in sorted(set(b) | set(c)):
        old, new = b.get(key, MISSING), c.get(key, MISSING)
        if old is MISSING or new is MISSING or old != new:
            rows.append((key, old, new))
    return rows


def _value(v: Any) -> str:
    return "`null`" if v is None else f"`{v}`"


def params_section(c: Comparison) -> list[str]:
    rows = params_diff(c.base.params, c.current.params)
    out = ["", "### Params", ""]
    if not rows:
        return [*out, "No parameter changed."]
    out += ["| param | base | this branch |", "|---|---|---|"]
    for key, old, new in rows:
        old_s = "*(absent)*" if old is MISSING else _value(old)
        new_s = "*(removed)*" if new is MISSING else _value(new)
        out.append(f"| `{key}` | {old_s} | {new_s} |")
    return out


def _target(validation: dict | None) -> str:
    """A side's target in one cell: class balance, or the numeric target's range and median."""
    v = validation or {}
    summary = v.get("target_summary")
    if isinstance(summary, dict) and summary:
        return " · ".join(f"{k} {num(summary.get(k))}" for k in ("min", "median", "max"))
    counts = v.get("target_counts") or {}
    total = sum(counts.values())
    if not total:
        return "—"
    return ", ".join(f"{cell(k)} {n / total:.1%}" for k, n in counts.items())


TARGET_ROW = {"classification": "class balance", "regression": "target min · median · max"}


def data_section(c: Comparison) -> list[str]:
    bi, ci = c.base.ingest or {}, c.current.ingest or {}
    changed = bi.get("source_sha256") != ci.get("source_sha256") or bi.get("source") != ci.get(
        "source"
    )
    verdict = f"Data {'**changed**' if changed else 'unchanged'} against base."
    if not bi:
        verdict = "The base has no data report (no results yet): nothing to compare with."
    tasks = {t for t in (c.base.task, c.current.task) if t}
    target_row = TARGET_ROW.get(tasks.pop(), "target") if len(tasks) == 1 else "target"
    v = c.current.validation
    contract = "✅" if v is not None and v.get("valid") else "❌"
    word = "changed" if changed and bi else "unchanged" if bi else "no base report"
    out = [
        "",
        f"<details><summary>Data: {word} against base · contract {contract}</summary>",
        "",
        verdict,
        "",
        "| | base | this branch |",
        "|---|---|---|",
        f"| source | `{bi.get('source', '—')}` | `{ci.get('source', '—')}` |",
        f"| sha256 | `{(bi.get('source_sha256') or '—')[:16]}` | "
        f"`{(ci.get('source_sha256') or '—')[:16]}` |",
        f"| rows read → kept | {bi.get('rows_read', '—')} → {bi.get('rows_out', '—')} | "
        f"{ci.get('rows_read', '—')} → {ci.get('rows_out', '—')} |",
        f"| {target_row} | {_target(c.base.validation)} | {_target(c.current.validation)} |",
        "",
    ]
    if v is None:
        out.append("Data contract: no validation report (the pipeline did not reach validate).")
    elif v.get("valid"):
        out.append(f"Data contract: ✅ passed ({v.get('rows')} rows).")
    else:  # a broken contract is shown open, not folded away
        from mlci.findings import summary_markdown

        out[1] = "### Data"
        out.append(summary_markdown(v).replace("**Data contract: FAILED**", "Data contract: ❌"))
        return out
    return [*out, "", "</details>"]


def slice_metric(task: str) -> tuple[str, str, bool, str | None]:
    """The task's slice metric (mlci.tasks): its key, its name, whether lower is better, and a
    second metric shown for this branch."""
    key, extra = tasks.SLICE_METRIC.get(task, tasks.SLICE_METRIC["classification"])
    return key, tasks.label(key), key in tasks.LOWER_IS_BETTER, extra


def slices_section(c: Comparison) -> list[str]:
    cur = c.current.slices or {}
    # Slices of another task hold other metrics: nothing to set beside this branch's.
    base = (c.base.slices or {}) if c.base.task == c.task else {}
    configured = (c.current.params or {}).get("evaluate", {}).get("slices")
    if not cur:
        if configured == [] or not configured:
            return ["", "Slices: none configured (`evaluate.slices`)."]
        return []
    key, name, lower, extra = slice_metric(c.task)
    rows = [
        (col, val, m[key], m)
        for col, vals in cur.items()
        for val, m in vals.items()
        if isinstance(m.get(key), int | float)
    ]
    worst = (max if lower else min)(rows, key=lambda t: t[2], default=None)
    summary = f"Slices ({name} per value)"
    if worst:
        b = base.get(worst[0], {}).get(worst[1], {}).get(key)
        summary += f": worst {html_text(worst[0])} = {html_text(worst[1])}, {worst[2]:.4f}"
        if isinstance(b, int | float):
            summary += f" (base {b:.4f})"
    out = ["", f"<details><summary>{summary}</summary>", ""]
    head = "| slice | n | base | this branch | change |"
    rule = "|---|---:|---:|---:|---:|"
    if extra:
        head, rule = head + f" this branch {extra.upper()} |", rule + "---:|"
    out += [head, rule]
    for col, val, value, m in rows:
        b = base.get(col, {}).get(val, {})
        label = f"{cell(col)} = {cell(val)}"
        if worst and (col, val) == worst[:2]:
            label = f"**{label}** ⚠️"
        line = (
            f"| {label} | {m.get('n', '—')} | {num(b.get(key))} | {num(value)} | "
            f"{delta(value, b.get(key), lower)} |"
        )
        out.append(line + (f" {num(m.get(extra))} |" if extra else ""))
    return [*out, "", "</details>"]


def confusion_table(df: pd.DataFrame, base: pd.DataFrame | None = None) -> list[str]:
    """Counts of (actual, predicted); with ``base``, each moved cell says by how much."""
    labels = sorted(set(df["actual"].astype(str)) | set(df["predicted"].astype(str)))
    if base is not None:
        labels = sorted(
            set(labels) | set(base["actual"].astype(str)) | set(base["predicted"].astype(str))
        )

    def counts(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.crosstab(frame["actual"].astype(str), frame["predicted"].astype(str)).reindex(
            index=labels, columns=labels, fill_value=0
        )

    table = counts(df)
    before = counts(base) if base is not None else None
    out = ["| actual \\ predicted | " + " | ".join(cell(x) for x in labels) + " |"]
    out.append("|---|" + "---:|" * len(labels))
    for a in labels:
        cells = []
        for p in labels:
            n = int(table.loc[a, p])
            text = f"**{n}**" if a == p else str(n)
            moved = 0 if before is None else n - int(before.loc[a, p])
            if moved:
                text += f" ({moved:+d})"
            cells.append(text)
        out.append(f"| {cell(a)} | " + " | ".join(cells) + " |")
    return out


def confusion_section(c: Comparison) -> list[str]:
    if c.current.confusion is None:
        return []
    base = c.base.confusion if c.base.task == c.task else None
    out = ["", "### Confusion matrix (this branch, test set)", ""]
    if base is not None and len(base) == len(c.current.confusion):
        if confusion_table(c.current.confusion) == confusion_table(base):
            out[1] = "<details><summary>Confusion matrix: unchanged against base</summary>"
            return [*out, *confusion_table(c.current.confusion), "", "</details>"]
        out += [*confusion_table(c.current.confusion, base), ""]
        out.append("(±n): the change from base, on the same rows. Bold: predicted right.")
        return out
    out += confusion_table(c.current.confusion)
    if base is not None:
        out += ["", "<details><summary>Base (another test set)</summary>", ""]
        out += [*confusion_table(base), "", "</details>"]
    return out
