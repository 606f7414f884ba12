"""What every accuracy estimator returns (``AccuracyEstimate``), apart from the estimators, so that
``proxy`` and the package that picks an estimator share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class AccuracyEstimate:
    top1: Optional[float]  # ImageNet top-1 in percent; None for the proxy (a score, not an accuracy)
    method: str
    detail: str  # how the number was obtained, in one sentence
    extrapolated: bool = False  # the query lies outside the data the method was fitted on
    score: Optional[float] = None  # the proxy's value (higher ranks higher)
    #: 80% prediction interval of ``top1`` (scaling-law estimates; see ``intervals``), None otherwise
    low: Optional[float] = None
    high: Optional[float] = None

    def text(self) -> str:
        """'77.70 [76.22, 79.19]', or the bare number where there is no interval."""
        if self.top1 is None:
            return f"score {self.score:.3f} (rank only)"
        interval = f" [{self.low:.2f}, {self.high:.2f}]" if self.low is not None else ""
        return f"{self.top1:.2f}{interval}"
