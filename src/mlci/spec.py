"""The facts of a data contract every layer shares: plain dataclasses, no pandas, no pandera.

:mod:`mlci.contract` reads them out of the adopter's pandera schema; the service's start-up
manifest (:mod:`mlci.serving.manifest`) stores and rebuilds them without importing pandera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    # The allowed values of a categorical feature; empty: an open set (a `str` column without
    # `isin`, e.g. a high-cardinality code), where any value is accepted.
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    target: str
    id_column: str | None  # None: the table has no sample key
    classes: tuple[str, ...]  # empty for regression
    features: tuple[Feature, ...]
    target_minimum: float | None = None  # regression: the contract's bounds on the target
    target_maximum: float | None = None

    @property
    def task(self) -> Literal["classification", "regression"]:
        """Classification when the target lists its classes (`isin`), regression otherwise."""
        return "classification" if self.classes else "regression"

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]
