"""Saving and loading models with skops, never pickle.

skops refuses to load any type not on an explicit trust list. ``TRUSTED`` is that list: the
non-default types the template's estimators contain. Saving checks a model against it, so a new
estimator whose types are not listed fails at training time with the type named, not at
serving time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio

from mlci import files
from mlci.errors import UserError

TRUSTED = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]


# skops files are not byte-reproducible (they embed Python object ids), so reproducibility is
# checked on predictions and metrics, not on the file's hash.
def save_model(model: Any, path: Path) -> None:
    def write(tmp: Path) -> None:
        sio.dump(model, tmp)
        untrusted = sorted(set(sio.get_untrusted_types(file=tmp)) - set(TRUSTED))
        if untrusted:
            raise RuntimeError(
                f"model contains types not on the skops trust list: {untrusted}. "
                "Review them and add them to TRUSTED in src/mlci/artifacts.py."
            )

    files.atomic_write(path, write)


def load_model(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} not found: run `make run` (or `dvc pull`) first")
    try:
        return sio.load(path, trusted=TRUSTED)
    except Exception as err:  # skops raises many types for a damaged or foreign file
        raise UserError(
            f"model file {path} cannot be loaded ({type(err).__name__}: {err}); it is corrupt, "
            "from an incompatible version or contains untrusted types. Rebuild it with `make run`."
        ) from None
