"""The service's model reference: the BentoML store's ``mlci-classifier:<tag>``, its serving
manifest (:mod:`mlci.serving.manifest`) and, when that cannot be used, the model file itself,
loaded with skops and the trust list (never pickle) and checked against the data contract.

A missing, corrupt or contract-incompatible model is a :class:`ModelUnavailable` whose message
says what to do; ``bentoml serve`` prints it and stops instead of starting workers that fail.
(Registering the model and writing its manifest is :mod:`mlci.serving.model_store`.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException

from mlci.errors import UserError
from mlci.serving import manifest, model_store

log = logging.getLogger("mlci.serving.service")


class ModelUnavailable(BentoMLException):
    """The service cannot start: its model is missing, corrupt or does not fit the contract.

    A ``BentoMLException``, so ``bentoml serve`` prints the message without a traceback."""


@dataclass
class Startup:
    """What resolving the model found; ``timings`` (seconds) are reported by the service."""

    manifest: dict[str, Any] | None  # usable manifest, or None (``why_not`` says why)
    why_not: str
    predictor: Any = None  # loaded already (no usable manifest), else built by load_predictor
    timings: dict[str, float] = field(default_factory=dict)
    source: str = ""  # how the predictor was obtained, for the service's start-up line


def _not_in_store(tag: Any, err: Exception) -> ModelUnavailable:
    import os

    home = os.environ.get("BENTOML_HOME", str(Path.home() / "bentoml"))
    return ModelUnavailable(
        f"model {tag} is not in the BentoML model store (BENTOML_HOME={home}): run "
        "`make package` or `mlci register-model` in the repository (it registers the model "
        "dvc.lock records), or set MLCI_MODEL_TAG to a registered tag "
        f"(`bentoml models list`). [{type(err).__name__}: {err}]"
    )


class StoreModel(bentoml.models.BentoModel):
    """``BentoModel`` that refuses a missing or unloadable model with a message saying what to do.

    ``bentoml serve`` resolves every model in its supervisor before it starts a worker. With a
    usable serving manifest (same model file, contract and scikit-learn as at registration, when
    the model loaded and fitted the contract) resolving only reads it; otherwise it loads the
    model (skops, trust list) and checks it against the contract, so a missing, corrupt or
    incompatible model stops ``bentoml serve`` with that message instead of a worker restarting
    forever. What it found is kept (``startup``), so a worker reads or loads once.
    """

    def resolve(self, base_path: Any = None) -> Any:
        try:
            stored = super().resolve(base_path)
        except ModelUnavailable:
            raise
        except BentoMLException as err:
            raise _not_in_store(self.tag, err) from None
        if "startup" not in self.__dict__:
            object.__setattr__(self, "startup", _check_stored(stored))
        return stored

    def to_info(self, alias: str | None = None) -> Any:
        try:
            return super().to_info(alias)
        except BentoMLException as err:
            raise _not_in_store(self.tag, err) from None

    def serving_spec(self) -> Any:
        """The contract's facts for the request model: the manifest's when it is usable (no
        pandera import), else ``mlci.contract.spec()``. Never raises for a missing model: that
        is reported, with what to do, when the model is resolved."""
        try:
            self.resolve()
        except ModelUnavailable:
            pass
        else:
            found = self.__dict__["startup"].manifest
            if found is not None:
                return found["spec_obj"]
        from mlci import contract

        return contract.spec()


def _check_stored(stored: Any) -> Startup:
    started = time.perf_counter()
    found, why_not = manifest.read(Path(stored.path), model_store.MODEL_FILE)
    if found is not None:
        return Startup(found, "", timings={"resolve_s": time.perf_counter() - started})
    loaded = _load_stored(stored)  # refuses a bad model now, in the supervisor
    return Startup(
        None,
        why_not,
        predictor=loaded,
        timings={"resolve_s": time.perf_counter() - started},
        source="model file, loaded, compiled and checked at start",
    )


def load_predictor(ref: StoreModel) -> Any:
    """The predictor of a store model; any failure is a :class:`ModelUnavailable`.

    In the serving process: from the manifest when it is usable (the recorded compiled path,
    proven again against the pipeline's recorded answers), else from the model file. Logs once
    why a manifest was not used."""
    from mlci.serving import predictor as predictor_module
    from mlci.serving.compiled import NotCompilableError

    ref.resolve()
    startup: Startup = ref.__dict__["startup"]
    if startup.predictor is not None:
        log.warning(
            "serving manifest not used (%s): the model was loaded, compiled and checked at start "
            "(slower start, same answers); `mlci register-model` writes a fresh one",
            startup.why_not,
        )
        return startup.predictor
    doc = startup.manifest
    assert doc is not None
    stored = ref.stored
    path = Path(stored.path) / model_store.MODEL_FILE
    version = str(stored.tag.version)
    fast = predictor_module.fast_path_wanted()
    if fast and doc["fast_path"]["mode"] == "compiled":
        try:
            loaded = manifest.recorded_predictor(doc, path, version, startup.timings)
        except NotCompilableError as why:
            log.warning("serving manifest: %s; loading the pipeline instead", why)
        else:
            startup.source = "serving manifest: compiled path checked at registration and now"
            return loaded
    # Tree models need their estimator, and a fallback needs the pipeline: load it.
    startup.source = "model file, loaded, compiled and checked at start"
    return _load_stored(stored, spec=doc["spec_obj"], fast=fast)


def _load_stored(stored: Any, spec: Any = None, fast: bool | None = None) -> Any:
    from mlci.serving import predictor

    path = Path(stored.path) / model_store.MODEL_FILE
    try:
        return predictor.Predictor.load(path, version=str(stored.tag.version), fast=fast, spec=spec)
    except UserError as err:
        raise ModelUnavailable(
            f"model {stored.tag}: {err} To replace the stored copy: `bentoml models delete "
            f"{stored.tag}`, then `make package` (or `mlci register-model`)."
        ) from None
