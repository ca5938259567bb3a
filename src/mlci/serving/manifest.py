"""The serving manifest, ``serving.json`` next to ``model.skops`` in the BentoML store: what a
serving worker needs to start answering, worked out once when the model is registered.

Why: loading the model with skops imports scikit-learn (about 2 s here), reading the pandera
contract imports pandas and pandera (0.7 s), and ``bentoml serve`` imports the service in its
supervisor and again in every worker: a cold start paid for both, twice, to run a fast path that
needs neither. The manifest holds

* ``spec``: the contract's facts (features, kinds, bounds, categories, ID column, target); the
  request model, the answers' shape and the prediction log are built from it;
* ``classes``: the model's classes (empty for regression);
* ``fast_path``: the registration-time verdict of :class:`mlci.serving.predictor.Predictor`
  (``mode``, ``reason``) and, for a fully compiled model, the compiled arrays, the probe records,
  the pipeline's answers to them and the largest difference the compiled path showed (``probe``).

A worker rebuilds the compiled path from it with NumPy alone and repeats the start-up proof
against the recorded answers (a millisecond): a compiled path that does not give the pipeline's
answers is never used. The pipeline is loaded only if something asks for it.

It is used only while it describes what is served; :func:`read` says why not otherwise: the model
file's md5, the contract's source (``mlci/contract.py``, ``mlci/spec.py`` and the ``project``
package), the scikit-learn version and the manifest format must be the ones it was written with.
Otherwise the worker loads, compiles and checks the pipeline at start, as without a manifest
(slower, same answers), and says so once; ``mlci register-model`` writes a fresh one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import time
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlci.spec import Feature, Spec

FILE = "serving.json"
# Bump when the layout or the meaning of a field changes: older manifests are then not used.
FORMAT = 1


def spec_to_json(spec: Any) -> dict[str, Any]:
    """The facts of a ``Spec`` (``mlci.contract``'s or this module's) as JSON values."""
    out: dict[str, Any] = {f.name: getattr(spec, f.name) for f in fields(Spec)}
    out["classes"] = list(spec.classes)
    out["features"] = [
        {f.name: getattr(feat, f.name) for f in fields(Feature)} for feat in spec.features
    ]
    for feat in out["features"]:
        feat["categories"] = list(feat["categories"])
    return out


def spec_from_json(data: dict[str, Any]) -> Spec:
    features = tuple(
        Feature(**{**f, "categories": tuple(f.get("categories") or ())}) for f in data["features"]
    )
    return Spec(**{**data, "classes": tuple(data["classes"]), "features": features})


# ----------------------------------------------------------------------------- fingerprint


def contract_digest() -> str:
    """sha256 of the sources the contract's facts are read from: ``mlci/contract.py``,
    ``mlci/spec.py`` and every ``.py`` of the ``project`` package (found without importing it)."""
    digest = hashlib.sha256()
    core = Path(__file__).resolve().parents[1]
    sources = [(f"mlci/{name}", core / name) for name in ("contract.py", "spec.py")]
    found = importlib.util.find_spec("project")
    for root in (found.submodule_search_locations or []) if found else []:
        for path in sorted(Path(root).rglob("*.py")):
            sources.append((f"project/{path.relative_to(root).as_posix()}", path))
    for name, path in sources:
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def fingerprint() -> dict[str, Any]:
    """What the recorded facts depend on besides the model file."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sklearn = version("scikit-learn")  # the pipeline's recorded answers are its answers
    except PackageNotFoundError:
        sklearn = "absent"
    return {"format": FORMAT, "contract_sha256": contract_digest(), "scikit-learn": sklearn}


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -------------------------------------------------------------------------------- writing


def build(pipeline: Any, model_md5: str) -> dict[str, Any]:
    """The manifest of a fitted pipeline under the current contract.

    Runs the predictor's start-up proof now (compile, then compare with the pipeline on the probe
    records); a model that does not fit the contract raises its ``UserError``."""
    from mlci import contract
    from mlci.serving.predictor import PROBE_TOLERANCE, Predictor

    spec = contract.spec()
    predictor = Predictor(pipeline, "", fast=True, spec=spec)
    fast_path: dict[str, Any] = {"mode": predictor.mode, "reason": predictor.fallback_reason}
    if predictor.mode == "compiled":
        probes = predictor.probe_records()
        fast_path.update(
            preprocess=_encode_preprocess(predictor.preprocess),
            estimator=_encode_linear(predictor.estimator),
            probe={
                "records": probes,
                "expected": predictor.reference_answers(probes).tolist(),
                "max_gap": predictor.probe_gap,
                "tolerance": PROBE_TOLERANCE,
            },
        )
    return {
        "format": FORMAT,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_md5": model_md5,
        "fingerprint": fingerprint(),
        "spec": spec_to_json(spec),
        "classes": list(predictor.classes),
        "fast_path": fast_path,
    }


