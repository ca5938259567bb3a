"""Reading a data file the way training data is read: the contract's types, the project's cleaning.

A CSV read with inferred types turns a digit code such as '02139' or '001' into the number 2139
or 1, and a categorical column of small integers into floats: the same values as training, but
no longer equal to them. Here the contract's text columns (categorical features, the ID, a class
target; under their raw source names too, ``cleaning.RAW_COLUMNS``) are read as strings, and
:func:`clean` applies the adopter's ``clean_raw`` and then the contract's text types, exactly as
the ingest stage does, so a batch in the source's raw format arrives as training rows did.

CSV, Parquet and JSON lines (one object per row) are read; the row index is the file's data row
(counting from 0), kept through cleaning so that findings name the row a user can find.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mlci import contract
from mlci.errors import UserError
from project import cleaning

# By the name's ending (a URL's query left out); the ingest stage reads the same csv and parquet.
FORMATS = {
    (".parquet", ".pq"): "parquet",
    (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".tsv", ".txt"): "csv",
    (".jsonl", ".ndjson"): "jsonl",
}


def text_columns() -> list[str]:
    """The contract's text columns, by their contract names and their raw source names."""
    text = set(contract.string_columns())
    renamed = getattr(cleaning, "RAW_COLUMNS", {})
    return sorted(text | {raw for raw, name in renamed.items() if name in text})


def table_format(path: Path | str) -> str | None:
    name = str(path).lower().split("?", 1)[0]
    return next((fmt for endings, fmt in FORMATS.items() if name.endswith(endings)), None)


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV, Parquet or JSON-lines file as read, text columns as strings; a UserError naming
    ``what`` and the file when it cannot be read."""
    path = Path(path)
    fmt = table_format(path)
    if fmt is None:
        raise UserError(f"{what} {path}: unknown format; use .csv (.tsv), .parquet or .jsonl")
    if not path.is_file():
        raise UserError(f"{what} {path}: file not found")
    text = text_columns()
    try:
        if fmt == "csv":
            sep = "\t" if path.name.lower().endswith(".tsv") else ","
            df = pd.read_csv(path, sep=sep, dtype=dict.fromkeys(text, "string"))
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            # dtype=False: no guessing (a code "001" stays a string; numbers stay numbers).
            df = pd.read_json(path, lines=True, dtype=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise UserError(f"{what} {path}: cannot read it as {fmt}: {_first_line(err)}") from None
    df.index = pd.RangeIndex(len(df), name="source_row")
    return contract.as_contract_types(df)


def clean(df: pd.DataFrame, what: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The project's ``clean_raw`` (a no-op on a table already in the contract's form), then the
    contract's text types: the same rows a training table would become."""
    try:
        cleaned, fixes = cleaning.clean_raw(df)
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        # The adopter's rules expect columns or values this file does not have.
        raise UserError(
            f"{what}: src/project/cleaning.py clean_raw cannot clean it "
            f"({type(err).__name__}: {_first_line(err)}); is it a table of the source's kind?"
        ) from None
    if not cleaned.index.is_unique:  # findings name rows by index: keep it one-to-one
        cleaned = cleaned.reset_index(drop=True)
    return contract.as_contract_types(cleaned), {str(k): int(v) for k, v in fixes.items()}


def drop_unlabelled(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """Training rows need a target: the rows without one, dropped, and how many. (Only the
    training path does this; a drift batch keeps its unlabelled rows for the feature tests.)"""
    if target not in df.columns:
        return df, 0
    unlabelled = df[target].isna()
    return df.loc[~unlabelled], int(unlabelled.sum())


def is_json_table(path: Path) -> bool:
    """Whether a ``.jsonl`` file holds table rows (columns at the top level) rather than the
    service's prediction log (``features``, ``prediction``, ... at the top level).

    Decided by the first line that parses as a JSON object: table rows name contract columns
    (or raw source columns) and have no ``features`` object."""
    names = {*contract.spec().feature_names, contract.spec().target}
    names |= set(getattr(cleaning, "RAW_COLUMNS", {}))
    try:
        with Path(path).open("rb") as handle:
            for number, raw in enumerate(handle):
                if number >= 100:
                    break
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(record, dict):
                    return "features" not in record and bool(set(record) & names)
    except OSError:
        return False  # the log reader reports why it cannot be opened
    return False


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
