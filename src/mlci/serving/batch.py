"""``mlci predict`` / ``make predict``: score a table of any size with the approved model.

The input (CSV or Parquet: a local path or an fsspec URL) is read in chunks with pyarrow, so
memory stays flat whatever its size. Each chunk is checked against the data contract row by
row (types, missing values, ranges, allowed categories): a row that breaks it is not scored but
written to the bad-rows file (source row, column, problem, value) and counted, never dropped in
silence. Good rows are scored through the serving predictor (:meth:`Predictor.score_columns`:
the chunk's columns as they are, the compiled fast path where the model allows it) and appended
to the Parquet output with the ID column (or the source row number), the prediction, class
probabilities and the model version.

With ``MLCI_DASK_SCHEDULER`` set, the same :func:`score_frame` maps over the partitions of a
Dask dataframe on the cluster; the client writes the results in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlci import cluster, paths
from mlci.errors import UserError
from mlci.serving.model_store import default_tag
from mlci.serving.predictor import Predictor

CHUNK_ROWS = 50_000
BAD_COLUMNS = ["row", "column", "problem", "value"]


@dataclass
class Outcome:
    rows: int = 0
    scored: int = 0
    bad_rows: int = 0
    problems: int = 0
    output: str = ""
    bad_rows_file: str = ""
    model_version: str = ""
    chunks: int = 0
    notes: list[str] = field(default_factory=list)


def _open(source: str) -> Any:
    """A local path as it is; a URL through fsspec (s3://, gs://, https://, ...)."""
    if "://" not in source:
        if not Path(source).is_file():
            raise UserError(f"predict: input {source}: file not found")
        return source
    import fsspec

    try:
        return fsspec.open(source, "rb").open()
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"predict: input {source}: cannot open it ({err})") from None


def _format(source: str) -> str:
    name = source.lower().split("?", 1)[0]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    raise UserError(f"predict: input {source}: unknown format; use .csv or .parquet")


