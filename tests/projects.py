"""Small generated fixture projects: the template's machinery with a table it has never seen.

Tests of machinery use these instead of the bundled example, so they keep passing after an
adopter replaces the example (``make adopt``), and they cover what adopters bring: numeric-only,
categorical-only, binary, regression, digit-coded and high-cardinality categories, missing values.

``make_project(dest, kind)`` copies the repository's tracked files (tests.helpers.copy_repo),
replaces the adopter's package (``src/project/``), the data and ``params.yaml``'s dataset-specific
parts, drops the example's committed results and commits: a fresh project, ready for
``dvc repro``. The contracts here are written by hand, on purpose independent of ``mlci adopt``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.helpers import TEST_REPEATS, copy_repo, git

KINDS = ("binary_numeric", "multiclass_numeric", "regression", "mixed_codes", "categorical_only")


@dataclass
class Project:
    root: Path
    kind: str
    task: str
    target: str
    id_column: str | None
    data: pd.DataFrame  # the whole generated table, as written
    slices: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [c for c in self.data.columns if c not in (self.target, self.id_column)]

    def rows(self, n: int = 3) -> list[dict]:
        """``n`` rows of the table's features as a JSON-ready request (missing values → None)."""
        frame = self.data[self.features].head(n).astype(object)
        return frame.where(frame.notna(), None).to_dict(orient="records")


def table(kind: str, n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, str, str | None, str]:
    """A generated table with learnable signal: (frame, target, id column, task)."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=(3, n))
    ids = [f"r{i:05d}" for i in range(n)]
    if kind == "binary_numeric":
        df = pd.DataFrame({"radius": 10 + 2 * x1, "texture": 20 + 4 * x2, "smooth": 0.1 * x3})
        df["diagnosis"] = np.where(x1 + 0.5 * x2 + 0.3 * rng.normal(size=n) > 0, "M", "B")
        return df, "diagnosis", None, "classification"
    if kind == "multiclass_numeric":
        df = pd.DataFrame({"alcohol": 13 + x1, "hue": 1 + 0.2 * x2, "ash": 2.3 + 0.3 * x3})
        score = x1 + 0.8 * x2 + 0.3 * rng.normal(size=n)
        df["cultivar"] = np.select([score < -0.5, score < 0.5], ["c1", "c2"], "c3")
        df.insert(0, "sample", ids)
        return df, "cultivar", "sample", "classification"
    if kind == "regression":
        df = pd.DataFrame({"age": 40 + 10 * x1, "bmi": 25 + 4 * x2, "bp": 90 + 12 * x3})
        df["region"] = rng.choice(["north", "south", "east"], size=n)
        shift = df["region"].map({"north": 5.0, "south": -5.0, "east": 0.0})
        df["progression"] = 150 + 30 * x1 + 20 * x2 + shift + 5 * rng.normal(size=n)
        return df, "progression", None, "regression"
    if kind == "mixed_codes":
        # Digit-coded categories with leading zeros, a high-cardinality code, missing values.
        store = rng.choice(["001", "002", "010"], size=n)
        postcode = np.array([f"{v:05d}" for v in rng.integers(0, 400, size=n)])
        df = pd.DataFrame(
            {
                "order_id": [f"0{i:06d}" for i in range(n)],
                "store": store,
                "postcode": postcode,
                "channel": rng.choice(["web", "shop"], size=n),
                "basket": np.round(30 + 10 * x1, 2),
            }
        )
        df.loc[rng.choice(n, size=n // 20, replace=False), "channel"] = None
        df.loc[rng.choice(n, size=n // 20, replace=False), "basket"] = np.nan
        signal = x1 + np.where(store == "010", 1.5, 0.0) + 0.3 * rng.normal(size=n)
        df["returned"] = np.where(signal > 0.7, "yes", "no")
        return df, "returned", "order_id", "classification"
    if kind == "categorical_only":
        colour = rng.choice(["red", "green", "blue"], size=n)
        size = rng.choice(["S", "M", "L"], size=n)
        flip = rng.random(size=n) < 0.1
        label = np.where((colour == "red") | (size == "L"), "keep", "drop")
        label = np.where(flip, np.where(label == "keep", "drop", "keep"), label)
        df = pd.DataFrame({"colour": colour, "size": size, "label": label})
        return df, "label", None, "classification"
    raise ValueError(f"unknown fixture kind {kind!r}; choose from {KINDS}")


def contract_source(df: pd.DataFrame, target: str, id_column: str | None, task: str) -> str:
    """A hand-rendered pandera contract for a generated table (bounds wider than the data)."""
    lines = [
        '"""Generated fixture contract (tests/projects.py)."""',
        "",
        "import pandera.pandas as pa",
        "from pandera.typing import Series",
        "",
        f"TARGET = {target!r}",
        f"ID_COLUMN = {id_column!r}",
        "",
        "",
        "class Contract(pa.DataFrameModel):",
    ]
    for col in df.columns:
        values = df[col]
        nullable = bool(values.isna().any())
        if col == id_column:
            lines.append(f"    {col}: Series[str] = pa.Field(unique=True, nullable=False)")
        elif pd.api.types.is_numeric_dtype(values):
            lo, hi = float(values.min()), float(values.max())
            pad = (hi - lo) * 0.5 + 1.0
            lines.append(
                f"    {col}: Series[float] = pa.Field(ge={lo - pad!r}, le={hi + pad!r}, "
                f"nullable={nullable})"
            )
        else:
            cats = sorted(values.dropna().unique())
            closed = len(cats) <= 20 or (col == target and task == "classification")
            isin = f"isin={cats!r}, " if closed else ""
            lines.append(f"    {col}: Series[str] = pa.Field({isin}nullable={nullable})")
    lines += ["", "    class Config:", "        strict = True", "        coerce = True", ""]
    return "\n".join(lines)


CLEANING = '''"""Generated fixture: the table already uses the contract's names."""

