"""A scaled synthetic dataset that follows the data contract (``mlci.contract.spec()``).

Numbers and categories are drawn per class from the bundled sample's statistics: numeric
features from a normal distribution with the class's mean and standard deviation, clipped to the
contract's range; categorical features from the class's observed frequencies over the contract's
allowed categories; classes in the sample's proportions. Sample ids are unique and every nullable
feature has a small share of missing values, well inside ``validate.max_missing_share``.

    python bench/pipeline_synth.py --rows 1000000 --out data/synthetic/penguins.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlci import contract
from mlci.config import load_params
from project.cleaning import clean_raw

SAMPLE = Path("data/sample/penguins-raw.csv")


def class_statistics(sample: pd.DataFrame) -> dict:
    """Per-class facts of the cleaned sample that the generator draws from."""
    spec = contract.spec()
    y = sample[spec.target].astype(str)
    shares = y.value_counts(normalize=True).reindex(list(spec.classes)).fillna(0.0)
    if (shares == 0).any():  # a class the sample lacks still gets rows: the contract has it
        shares = shares.where(shares > 0, shares[shares > 0].min())
    shares = shares / shares.sum()
    numeric = {}
    for f in spec.features:
        if f.kind != "numeric":
            continue
        col = pd.to_numeric(sample[f.name], errors="coerce")
        overall = (float(col.mean()), float(col.std()))
        per_class = {}
        for c in spec.classes:
            v = col[y == c].dropna()
            mean = float(v.mean()) if len(v) else overall[0]
            std = float(v.std()) if len(v) > 1 else overall[1]
            per_class[c] = (mean, std)
        numeric[f.name] = per_class
    categorical = {}
    for f in spec.features:
        if f.kind != "categorical":
            continue
        col = sample[f.name].astype("string")
        per_class = {}
        for c in spec.classes:
            counts = col[y == c].value_counts().reindex(list(f.categories)).fillna(0.0)
            total = float(counts.sum())
            per_class[c] = (
                (counts / total).to_numpy(float)
                if total > 0
                else np.full(len(f.categories), 1.0 / len(f.categories))
            )
        categorical[f.name] = per_class
    return {"class_shares": shares, "numeric": numeric, "categorical": categorical}


def generate(
    rows: int, stats: dict, seed: int = 0, missing_share: float = 0.02, decimals: int = 1
) -> pd.DataFrame:
    spec = contract.spec()
    rng = np.random.default_rng(seed)
    classes = np.asarray(spec.classes, dtype=object)
    codes = rng.choice(len(classes), size=rows, p=stats["class_shares"].to_numpy(float))
    columns: dict[str, Any] = {
        spec.id_column: pd.array(
            np.char.add("synthetic-", np.arange(rows).astype(str)).astype(object), dtype="str"
        )
    }
    missing_masks = {}
    for f in spec.features:
        if f.kind == "numeric":
            means = np.array([stats["numeric"][f.name][c][0] for c in spec.classes])
            stds = np.array([stats["numeric"][f.name][c][1] for c in spec.classes])
            values = rng.normal(means[codes], stds[codes]).round(decimals)
            lo = -np.inf if f.minimum is None else f.minimum
            hi = np.inf if f.maximum is None else f.maximum
            values = np.clip(values, lo, hi)
        else:
            cats = np.asarray(f.categories, dtype=object)
            picked = np.empty(rows, dtype=object)
            for k, c in enumerate(spec.classes):
                idx = np.flatnonzero(codes == k)
                probs = stats["categorical"][f.name][c]
                picked[idx] = cats[rng.choice(len(cats), size=len(idx), p=probs)]
            values = picked
        if f.nullable and missing_share > 0:
            missing_masks[f.name] = rng.random(rows) < missing_share
        columns[f.name] = values
    numeric_nullable = [n for n in spec.numeric if n in missing_masks]
    if numeric_nullable:
        # A row with every measurement missing is dropped at ingest: keep one measured.
        all_missing = np.logical_and.reduce([missing_masks[n] for n in numeric_nullable])
        missing_masks[numeric_nullable[0]] &= ~all_missing
    for name, mask in missing_masks.items():
        if name in spec.numeric:
            columns[name] = np.where(mask, np.nan, columns[name])
        else:
            columns[name][mask] = None
    for name in spec.categorical:
        columns[name] = pd.array(columns[name], dtype="str")
    columns[spec.target] = pd.array(classes[codes], dtype="str")
    return pd.DataFrame(columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=None, help="default: params.yaml seed")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)

    params = load_params()
    sample, _ = clean_raw(pd.read_csv(args.sample))
    # Gaps well inside the contract's limit, so the dataset is valid by construction.
    missing = min(0.02, params.validate_.max_missing_share / 2)
    seed = params.seed if args.seed is None else args.seed
    df = generate(args.rows, class_statistics(sample), seed=seed, missing_share=missing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out, index=False)
    print(f"wrote {len(df)} rows, missing share per nullable feature {missing:.3f}, to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