def chunks(source: str, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The input in chunks of about ``rows`` rows; every CSV column as text (a number column
    with one bad value must not stop the read: the check reports that row)."""
    handle = _open(source)
    try:
        if _format(source) == "parquet":
            # pre_buffer=False: with it, the reader keeps every row group's buffers until the
            # file is closed (measured: +30 MiB per million rows); without, memory stays flat.
            reader = pq.ParquetFile(handle, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=rows):
                yield batch.to_pandas()
        else:
            from pyarrow import csv

            head = csv.open_csv(handle, read_options=csv.ReadOptions(block_size=1 << 16))
            names = head.schema.names
            head.close()
            handle = _open(source) if not isinstance(handle, str) else handle
            reader = csv.open_csv(
                handle,
                read_options=csv.ReadOptions(block_size=max(1 << 20, rows * 64)),
                parse_options=csv.ParseOptions(delimiter="\t" if source.endswith(".tsv") else ","),
                convert_options=csv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=True,  # "", NA, NaN, null: missing, as pandas reads them
                ),
            )
            for batch in reader:
                yield batch.to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"predict: input {source}: cannot read it: {err}") from None


def check_frame(df: pd.DataFrame, spec: Any, offset: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows in the contract's types, bad-row findings). ``offset``: the chunk's first source
    row, so findings name the row of the input file (counting data rows from 0)."""
    missing = [f.name for f in spec.features if f.name not in df.columns]
    if missing:
        raise UserError(f"predict: the input lacks the contract's feature columns {missing}")
    rows = np.arange(offset, offset + len(df))
    found: list[pd.DataFrame] = []
    out = {}

    def report(mask: np.ndarray, column: str, problem: str, values: pd.Series) -> None:
        if mask.any():
            found.append(
                pd.DataFrame(
                    {
                        "row": rows[mask],
                        "column": column,
                        "problem": problem,
                        "value": values[mask].astype("string").to_numpy(),
                    }
                )
            )

    for f in spec.features:
        raw = df[f.name]
        absent = raw.isna().to_numpy()
        if f.kind == "numeric":
            values = pd.to_numeric(raw, errors="coerce").astype("float64")
            report(np.isnan(values.to_numpy()) & ~absent, f.name, "not a number", raw)
            v = values.to_numpy()
            if f.minimum is not None:
                report(v < f.minimum, f.name, f"below the minimum {f.minimum}", raw)
            if f.maximum is not None:
                report(v > f.maximum, f.name, f"above the maximum {f.maximum}", raw)
            out[f.name] = values
        else:
            values = raw if pd.api.types.is_string_dtype(raw) else raw.astype("string")
            if f.categories:
                unknown = ~values.isin(list(f.categories)).to_numpy() & ~absent
                report(unknown, f.name, "not an allowed category", raw)
            out[f.name] = values
        if not f.nullable:
            report(absent, f.name, "missing", raw)
    clean = pd.DataFrame(out, index=df.index)
    if spec.id_column and spec.id_column in df.columns:
        clean.insert(0, spec.id_column, df[spec.id_column].astype("string").to_numpy())
    clean.insert(0, "row", rows)
    bad = (
        pd.concat(found, ignore_index=True).sort_values("row", kind="stable")
        if found
        else pd.DataFrame(columns=BAD_COLUMNS)
    )
    return clean, bad


def score_frame(
    df: pd.DataFrame, predictor: Predictor, offset: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One chunk (or Dask partition): (scored good rows, bad-row findings)."""
    spec = predictor.spec
    checked, bad = check_frame(df, spec, offset)
    good = checked.loc[~checked["row"].isin(bad["row"].to_numpy())]
    keep = ["row", *([spec.id_column] if spec.id_column in good.columns else [])]
    out = good[keep].reset_index(drop=True)
    if len(good):
        # The columns as they are: building a record per row cost as much as the model itself.
        predictions, proba = predictor.score_columns(good[spec.feature_names])
    else:
        predictions, proba = np.array([], dtype=object), None
    # object, not "string": pyarrow converts str objects at write time far faster
    out["prediction"] = pd.Series(
        predictions, dtype="float64" if predictor.task == "regression" else object
    )
    for i, cls in enumerate(predictor.classes):
        out[f"probability_{cls}"] = proba[:, i] if proba is not None else np.array([], float)
    out["model_version"] = pd.Series([predictor.version] * len(out), dtype=object)
    return out, bad


def load_approved() -> Predictor:
    """The model dvc.lock records (models/model.skops), named by the version the service gives
    it (``mlci-classifier:<version>``)."""
    if not paths.MODEL.is_file():
        raise UserError(f"predict: {paths.MODEL} not found: run `make run` (or `make pull`)")
    version = default_tag().split(":", 1)[1]
    return Predictor.load(paths.MODEL, version)


def predict(
    source: str, output: Path, bad_rows: Path | None = None, chunk_rows: int = CHUNK_ROWS
) -> Outcome:
    predictor = load_approved()
    bad_rows = bad_rows or output.with_name(output.stem + ".bad_rows.csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    done = Outcome(output=str(output), bad_rows_file=str(bad_rows), model_version=predictor.version)
    partial, partial_bad = (
        output.with_name(output.name + ".partial"),
        bad_rows.with_name(bad_rows.name + ".partial"),
    )
    writer: pq.ParquetWriter | None = None
    finished = False
    try:
        with partial_bad.open("w", encoding="utf-8") as bad_file:
            bad_file.write(",".join(BAD_COLUMNS) + "\n")
            for scored, bad in _results(source, predictor, chunk_rows, done):
                if writer is None:
                    writer = _writer(partial, predictor, list(scored.columns))
                table = pa.Table.from_pandas(scored, schema=writer.schema, preserve_index=False)
                writer.write_table(table)
                bad.to_csv(bad_file, header=False, index=False)
                done.scored += len(scored)
                done.problems += len(bad)
                done.bad_rows += int(bad["row"].nunique())  # a row's problems stay in its chunk
                done.chunks += 1
        if writer is None:  # an empty input: an empty output with the columns
            spec = predictor.spec
            names = [*([spec.id_column] if spec.id_column else []), *spec.feature_names]
            empty, _ = score_frame(pd.DataFrame(columns=names), predictor, 0)
            writer = _writer(partial, predictor, list(empty.columns))
        finished = True
    finally:
        if writer is not None:
            writer.close()
        if not finished:  # a stopped or failed run leaves nothing half-written behind
            partial.unlink(missing_ok=True)
            partial_bad.unlink(missing_ok=True)
    partial.replace(output)
    partial_bad.replace(bad_rows)
    return done


def _writer(path: Path, predictor: Predictor, columns: list[str]) -> pq.ParquetWriter:
    """Dictionary encoding only for the few-valued text columns (the label, the version): on
    the row number, the ID and the probabilities it is tried and abandoned on every page, which
    made writing 2.5 times slower and the file a quarter larger (measured). The types are the
    same; only the file's page encoding differs."""
    few = ["model_version", *(["prediction"] if predictor.task == "classification" else [])]
    return pq.ParquetWriter(path, _schema(predictor, columns), use_dictionary=few)


def _schema(predictor: Predictor, columns: list[str]) -> pa.Schema:
    """The output's types, fixed up front: a first chunk of only bad rows must not decide them."""
    prediction = pa.float64() if predictor.task == "regression" else pa.string()
    types = {"row": pa.int64(), "prediction": prediction, "model_version": pa.string()}
    return pa.schema(
        [
            (c, types.get(c, pa.float64() if c.startswith("probability_") else pa.string()))
            for c in columns
        ]
    )


def _results(
    source: str, predictor: Predictor, chunk_rows: int, done: Outcome
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    address = cluster.scheduler_address()
    if address is None:
        offset = 0
        for chunk in chunks(source, chunk_rows):
            yield score_frame(chunk, predictor, offset)
            offset += len(chunk)
            done.rows = offset
        return
    yield from _dask_results(source, predictor, chunk_rows, done)


def _dask_results(
    source: str, predictor: Predictor, chunk_rows: int, done: Outcome
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """The same ``score_frame`` over the Dask dataframe's partitions, on the cluster; a few
    partitions in flight at a time, so the client holds only those."""
    import dask
    import dask.dataframe as dd

    with cluster.client() as client:
        if _format(source) == "parquet":
            frame = dd.read_parquet(source, split_row_groups="adaptive")
        else:
            frame = dd.read_csv(source, dtype=str, blocksize=max(1 << 20, chunk_rows * 64))
        parts = frame.to_delayed()
        lengths = client.compute([dask.delayed(len)(p) for p in parts], sync=True)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
        remote = client.scatter(predictor, broadcast=True)
        window = max(2, 2 * len(client.scheduler_info().get("workers", {})))
        futures: list[Any] = []
        for i, part in enumerate(parts):
            futures.append(client.compute(dask.delayed(score_frame)(part, remote, offsets[i])))
            if len(futures) >= window:
                yield futures.pop(0).result()
        for future in futures:
            yield future.result()
        done.rows = int(sum(lengths))
