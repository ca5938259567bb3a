"""The service's model reference: the BentoML store's ``mlci-classifier:<tag>``, loaded with skops
and the trust list (never pickle), checked against the data contract.

A missing, corrupt or contract-incompatible model is a :class:`ModelUnavailable` whose message
says what to do; ``bentoml serve`` prints it and stops instead of starting workers that fail.
(Registering the model is :mod:`mlci.serving.model_store`.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException

from mlci.errors import UserError
from mlci.serving import model_store, predictor


class ModelUnavailable(BentoMLException):
    """The service cannot start: its model is missing, corrupt or does not fit the contract.

    A ``BentoMLException``, so ``bentoml serve`` prints the message without a traceback."""


def _not_in_store(tag: Any, err: Exception) -> ModelUnavailable:
    home = os.environ.get("BENTOML_HOME", str(Path.home() / "bentoml"))
    return ModelUnavailable(
        f"model {tag} is not in the BentoML model store (BENTOML_HOME={home}): run "
        "`make package` or `mlci register-model` in the repository (it registers the model "
        "dvc.lock records), or set MLCI_MODEL_TAG to a registered tag "
        f"(`bentoml models list`). [{type(err).__name__}: {err}]"
    )


class StoreModel(bentoml.models.BentoModel):
    """``BentoModel`` that refuses a missing or unloadable model with a message saying what to do.

    ``bentoml serve`` resolves every model before it starts a worker: resolving here also loads
    the model (skops, trust list) and checks it against the contract, so a missing, corrupt or
    incompatible model stops ``bentoml serve`` with that message instead of a worker restarting
    forever. The loaded predictor is kept, so a worker loads the file once.
    """

    def resolve(self, base_path: Any = None) -> Any:
        try:
            stored = super().resolve(base_path)
        except ModelUnavailable:
            raise
        except BentoMLException as err:
            raise _not_in_store(self.tag, err) from None
        if "predictor" not in self.__dict__:
            object.__setattr__(self, "predictor", _load_stored(stored))
        return stored

    def to_info(self, alias: str | None = None) -> Any:
        try:
            return super().to_info(alias)
        except BentoMLException as err:
            raise _not_in_store(self.tag, err) from None


def load_predictor(ref: StoreModel) -> predictor.Predictor:
    """The predictor of a store model; any failure is a :class:`ModelUnavailable`."""
    ref.resolve()
    return ref.__dict__["predictor"]


def _load_stored(stored: Any) -> predictor.Predictor:
    path = Path(stored.path) / model_store.MODEL_FILE
    try:
        return predictor.Predictor.load(path, version=str(stored.tag.version))
    except UserError as err:
        raise ModelUnavailable(
            f"model {stored.tag}: {err} To replace the stored copy: `bentoml models delete "
            f"{stored.tag}`, then `make package` (or `mlci register-model`)."
        ) from None
