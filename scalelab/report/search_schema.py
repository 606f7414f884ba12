"""The schema of a search report (REPORT_DIR/<study>.json) as `scalelab plot` reads it: every field a
chart uses, with its type, so that a hand-edited or truncated report is refused with the JSON path
of the problem instead of failing halfway through a chart. Fields the charts do not read may be
anything (a report of a newer scalelab keeps working), except NaN or an infinity, refused anywhere
(scalelab writes reports with both refused)."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from scalelab.errors import ScalelabError
from scalelab.limits import MAX_CROPS, MAX_ENSEMBLE, quote

NonNegative = Annotated[float, Field(ge=0)]
Models = Annotated[int, Strict(), Field(ge=1, le=MAX_ENSEMBLE)]
Crops = Annotated[int, Strict(), Field(ge=1, le=MAX_CROPS)]
Count = Annotated[int, Strict(), Field(ge=0)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class Trial(_Part):
    depth: Annotated[float, Field(gt=0)]
    width: Annotated[float, Field(gt=0)]
    width_built: Optional[Annotated[float, Field(gt=0)]] = None  # as the network got it (reports since it was recorded)
    pixels: Annotated[int, Strict(), Field(gt=0)]
    macs: NonNegative
    params: NonNegative
    latency_ms: Optional[NonNegative] = None
    memory_bytes: Optional[NonNegative] = None
    accuracy: float
    low: Optional[float] = None  # the estimate's 80% interval, drawn as error bars
    high: Optional[float] = None
    models: Models = 1  # an ensemble of this many copies of the network (searches with --ensembles)
    crops: Crops = 1  # each on this many test crops (--crops)

    @model_validator(mode="after")
    def _interval_holds_the_estimate(self):
        return _interval_checked(self)


def _interval_checked(part):
    """An error bar needs both ends, around the estimate: low <= accuracy <= high."""
    if (part.low is None) != (part.high is None):
        raise ValueError(f"an 80% interval needs both 'low' and 'high', got low={part.low}, high={part.high}")
    if part.low is not None and part.accuracy is not None and not part.low <= part.accuracy <= part.high:
        raise ValueError(f"the 80% interval [{part.low}, {part.high}] must hold the accuracy {part.accuracy}")
    return part


class BudgetEntry(_Part):
    metric: Literal["macs", "params", "latency", "memory"]
    limit: Annotated[float, Field(gt=0)]
    text: str  # as written on the command line, the chart's budget label


class Base(_Part):
    name: str


class TwoStep(_Part):
    phi: Optional[float] = None
    phi_trials: list[Trial]


class Ensembles(_Part):
    models: list[Models] = Field(min_length=1)
    crops: list[Crops] = Field(min_length=1)
    accuracy: str


class CurvePoint(_Part):
    phi: float
    macs: NonNegative
    params: NonNegative
    accuracy: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None

    @model_validator(mode="after")
    def _interval_holds_the_estimate(self):
        return _interval_checked(self)


class Curve(_Part):
    coefficients: tuple[float, float, float]
    source: str
    points: list[CurvePoint]
    chosen_phi: Optional[float] = None


_TRIAL_FIELD = {"macs": "macs", "params": "params", "latency": "latency_ms", "memory": "memory_bytes"}


class SearchReport(_Part):
    report: Literal["scalelab scale"]
    study: Annotated[str, Field(min_length=1)]
    base: Base
    method: str
    accuracy_method: str
    accuracy_how: str
    budgets: list[BudgetEntry] = Field(min_length=1)
    device: Optional[str] = None
    latency_error: Optional[NonNegative] = None  # a fraction, the band of predicted latencies
    trials: list[Trial]
    refined: list[Trial] = []  # a direct search's refinements of its best trials
    pareto: list[Trial]
    winner: Trial
    two_step: Optional[TwoStep] = None
    curve: Optional[Curve] = None
    ensembles: Optional[Ensembles] = None

    @model_validator(mode="after")
    def _trials_have_the_budgeted_figures(self):
        every = [*self.trials, *(self.two_step.phi_trials if self.two_step else [])]
        for budget in self.budgets:
            key = _TRIAL_FIELD[budget.metric]
            missing = next((t for t in every if getattr(t, key) is None), None)
            if missing is not None:
                raise ValueError(f"a {budget.metric} budget, but a trial has no '{key}'")
        return self


def _json_path(loc: tuple) -> str:
    out = ""
    for step in loc:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "report"


def _first_non_finite(data: object) -> "tuple[tuple, float] | None":
    """The JSON path and value of the first NaN or infinity, in document order (iterative: a report
    nested as deep as the JSON reader allows is walked without recursion)."""
    stack: list[tuple[tuple, object]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path, value
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        stack.extend(((*path, key), item) for key, item in reversed(list(items)))
    return None


def check_search_report(data: object, filename: str) -> None:
    """Refuse a report a chart cannot be drawn from: one line naming the file, the JSON path, the
    rule and the value (quoted short)."""
    found = _first_non_finite(data)
    if found is not None:
        raise ScalelabError(f"{filename}: {_json_path(found[0])}: must be a finite number (got {found[1]}); "
                            f"not a report of `scalelab scale`, which writes none")
    try:
        SearchReport.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(error["loc"])
        if error["type"] == "missing":
            loc, message = loc[:-1], f"missing required field '{loc[-1]}'"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = f"{error['msg'].replace('Input should', 'must', 1)} (got {quote(error['input'])})"
        raise ScalelabError(f"{filename}: {_json_path(loc)}: {message}; not a complete report of `scalelab scale`") from None
