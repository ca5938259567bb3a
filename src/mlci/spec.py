"""The facts of a data contract every layer shares: plain dataclasses, no pandas, no pandera.

:mod:`mlci.contract` reads them out of the adopter's pandera schema; the service's start-up
manifest (:mod:`mlci.serving.manifest`) stores and rebuilds them without importing pandera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np


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

    def clip_target(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Regression answers inside the contract's bounds on the target, and how many had to
        be moved there (a linear model extrapolates: a negative price from a target ``ge=0``).
        A contract without bounds leaves the values as they are. Every answer that leaves the
        project (service, batch scoring, evaluation) passes through here."""
        import numpy as np  # here, not at import: the contract's facts need no NumPy

        values = np.asarray(values, dtype=np.float64)
        lo, hi = self.target_minimum, self.target_maximum
        if self.classes or (lo is None and hi is None):
            return values, 0
        low = lo if lo is not None else -np.inf
        high = hi if hi is not None else np.inf
        outside = int(np.count_nonzero((values < low) | (values > high)))
        return (np.clip(values, low, high) if outside else values), outside
