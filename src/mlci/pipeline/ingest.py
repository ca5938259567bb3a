"""Lifecycle step 1 (DVC stage `ingest`): read the source table, clean it with the project's
rules, write data/interim/ingested.parquet."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mlci import contract, files, paths, tables
from mlci.config import DataConfig, Params
from mlci.errors import UserError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def source_format(source: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    fmt = tables.table_format(source)  # the one table of name endings drift reads too
    if fmt in ("csv", "parquet"):
        return fmt
    raise UserError(
        f"data.source {source!r}: cannot tell the format from the name; "
        "set data.format to csv or parquet in params.yaml"
    )


def read_source(cfg: DataConfig, text_columns: list[str] | None = None) -> pd.DataFrame:
    """Read a local path or any fsspec URL (s3://, gs://, az://, https://, ...).

    ``text_columns`` are read from a CSV as strings, never as inferred numbers."""
    source = cfg.source
    if not _URL.match(source) and Path(source).is_dir():  # before the format: a folder has none
        raise UserError(f"data.source {source!r}: is a directory; name a CSV or Parquet file")
    fmt = source_format(source, cfg.format)
    if not _URL.match(source) and not Path(source).is_file():
        raise UserError(
            f"data.source {source!r}: file not found (a DVC-tracked file may need `dvc pull` first)"
        )
    try:
        if fmt == "parquet":
            df = pd.read_parquet(source)
        else:
            sep = "\t" if source.lower().endswith(".tsv") else ","
            df = pd.read_csv(source, sep=sep, dtype=dict.fromkeys(text_columns or [], "string"))
    except pd.errors.EmptyDataError:
        raise UserError(f"data.source {source!r}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise UserError(f"data.source {source!r}: cannot read it as {fmt}: {err}") from None
    except ImportError as err:
        raise UserError(
            f"data.source {source!r}: reading this URL needs an extra package ({err}); "
            "add it with `uv add`"
        ) from None
    # Keep the source's row numbers as the index: validation errors then name the row a user
    # can find in their file (data row N, counting from 0), even after cleaning drops rows.
    df.index = pd.RangeIndex(len(df), name="source_row")
    return df


def ingest(params: Params) -> dict:
    raw = read_source(params.data, tables.text_columns())
    cleaned, fixes = tables.clean(raw, f"data.source {params.data.source!r}")
    cleaned, unlabelled = tables.drop_unlabelled(cleaned, contract.spec().target)
    if unlabelled:
        fixes["rows_without_target_dropped"] = unlabelled
    summary = {
        "source": params.data.source,
        "source_sha256": _source_digest(params.data.source),
        "rows_read": len(raw),
        "columns_read": len(raw.columns),
        "rows_out": len(cleaned),
        "fixes": fixes,
    }
    files.write_parquet(paths.INGESTED, cleaned)
    files.write_json(paths.INGEST_REPORT, summary)
    return summary


def _source_digest(source: str) -> str | None:
    return None if _URL.match(source) else files.sha256_file(Path(source))
