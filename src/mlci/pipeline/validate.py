"""Lifecycle step 2: check the ingested table against the data contract.

Validation is lazy: every problem is collected at once and written as a machine-readable report
(``reports/validation.json``) and a short summary (``reports/validation.md``). On failure the
stage exits non-zero, so DVC stops before split and train and the previous model stays.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.errors as pa_errors

from mlci import contract, files, findings, paths
from mlci.config import Params
from mlci.errors import UserError


def check(df: pd.DataFrame, params: Params) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """Validate ``df``; return the coerced frame (or None) and the report."""
    v = params.validate_
    schema = contract.validation_schema(
        v.min_rows, v.max_rows, v.min_class_share, v.max_missing_share
    )
    try:
        valid = schema.validate(df, lazy=True)
    except pa_errors.SchemaErrors as err:
        return None, _report(df, findings.describe(err.failure_cases, df))
    return valid, _report(df, [])


def _report(df: pd.DataFrame, failures: list[dict[str, Any]]) -> dict[str, Any]:
    spec = contract.spec()
    report: dict[str, Any] = {
        "valid": not failures,
        "rows": len(df),
        "columns": list(map(str, df.columns)),
    }
    if spec.target in df.columns and spec.task == "classification":
        counts = df[spec.target].astype(str).value_counts().sort_index()
        report["target_counts"] = {str(k): int(v) for k, v in dict(counts).items()}
    elif spec.target in df.columns:
        y = pd.to_numeric(df[spec.target], errors="coerce")
        report["target_summary"] = {
            k: (None if pd.isna(v) else round(float(v), 6))
            for k, v in {"min": y.min(), "median": y.median(), "max": y.max()}.items()
        }
    report["failures"] = failures
    return report


def run(params: Params) -> dict[str, Any]:
    df = pd.read_parquet(paths.INGESTED)
    valid, report = check(df, params)
    files.write_json(paths.VALIDATION_JSON, report)
    files.write_text(paths.VALIDATION_MD, findings.summary_markdown(report))
    if valid is None:
        raise UserError(
            findings.summary_text(report)
            + f"\nfull report: {paths.VALIDATION_JSON} and {paths.VALIDATION_MD}; "
            "the previous model and metrics were left untouched"
        )
    files.write_parquet(paths.VALIDATED, valid)
    return report
