"""A scaled synthetic dataset that follows the project's data contract, for any table and task.

It reads the project's own source (``params.yaml`` ``data.source``, with the same cleaning and
contract types as the ingest stage), then resamples its rows with replacement: every row keeps
its features and target together, so the relation the model learns survives. Numeric features
get a little noise (5% of the column's standard deviation, clipped to the contract's bounds) so
rows are not exact copies; categories (closed or open, digit codes included) are kept as they
are. IDs are made unique again, and every nullable feature has a small share of missing values,
well inside ``validate.max_missing_share``.

    python bench/pipeline_synth.py --rows 1000000 --out data/synthetic/synthetic.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mlci import contract, tables
from mlci.config import load_params
from mlci.pipeline.ingest import read_source

NOISE = 0.05  # numeric jitter, in standard deviations of the column


def generate(
    sample: pd.DataFrame, rows: int, seed: int = 0, missing_share: float = 0.02
) -> pd.DataFrame:
    """``rows`` rows resampled from the cleaned ``sample`` (contract columns only)."""
    spec = contract.spec()
    rng = np.random.default_rng(seed)
    complete = sample.dropna(subset=[spec.target])
    picked = complete.iloc[rng.integers(0, len(complete), size=rows)].reset_index(drop=True)
    out: dict[str, object] = {}
    if spec.id_column:
        ids = np.char.add("synthetic-", np.arange(rows).astype(str)).astype(object)
        out[spec.id_column] = pd.array(ids, dtype="str")
    for f in spec.features:
        values = picked[f.name]
        if f.kind == "numeric":
            col = pd.to_numeric(values, errors="coerce").to_numpy(float)
            std = float(np.nanstd(col)) or 1.0
            col = col + rng.normal(0.0, NOISE * std, size=rows)
            lo = -np.inf if f.minimum is None else f.minimum
            hi = np.inf if f.maximum is None else f.maximum
            col = np.clip(col, lo, hi)
            if f.nullable and missing_share > 0:
                col[rng.random(rows) < missing_share] = np.nan
            out[f.name] = col
        else:
            col = values.astype("string")
            if f.nullable and missing_share > 0:
                col = col.mask(rng.random(rows) < missing_share)
            out[f.name] = col.astype("str").where(col.notna(), None)
    target = picked[spec.target]
    out[spec.target] = (
        target.astype("str") if spec.task == "classification" else target.astype(float)
    )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=None, help="default: params.yaml seed")
    parser.add_argument("--sample", default=None, help="default: params.yaml data.source")
    args = parser.parse_args(argv)

    params = load_params()
    cfg = (
        params.data
        if args.sample is None
        else params.data.model_copy(update={"source": args.sample})
    )
    sample, _ = tables.clean(read_source(cfg, tables.text_columns()), "the sample")
    # Gaps well inside the contract's limit, so the dataset is valid by construction.
    missing = min(0.02, params.validate_.max_missing_share / 2)
    seed = params.seed if args.seed is None else args.seed
    df = generate(sample, args.rows, seed=seed, missing_share=missing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out, index=False)
    print(f"wrote {len(df)} rows, missing share per nullable feature {missing:.3f}, to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
