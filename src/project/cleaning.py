"""How the raw source table becomes contract rows: the example's cleaning rules.

``RAW_COLUMNS`` maps the raw table's names onto the contract's; ``clean_raw`` fixes the source's
known quality problems, each on purpose and counted (the ingest stage records the counts).
Replace it with your source's rules; a source that already uses the contract's names needs none.
"""

from __future__ import annotations

import pandas as pd

from project.schema import ID_COLUMN, TARGET

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