def write(model_dir: Path, model_file: str) -> dict[str, Any]:
    """Load ``model_dir/model_file`` (skops), build its manifest and write it next to it."""
    from mlci import artifacts

    path = Path(model_dir) / model_file
    doc = build(artifacts.load_model(path), md5_file(path))
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"  # NaN is never valid JSON
    tmp = Path(model_dir) / f".{FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(Path(model_dir) / FILE)
    return doc


# -------------------------------------------------------------------------------- reading


def read(model_dir: Path, model_file: str) -> tuple[dict[str, Any] | None, str]:
    """(manifest, "") when it describes what would be served, else (None, why not)."""
    path = Path(model_dir) / FILE
    if not path.is_file():
        return None, f"no {FILE} with the model (registered by an older version)"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            return None, f"{FILE} has format {doc.get('format')!r}, this service reads {FORMAT}"
        if doc["model_md5"] != md5_file(Path(model_dir) / model_file):
            return None, f"{model_file} is not the file {FILE} was written for"
        now = fingerprint()
        changed = [k for k, v in now.items() if doc["fingerprint"].get(k) != v]
        if changed:
            what = {"contract_sha256": "the data contract's source"}
            return None, f"changed since registration: {', '.join(what.get(k, k) for k in changed)}"
        doc["spec_obj"] = spec_from_json(doc["spec"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, f"{FILE} is unreadable ({type(err).__name__}: {err})"
    return doc, ""


def recorded_predictor(
    doc: dict[str, Any], model_path: Path, version: str, timings: dict[str, float] | None = None
) -> Any:
    """The compiled predictor a manifest records, proven against the recorded answers of the
    pipeline. Raises ``NotCompilableError`` when it does not give them (or cannot be rebuilt):
    the caller then loads the pipeline instead. ``timings["self_check_s"]``: the proof's time."""
    from mlci.serving.compiled import NotCompilableError
    from mlci.serving.predictor import Predictor

    fast = doc["fast_path"]
    try:
        preprocess = _decode_preprocess(fast["preprocess"])
        estimator = _decode_linear(fast["estimator"])
        probe = fast["probe"]
        records, expected = probe["records"], probe["expected"]
    except (KeyError, TypeError, ValueError) as err:
        raise NotCompilableError(f"{FILE}: the compiled path cannot be rebuilt ({err})") from None
    predictor = Predictor.from_compiled(
        doc["spec_obj"],
        version,
        doc["classes"],
        preprocess,
        estimator,
        load_pipeline=lambda: _load_model(model_path),
    )
    started = time.perf_counter()
    predictor.check_recorded(records, expected)
    if timings is not None:
        timings["self_check_s"] = time.perf_counter() - started
    return predictor


def _load_model(path: Path) -> Any:
    from mlci import artifacts

    return artifacts.load_model(path)


# ----------------------------------------------------------------------- compiled arrays


def _floats(values: Sequence[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values]  # NaN: "no imputer" for that column


def _encode_preprocess(pre: Any) -> dict[str, Any]:
    cats = [
        {
            "name": c.name,
            "index": [[k, v] for k, v in c.index.items()],  # pairs: keys keep their JSON type
            "unseen": c.unseen,
            "missing": c.missing,
        }
        for c in pre.categorical
    ]
    return {
        "numeric": list(pre.numeric),
        "num_columns": pre.num_columns.tolist(),
        "fill": _floats(pre.fill.tolist()),
        "mean": pre.mean.tolist(),
        "scale": pre.scale.tolist(),
        "categorical": cats,
        "n_out": pre.n_out,
        "sparse": pre.sparse,
    }


def _decode_preprocess(data: dict[str, Any]) -> Any:
    import numpy as np

    from mlci.serving.compiled import CategoricalColumn, CompiledPreprocess

    def arr(values: list[Any]) -> Any:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    return CompiledPreprocess(
        numeric=tuple(data["numeric"]),
        num_columns=np.array(data["num_columns"], dtype=np.intp),
        fill=arr(data["fill"]),
        mean=arr(data["mean"]),
        scale=arr(data["scale"]),
        categorical=tuple(
            CategoricalColumn(c["name"], {k: v for k, v in c["index"]}, c["unseen"], c["missing"])
            for c in data["categorical"]
        ),
        n_out=int(data["n_out"]),
        sparse=bool(data["sparse"]),
    )


def _encode_linear(est: Any) -> dict[str, Any]:
    return {"coef_t": est.coef_t.tolist(), "intercept": est.intercept.tolist(), "kind": est.kind}


def _decode_linear(data: dict[str, Any]) -> Any:
    import numpy as np

    from mlci.serving.compiled import CompiledLinear

    return CompiledLinear(
        coef_t=np.array(data["coef_t"], dtype=np.float64, order="C"),
        intercept=np.array(data["intercept"], dtype=np.float64),
        kind=str(data["kind"]),
    )
