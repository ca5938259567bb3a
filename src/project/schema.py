"""The data contract of the bundled example (Palmer Penguins): replace it with yours.

What lives here is domain knowledge and nothing else:

* ``Contract``: what a clean row is (pandera). Validation checks training data against it, the
  service derives its request model from it and drift monitoring reads its columns from it.
* ``TARGET`` and ``ID_COLUMN``: which contract columns are the label and the sample key; every
  other contract column is a model feature.

How the raw source maps onto the contract lives next door, in ``cleaning.py``.

Bounds are physical plausibility limits, wider than what the sample shows, so that a legitimate
new sample passes and a unit mistake (grams typed as kilograms) does not.
"""

from __future__ import annotations

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
