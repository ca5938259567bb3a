"""Saving and loading models with skops, never pickle.

skops refuses to load any type not on an explicit trust list. ``TRUSTED`` is that list: every
scikit-learn type the template's pipelines and estimators contain, and nothing else of
scikit-learn (skops's own default, every public estimator, is switched off: ``_skops_io``).
Saving checks a model against it, so a new estimator whose types are not listed fails at
training time with the type named, not at serving time.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import scipy
import sklearn.utils

from mlci import files
from mlci.errors import UserError

# The pipeline's steps (mlci.pipeline.train), the registry's estimators and baselines
# (mlci.estimators; a test checks every one is here) and the types inside them.
TRUSTED = [
    "numpy.dtype",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
]


def _skops_io() -> ModuleType:
    """``skops.io``, with only ``TRUSTED`` (and skops's primitives) trusted in scikit-learn.

    On import, skops trusts every public scikit-learn estimator by default, and finds them with
    ``sklearn.utils.all_estimators()``, which imports every scikit-learn module (pytest and
    dask.array with them): half a second of every process that saves or loads a model, a
    quarter of a small project's train or evaluate stage. The template never relies on that
    default (it names what it trusts), so the walk is skipped and the default emptied: the same
    trust however skops was first imported.

    Likewise skops trusts SciPy's ufuncs by default, and names each one by searching every
    loaded module for it (0.1 s); no model here holds one, so skops is shown an empty
    ``scipy.special`` while it loads, and that default is emptied too.
    """
    walk, special = sklearn.utils.all_estimators, importlib.import_module("scipy.special")
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    scipy.special = ModuleType("scipy.special")  # type: ignore[attr-defined]
    try:
        import skops.io
        from skops.io import _trusted_types
    finally:
        sklearn.utils.all_estimators = walk
        scipy.special = special  # type: ignore[attr-defined]
    # Both lists are read at each load and save (skops 0.16).
    _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES.clear()
    _trusted_types.SCIPY_UFUNC_TYPE_NAMES.clear()
    return skops.io


sio = _skops_io()


# A skops file is a zip archive: ``schema.json`` plus one member per stored array. As written,
# it differs between two dumps of the same model: every object carries its Python ``id()`` (as
# ``__id__``, and as the name of its ``.npy`` member), some members get random names, and every
# member is stamped with the current time. ``canonical_bytes`` removes all three, so the same
# fitted model always gives the same bytes and ``dvc.lock`` records the same hash on any run.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical_bytes(data: bytes) -> bytes:
    """The same skops archive with ids renumbered, members renamed and timestamps fixed.

    Ids and member names are replaced by their order of first appearance in ``schema.json``
    (itself written in the model's own attribute order). Renumbering is one-to-one, so objects
    that were shared stay shared, and the loader sees the same structure and the same arrays.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        members = set(src.namelist()) - {"schema.json"}
        ids: dict[int, int] = {}
        renamed: dict[str, str] = {}

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "__id__" and type(value) is int:
                        # From 1: the loader ignores a false id (0), losing the sharing.
                        node[key] = ids.setdefault(value, len(ids) + 1)
                    elif key == "file" and isinstance(value, str) and value in members:
                        suffix = PurePosixPath(value).suffix
                        node[key] = renamed.setdefault(value, f"{len(renamed)}{suffix}")
                    else:
                        walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(schema)
        # Members schema.json does not name (none today) are kept, in name order.
        for name in sorted(members - set(renamed)):
            renamed[name] = f"unreferenced/{name}"

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:

            def put(name: str, payload: bytes) -> None:
                info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = 3  # Unix, whichever system writes it
                info.external_attr = 0o644 << 16
                dst.writestr(info, payload)

            for old, new in renamed.items():
                put(new, src.read(old))
            put("schema.json", json.dumps(schema, indent=2).encode())
    return out.getvalue()


def save_model(model: Any, path: Path) -> None:
    """Save ``model`` with skops, byte-reproducibly; refuse types not on ``TRUSTED``."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(canonical_bytes(sio.dumps(model)))
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
