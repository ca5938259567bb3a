"""The HTTP API's data models, derived from the data contract (``mlci.contract.spec()``).

* :func:`record_model`: one input row: every contract feature with its type, range, allowed
  categories (or, for an open categorical feature, any text up to :data:`MAX_TEXT` characters)
  and nullability, plus the contract's ID column if it has one (optional, not used by the
  model); strict types, unknown fields rejected.
* :func:`request_model` / :func:`records_field`: the body of ``/predict`` and ``/predict_batch``,
  ``{"records": [Record, ...]}`` with 1 to :data:`MAX_RECORDS` records.
* :func:`response_models`: the answers for the contract's task: :class:`PredictResponse` of
  :class:`Prediction` (label, probabilities) for classification, :class:`ValueResponse` of
  :class:`ValuePrediction` (a number) for regression; the ``Batch*`` items of ``/predict_batch``.

No web framework and no model here: the service, the benchmark and the tests share these.
Change a feature in the contract and the request model (and ``/docs.json``) follows. Each
function takes the contract's facts (``spec``); by default ``mlci.contract.spec()``, which imports
pandera: the service passes the facts its model's serving manifest recorded instead.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model
from typing_extensions import TypedDict

# Upper bound on records per request: a request this size is parsed, predicted and logged in a
# few tens of milliseconds; anything larger belongs in an offline batch job.
MAX_RECORDS = 10_000
# Longest text accepted for an open categorical feature or the ID (a postcode, a product code,
# a key): enough for any code, short enough that a record stays small.
MAX_TEXT = 256
# The example value of an open categorical feature in /docs.json (any text is valid).
OPEN_EXAMPLE = "example"
_TEXT = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]


def _contract_spec() -> Any:
    from mlci import contract  # pandas and pandera: only when no spec is given

    return contract.spec()


def example_record(spec: Any = None) -> dict[str, Any]:
    """A valid record of the contract: mid-range numbers, the first allowed category (any text
    for an open set). The service's documented example and the release smoke test's request."""
    spec = spec if spec is not None else _contract_spec()
    example: dict[str, Any] = {}
    for f in spec.features:
        if f.kind == "categorical":
            example[f.name] = f.categories[0] if f.categories else OPEN_EXAMPLE
        elif f.minimum is not None and f.maximum is not None:
            mid = (f.minimum + f.maximum) / 2
            short = round(mid, 3)  # readable, unless rounding leaves a narrow range
            example[f.name] = short if f.minimum <= short <= f.maximum else mid
        else:
            example[f.name] = f.minimum if f.minimum is not None else (f.maximum or 0.0)
    return example


@cache
def record_model(spec: Any = None) -> Any:
    """One input row: every contract feature, typed, bounded and closed to unknown fields.

    strict: ``false`` and ``"3"`` are not numbers (an int such as ``3800`` is a number).
    extra="forbid": a misspelt or unexpected field is an error that names it, never ignored.
    A nullable feature may be sent as ``null`` or left out; the model imputes it.

    A ``TypedDict`` rather than a ``BaseModel``: pydantic validates it straight into the dicts
    the predictor reads (a third faster on 1,000 records than building model instances).
    """
    spec = spec if spec is not None else _contract_spec()
    fields: dict[str, Any] = {}
    for f in spec.features:
        if f.kind == "categorical" and f.categories:
            typ: Any = Literal[f.categories]
            desc = f"one of {', '.join(f.categories)}"
        elif f.kind == "categorical":  # an open set: any code, unseen ones share one column
            typ = _TEXT
            desc = f"text, 1 to {MAX_TEXT} characters (any value)"
        else:
            typ = Annotated[float, Field(ge=f.minimum, le=f.maximum, allow_inf_nan=False)]
            desc = f"number in [{f.minimum}, {f.maximum}]"
        if f.nullable:
            fields[f.name] = NotRequired[
                Annotated[typ | None, Field(description=f"{desc}, or null")]
            ]
        else:
            fields[f.name] = Required[Annotated[typ, Field(description=desc)]]
    if spec.id_column and spec.id_column not in fields:
        # A row of the table may be sent as it is, key included; the model never reads it.
        # Text, as the pipeline reads the key (``contract.string_columns``).
        fields[spec.id_column] = NotRequired[
            Annotated[_TEXT, Field(description="the row's key (optional; not used by the model)")]
        ]
    record = TypedDict("Record", fields)  # type: ignore[misc]
    record.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
        strict=True,
        extra="forbid",
        # "example" (OpenAPI 3.0) rather than "examples": BentoML's spec model has only the former.
        json_schema_extra={"example": example_record(spec)},
    )
    return record


def records_field(spec: Any = None) -> tuple[Any, Any]:
    """The ``records`` field of a request: 1 to ``MAX_RECORDS`` contract records."""
    return (
        Annotated[list[record_model(spec)], Field(min_length=1, max_length=MAX_RECORDS)],  # type: ignore[misc]
        Field(description=f"1 to {MAX_RECORDS} records to score"),
    )


@cache
def request_model() -> type[BaseModel]:
    """The body of ``/predict`` and ``/predict_batch``: ``{"records": [Record, ...]}``."""
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(strict=True, extra="forbid"),
        records=records_field(),
    )


class Prediction(BaseModel):
    """Classification: the most probable class and every class's probability."""

    label: str = Field(description="the most probable class")
    probabilities: dict[str, float] = Field(description="probability of every class")
    model_version: str = Field(description="version (BentoML model tag) of the model used")


class PredictResponse(BaseModel):
    request_id: str = Field(description="identifies the request in the prediction log")
    model_version: str
    predictions: list[Prediction]


class BatchPrediction(Prediction):
    request_id: str = Field(description="identifies this prediction in the prediction log")


class ValuePrediction(BaseModel):
    """Regression: the predicted value of the target."""

    prediction: float = Field(description="the predicted value of the target")
    model_version: str = Field(description="version (BentoML model tag) of the model used")


class ValueResponse(BaseModel):
    request_id: str = Field(description="identifies the request in the prediction log")
    model_version: str
    predictions: list[ValuePrediction]


class BatchValuePrediction(ValuePrediction):
    request_id: str = Field(description="identifies this prediction in the prediction log")


def response_models(task: str | None = None) -> tuple[type[BaseModel], type[BaseModel]]:
    """(answer of /predict, item of /predict_batch) for the contract's task."""
    if (task or _contract_spec().task) == "regression":
        return ValueResponse, BatchValuePrediction
    return PredictResponse, BatchPrediction
