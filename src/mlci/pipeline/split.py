"""Lifecycle step 3 (DVC stage `split`): the validated table into train and test parts."""

from __future__ import annotations

import pandas as pd

from mlci import contract, files, paths
from mlci.config import Params, SplitConfig
from mlci.errors import UserError


def split(params: Params) -> dict:
    df = pd.read_parquet(paths.VALIDATED)
    spec = contract.spec()
    stratify = spec.target if spec.task == "classification" else None
    train, test = split_frame(df, stratify, params.split, params.seed)
    files.write_parquet(paths.TRAIN, train)
    files.write_parquet(paths.TEST, test)
    return {"train_rows": len(train), "test_rows": len(test)}


def split_frame(
    df: pd.DataFrame, stratify: str | None, cfg: SplitConfig, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Imported here, not at the top: the CLI imports this module for every command.
    from sklearn.model_selection import train_test_split

    # Classification is stratified so every class is in both parts in the same proportion; the
    # contract's class balance check guarantees each class has enough rows for that.
    try:
        train, test = train_test_split(
            df,
            test_size=cfg.test_size,
            random_state=seed,
            stratify=df[stratify] if stratify else None,
        )
    except ValueError as err:
        msg = f"split: cannot split {len(df)} rows with test_size={cfg.test_size}: {err}"
        raise UserError(msg) from None
    return train.sort_index(), test.sort_index()