import pandas as pd


def clean_raw(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    return df, {}
'''

GATE = {
    "classification": {
        "minimum": {},
        "maximum": {},
        "max_regression": {"accuracy": 0.01, "f1_macro": 0.01, "log_loss": 0.05},
        "must_beat_baseline": ["f1_macro", "log_loss"],
        "baseline_margin": {"f1_macro": 0.05},
    },
    "regression": {
        "minimum": {},
        "maximum": {},
        "max_regression": {"r2": 0.01},
        "must_beat_baseline": ["rmse", "mae", "r2"],
        "baseline_margin": {"r2": 0.05},
    },
}
ESTIMATOR = {
    "classification": {"name": "logistic_regression", "params": {"C": 1.0, "max_iter": 1000}},
    "regression": {"name": "ridge", "params": {"alpha": 1.0}},
}


def write_fixture(root: Path, kind: str, n: int = 400, seed: int = 0) -> Project:
    """Replace ``root``'s adopter package, data and dataset params with a generated ``kind``."""
    df, target, id_column, task = table(kind, n, seed)
    data = root / "data" / "fixture.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(data, index=False)
    (root / "src/project/schema.py").write_text(contract_source(df, target, id_column, task))
    (root / "src/project/cleaning.py").write_text(CLEANING)

    params = yaml.safe_load((root / "params.yaml").read_text())
    categorical = [
        c
        for c in df.columns
        if c not in (target, id_column) and not pd.api.types.is_numeric_dtype(df[c])
    ]
    slices = [c for c in categorical if df[c].nunique() <= 20][:2]
    params.update(task=task, gate=GATE[task])
    params["data"] = {"source": "data/fixture.csv", "format": "auto"}
    params["validate"]["min_rows"] = 50
    params["validate"]["min_class_share"] = 0.05 if task == "classification" else 0.0
    params["train"] = {"estimator": ESTIMATOR[task], "baseline": None}
    params["evaluate"]["slices"] = slices
    params["evaluate"].update(TEST_REPEATS)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _drop_example_results(root)
    return Project(root, kind, task, target, id_column, df, slices)


def _drop_example_results(root: Path) -> None:
    for rel in ("models/model.skops", "models/baseline.skops", "models/model_meta.json"):
        (root / rel).unlink(missing_ok=True)
    for rel in ("reports", "data/interim", "data/processed", "data/sample"):
        shutil.rmtree(root / rel, ignore_errors=True)
    (root / "dvc.lock").unlink(missing_ok=True)


def make_project(dest: Path, kind: str, n: int = 400, seed: int = 0) -> Project:
    """A fresh git repository: this template with a generated ``kind`` table, committed."""
    copy_repo(dest)
    project = write_fixture(dest, kind, n, seed)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", f"adopt a {kind} fixture table")
    return project


def shifted_batch(
    root: Path, name: str, column: str, shift: float, seed: int, id_column: str | None = None
) -> Path:
    """A production batch of 200 rows resampled from a trained project's training split, with
    ``column`` moved by ``shift`` (0: no drift), written to ``root/<name>.csv``."""
    train = pd.read_parquet(root / "data/processed/train.parquet")
    df = train.sample(200, replace=True, random_state=seed).reset_index(drop=True)
    if id_column:
        df[id_column] = [f"{name}-{i}" for i in range(len(df))]
    df[column] = df[column] + shift
    path = root / f"{name}.csv"
    df.to_csv(path, index=False)
    return path
