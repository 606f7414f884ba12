"""Comparing two published accuracies like for like: the same dataset, test crops, pre-training data
and distillation (``spec.model.Protocol``). Where two networks' references were measured
differently, the published table may hold figures of one of them measured as the other's was (the
ResNet paper's ten-crop ResNet-34 beside its ten-crop plain network); the difference then comes from
those. Otherwise it is said to be not like-for-like, naming both protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scalelab.scaling.accuracy.published import published
from scalelab.spec.model import Protocol, Reference


@dataclass(frozen=True)
class Top1Difference:
    points: Optional[float]  # the other's top-1 minus the first's; None where either is unknown
    like_for_like: bool  # measured alike (as referenced, or from published figures measured alike)
    adjusted: bool  # the points come from published figures other than the specs' references
    note: str  # what was compared, where it is not simply the two references

    def cell(self) -> str:
        """'+3.51', '+4.02 (like-for-like, published)', '+1.85 (not like-for-like)' or '-'."""
        if self.points is None:
            return "-"
        tag = " (like-for-like, published)" if self.adjusted else "" if self.like_for_like else " (not like-for-like)"
        return f"{self.points:+.2f}{tag}"


def reference_of(figures) -> Optional[Reference]:
    """The reference accuracy a ``NetworkFigures`` carries, or None."""
    if figures.top1 is None:
        return None
    protocol = Protocol(**figures.top1_protocol) if figures.top1_protocol else None
    return Reference(top1=figures.top1, dataset=figures.top1_dataset or "ImageNet-1k", source=figures.top1_source or "",
                     protocol=protocol)


def _published_as(name: str, like: Reference) -> Optional[Reference]:
    """A published top-1 of network ``name`` measured as ``like`` was, or None."""
    table = published()
    for row in table.rows:
        found = table.reference(row)
        if row.name == name and found.like_for_like(like):
            return found
    return None


def top1_difference(first, other) -> Top1Difference:
    """``other``'s top-1 against ``first``'s (``NetworkFigures``), like for like where possible."""
    a, b = reference_of(first), reference_of(other)
    if a is None or b is None:
        return Top1Difference(None, False, False, "")
    if a.like_for_like(b):
        return Top1Difference(b.top1 - a.top1, True, False, "")
    differ = (f"Top-1 of {other.name} against {first.name}: their references are measured differently "
              f"({first.name}: {a.describe_protocol()}; {other.name}: {b.describe_protocol()})")
    for x, y in ((a, _published_as(other.name, a)), (_published_as(first.name, b), b)):
        if x is not None and y is not None:
            return Top1Difference(y.top1 - x.top1, True, True, (
                f"{differ}; the points compare published figures measured alike: {other.name} {y.top1:g} ({y.source}) "
                f"against {first.name} {x.top1:g} ({x.source}), {x.describe_protocol()}."))
    return Top1Difference(b.top1 - a.top1, False, False,
                          f"{differ}; no published figures measured alike, so {b.top1 - a.top1:+.2f} is not like-for-like.")
