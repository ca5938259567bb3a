"""The ``search:`` block's hyperparameters: checked before any stage runs, and turned into what
scikit-learn's search classes take.

A hyperparameter is a fixed value (``max_iter: 1000``), a list of choices (``C: [0.1, 1, 10]``)
or, for the random and halving methods, a distribution: ``{log_uniform: [0.01, 100]}``,
``{uniform: [0.0, 1.0]}`` or ``{int_uniform: [2, 20]}`` (both ends included). Every name and
every value (each choice, both ends of a range) passes scikit-learn's own parameter validation
here, so a bad block is one line naming the field, never a traceback after DVC removed outputs.
"""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any

from mlci.errors import UserError
from mlci.estimators import estimator_class

DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform")


def _is_distribution(value: Any) -> bool:
    return isinstance(value, dict)


def _range(where: str, value: dict) -> tuple[str, float, float]:
    """``{kind: [low, high]}`` -> (kind, low, high), or a UserError naming ``where``."""
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise UserError(
            f"{where}: a distribution is one of {{{' | '.join(DISTRIBUTIONS)}: [low, high]}}; "
            f"got {value!r}"
        )
    kind, bounds = next(iter(value.items()))
    numbers = (int,) if kind == "int_uniform" else (int, float)
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, numbers) and not isinstance(b, bool) for b in bounds)
    ):
        whole = "whole " if kind == "int_uniform" else ""
        raise UserError(f"{where}.{kind}: expected [low, high], two {whole}numbers; got {bounds!r}")
    low, high = bounds
    if not low < high:
        raise UserError(f"{where}.{kind}: low ({low}) must be below high ({high})")
    if kind == "log_uniform" and low <= 0:
        raise UserError(f"{where}.{kind}: low must be above 0 for a log scale; got {low}")
    return kind, low, high


def check(search: Any, task: str, path: Path) -> None:
    """Every candidate's hyperparameter names and values, by scikit-learn's rules."""
    for name, space in search.estimators.items():
        where = f"search.estimators.{name}"
        cls = estimator_class(name, task)
        known = sorted(set(cls().get_params()) - {"random_state"})
        fixed = {k: v for k, v in space.items() if not isinstance(v, list | dict)}
        for param, value in space.items():
            at = f"{where}.{param}"
            if param not in known:
                hint = "".join(
                    f" (did you mean {m!r}?)" for m in get_close_matches(param, known, 1)
                )
                extra = "; set the top-level `seed` instead" if param == "random_state" else ""
                raise UserError(
                    f"{path}: {at}: not a hyperparameter of {name} ({cls.__name__}){hint}{extra}"
                )
            if isinstance(value, list):
                if not value:
                    raise UserError(f"{path}: {at}: an empty list of choices")
                tried = value
            elif _is_distribution(value):
                if search.method == "grid":
                    raise UserError(
                        f"{path}: {at}: a distribution needs method random or halving; "
                        "a grid takes a list of values"
                    )
                try:
                    _, low, high = _range(at, value)
                except UserError as err:
                    raise UserError(f"{path}: {err}") from None
                tried = [low, high]
            else:
                tried = [value]
            for one in tried:
                _validate(cls, {**fixed, param: one}, at, path)


def _validate(cls: type, params: dict, where: str, path: Path) -> None:
    try:
        cls(**params)._validate_params()
    except (ValueError, TypeError) as err:  # scikit-learn's InvalidParameterError is both
        first = " ".join(str(err).split())
        raise UserError(f"{path}: {where}: {first}") from None


def distributions(space: dict[str, Any]) -> tuple[dict, dict]:
    """(fixed params, searched params) of one candidate: searched values as lists (grid) or
    lists and scipy distributions (random, halving), keyed by the hyperparameter's name."""
    from scipy import stats

    fixed, searched = {}, {}
    for param, value in space.items():
        if isinstance(value, list):
            searched[param] = value
        elif _is_distribution(value):
            kind, low, high = _range(param, value)
            if kind == "uniform":
                searched[param] = stats.uniform(low, high - low)
            elif kind == "log_uniform":
                searched[param] = stats.loguniform(low, high)
            else:
                searched[param] = stats.randint(low, high + 1)
        else:
            fixed[param] = value
    return fixed, searched
