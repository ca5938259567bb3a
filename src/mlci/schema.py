"""The data contract for the bundled dataset (Palmer Penguins): the one file to replace for yours.

What lives here is domain knowledge and nothing else:

* ``Contract``: what a clean row is (pandera). Validation checks training data against it, the
  service derives its request model from it and drift monitoring reads its columns from it.
* ``TARGET`` and ``ID_COLUMN``: which contract columns are the label and the sample key; every
  other contract column is a model feature.
* ``RAW_COLUMNS`` and ``clean_raw``: how the raw source table maps onto the contract, and the
  source's known quality problems, each handled on purpose.

Bounds are physical plausibility limits, wider than what the sample shows, so that a legitimate
new sample passes and a unit mistake (grams typed as kilograms) does not.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

TARGET = "species"
ID_COLUMN = "sample_id"

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]
SEXES = ["female", "male"]


class Contract(pa.DataFrameModel):
    sample_id: Series[str] = pa.Field(unique=True, nullable=False)
    island: Series[str] = pa.Field(isin=ISLANDS, nullable=False)
    culmen_length_mm: Series[float] = pa.Field(ge=25.0, le=70.0, nullable=True)
    culmen_depth_mm: Series[float] = pa.Field(ge=10.0, le=25.0, nullable=True)
    flipper_length_mm: Series[float] = pa.Field(ge=150.0, le=250.0, nullable=True)
    body_mass_g: Series[float] = pa.Field(ge=2000.0, le=7000.0, nullable=True)
    sex: Series[str] = pa.Field(isin=SEXES, nullable=True)
    species: Series[str] = pa.Field(isin=SPECIES, nullable=False)

    class Config:
        strict = True  # an unexpected column is an error: new data is never silently ignored
        coerce = True  # "3750" in a CSV becomes 3750.0; "heavy" becomes a named failure


# Raw column name -> contract column name. Raw columns not listed here and not in
# ``RAW_UNUSED`` reach validation unchanged and are rejected there as unexpected.
RAW_COLUMNS = {
    "Island": "island",
    "Culmen Length (mm)": "culmen_length_mm",
    "Culmen Depth (mm)": "culmen_depth_mm",
    "Flipper Length (mm)": "flipper_length_mm",
    "Body Mass (g)": "body_mass_g",
    "Sex": "sex",
    "Species": "species",
}
# Columns of the raw table the model does not use: study metadata, free text, and the blood
# isotope ratios (missing for 14 of 344 birds and not measurable at serving time).
RAW_UNUSED = [
    "Region",
    "Stage",
    "Individual ID",
    "Clutch Completion",
    "Date Egg",
    "Delta 15 N (o/oo)",
    "Delta 13 C (o/oo)",
    "Comments",
]
MEASUREMENTS = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]


def clean_raw(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Map the raw table onto the contract's names and fix its known problems.

    Returns the cleaned table and a count per fix, which the ingest stage records. Works on a
    table that already uses the contract's names too (then most fixes are no-ops).
    """
    fixes: dict[str, int] = {}
    df = df.rename(columns=RAW_COLUMNS).drop(columns=RAW_UNUSED, errors="ignore")

    if TARGET in df.columns:
        # "Adelie Penguin (Pygoscelis adeliae)" -> "Adelie"
        species = df[TARGET].astype("string")
        df[TARGET] = species.str.split(" ", n=1).str[0]

    # The sample key: "Sample Number" restarts for every study and species, so only the three
    # together identify a sample. Individual IDs repeat across seasons (the same bird resampled).
    if {"studyName", "Sample Number"} <= set(df.columns) and TARGET in df.columns:
        parts = [df["studyName"], df[TARGET], df["Sample Number"]]
        key = parts[0].astype("string").str.cat([p.astype("string") for p in parts[1:]], sep="-")
        df.insert(0, ID_COLUMN, key)
        df = df.drop(columns=["studyName", "Sample Number"])

    if "sex" in df.columns:
        sex = df["sex"].astype("string").str.strip().str.lower()
        # One bird is recorded with sex "." (a data-entry placeholder): treat it as unknown.
        placeholder = sex.eq(".").fillna(False)
        fixes["sex_placeholder_set_missing"] = int(placeholder.sum())
        df["sex"] = sex.mask(placeholder)

    # Two birds were never measured ("Adult not sampled"): a row with no measurement at all
    # carries no signal for the model, so it is dropped rather than imputed.
    present = [c for c in MEASUREMENTS if c in df.columns]
    if present:
        unmeasured = df[present].isna().all(axis=1)
        fixes["unmeasured_rows_dropped"] = int(unmeasured.sum())
        df = df.loc[~unmeasured]
    return df, fixes
