"""Contract failures in words: pandera's failure cases grouped into readable findings.

Shared by the validate stage (training data) and drift monitoring (served batches), so a broken
row reads the same wherever it is caught.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

EXAMPLES = 5


def describe(cases: pd.DataFrame, df: pd.DataFrame) -> list[dict[str, Any]]:
    """Group pandera's failure cases into one finding per (column, check): the column, the check,
    how many rows fail, a few examples (row, value) and a sentence that says what is wrong."""
    cases = cases.copy()
    cases["column"] = cases["column"].where(cases["schema_context"] == "Column", None)
    # A column that failed type coercion also "fails" its range checks with a TypeError; those
    # are echoes of the type problem, not separate findings.
    bad_type = set(cases.loc[cases["check"].str.startswith("coerce_dtype"), "column"])
    echo = cases["column"].isin(bad_type) & cases["failure_case"].astype(str).str.contains(
        "TypeError"
    )
    # pandera reports a failed coercion twice (coerce_dtype and dtype): keep the first.
    echo |= cases["column"].isin(bad_type) & cases["check"].str.startswith("dtype(")
    cases = cases.loc[~echo]
    out = []
    for (column, chk), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        rows = group["index"].dropna()
        examples = [
            {"row": _int_or_none(r["index"]), "value": _plain(r["failure_case"])}
            for _, r in group.head(EXAMPLES).iterrows()
            if not isinstance(_plain(r["failure_case"]), bool)  # a check's False says nothing
        ]
        out.append(
            {
                "column": None if pd.isna(column) else str(column),
                "check": str(chk),
                "failing_rows": int(rows.nunique()) if len(rows) else None,
                "examples": examples,
                "message": _explain(None if pd.isna(column) else str(column), str(chk), group, df),
            }
        )
    return out


def _explain(column: str | None, chk: str, group: pd.DataFrame, df: pd.DataFrame) -> str:
    value = _plain(group["failure_case"].iloc[0])
    if chk.startswith("row_count_between"):
        return f"the table has {len(df)} rows; {chk} is required"
    if chk.startswith("every_class_share_at_least") and column in df.columns:
        shares = df[column].value_counts(normalize=True).round(3).to_dict()
        return f"a class of {column!r} is rare or absent ({chk}); shares: {shares or 'no rows'}"
    if chk.startswith("missing_share_at_most") and column in df.columns:
        share = float(df[column].isna().mean()) if len(df) else 0.0
        return f"column {column!r} is {share:.0%} missing ({chk})"
    if chk == "column_in_dataframe":
        return f"required column {value!r} is missing"
    if chk == "column_in_schema":
        return f"unexpected column {value!r} (not in the contract; drop it or add it to schema.py)"
    if chk.startswith("coerce_dtype") or chk.startswith("dtype"):
        dtype = chk.split("(", 1)[1].rstrip(")").strip("'")
        return f"column {column!r} has values that are not of type {dtype}"
    if chk == "field_uniqueness" or chk == "unique":
        return f"column {column!r} has duplicate values"
    if chk == "not_nullable":
        return f"column {column!r} has missing values but may not"
    if column is None:
        return f"dataset check {chk} failed"
    return f"column {column!r} fails {chk}"


def _int_or_none(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _plain(v: Any) -> Any:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


# ---- a validation report in words: the pull-request report and the console show these


def summary_markdown(report: dict[str, Any]) -> str:
    if report["valid"]:
        return (
            f"**Data contract: passed** ({report['rows']} rows, {len(report['columns'])} columns)\n"
        )
    lines = [
        f"**Data contract: FAILED**: {len(report['failures'])} problem(s) in {report['rows']} rows",
        "",
        "| column | check | failing rows | examples (row: value) |",
        "|---|---|---:|---|",
    ]
    for f in report["failures"]:
        ex = ", ".join(
            f"{e['row']}: {e['value']!r}" if e["row"] is not None else f"{e['value']!r}"
            for e in f["examples"]
        )
        rows = "" if f["failing_rows"] is None else str(f["failing_rows"])
        lines.append(f"| {f['column'] or '(table)'} | `{f['check']}` | {rows} | {ex} |")
    lines.append("")
    lines.append("Rows are numbered from 0 in the order of the source file.")
    return "\n".join(lines) + "\n"


def summary_text(report: dict[str, Any]) -> str:
    if report["valid"]:
        return f"data contract: passed ({report['rows']} rows)"
    lines = [f"data contract: FAILED with {len(report['failures'])} problem(s):"]
    for f in report["failures"]:
        n = f" in {f['failing_rows']} row(s)" if f["failing_rows"] else ""
        ex = ", ".join(
            f"row {e['row']}: {e['value']!r}" if e["row"] is not None else repr(e["value"])
            for e in f["examples"][:3]
        )
        lines.append(f"  - {f['message']}{n} [{f['check']}]" + (f", e.g. {ex}" if ex else ""))
    return "\n".join(lines)
