"""The data contract on a batch: the contract's column rules (types, ranges, allowed categories,
nullability, missing share), not the dataset-size and class-balance rules a batch cannot meet.

The target is optional in a batch, as in the service's requests: labels arrive late or never in
production. A target column that is present is checked (type, range, classes) on the rows that
carry a label; a row without one is not a violation (quality is scored on labelled rows only).

A prediction log may carry a feature on some lines only (privacy): each group of rows is checked
on the columns it carries, and a finding names the log's file and line.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandera.errors as pa_errors
import pandera.pandas as pa

from mlci import contract, findings
from mlci.config import Params
from mlci.monitoring.batches import Batch


def contract_check(batch: Batch, params: Params) -> dict[str, Any]:
    """The contract's column rules on the batch; no dataset-size or class-balance rule."""
    spec = contract.spec()
    full = contract.validation_schema(
        min_rows=0,
        max_rows=2**62,
        min_class_share=0.0,
        max_missing_share=params.validate_.max_missing_share,
    )
    # The target is optional: checked where a row carries one, never required.
    target = copy.deepcopy(full.columns[spec.target])
    target.nullable = True
    rules = {**full.columns, spec.target: target}
    failures: list[dict[str, Any]] = []
    frame = batch.frame
    if batch.kind == "data":
        for name in spec.feature_names:
            if name not in frame.columns:
                failures.append(
                    {
                        "column": name,
                        "check": "column_in_dataframe",
                        "failing_rows": None,
                        "examples": [],
                        "message": f"required column {name!r} is missing",
                    }
                )
        present = [c for c in rules if c in frame.columns]
        groups = [(present, np.ones(len(frame), dtype=bool), True)]
    else:
        # A log carries features only; a feature may be logged on some lines and not others.
        unknown = [c for c in frame.columns if c not in spec.feature_names]
        for name in unknown:
            failures.append(
                {
                    "column": name,
                    "check": "column_in_schema",
                    "failing_rows": int(batch.available[name].sum()),
                    "examples": [],
                    "message": f"unexpected feature {name!r} (not in the contract)",
                }
            )
        known = [c for c in frame.columns if c in spec.feature_names]
        everywhere = [c for c in known if batch.available[c].all()]
        groups = [(everywhere, np.ones(len(frame), dtype=bool), False)]
        groups += [([c], batch.available[c], False) for c in known if c not in everywhere]
    for columns, rows, strict in groups:
        if not columns or not rows.any():
            continue
        schema = pa.DataFrameSchema(
            columns={c: rules[c] for c in columns},
            checks=[],
            strict=strict,
            coerce=True,
        )
        sub = frame.loc[rows, [c for c in frame.columns if strict or c in columns]]
        try:
            schema.validate(sub, lazy=True)
        except pa_errors.SchemaErrors as err:
            failures.extend(findings.describe(err.failure_cases, sub))
    if batch.origins is not None:
        for f in failures:
            for e in f["examples"]:
                if e.get("row") is not None and e["row"] < len(batch.origins):
                    e["where"] = batch.origins[e["row"]]
    return {"valid": not failures, "failures": failures}
