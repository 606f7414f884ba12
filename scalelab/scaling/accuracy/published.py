"""The published accuracy table (``published.yaml``): documented top-1 of known networks, each
row with its source, grouped into scaling series that the scaling-law estimator is fitted on."""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scalelab.errors import ScalelabError
from scalelab.spec.model import Protocol, Reference

#: every row's top-1 is measured on the ImageNet-1k validation set
DATASET = "ImageNet-1k"
#: the network families whose series each fit a law of their own (``accuracy.family``); no series of
#: hybrids is published, but a row may be one (MaxViT)
Family = Literal["cnn", "transformer", "hybrid"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableProtocol(_Strict):
    """How a row's top-1 was measured (on ImageNet-1k, at the row's resolution): see ``spec.Protocol``."""

    crops: int = Field(ge=1)
    pretraining: str = Field(min_length=1)
    distillation: str = Field(min_length=1)

    def at(self, resolution: int) -> Protocol:
        return Protocol(crops=self.crops, resolution=resolution, pretraining=self.pretraining,
                        distillation=self.distillation)


class Series(_Strict):
    base: str = Field(description="the row every multiplier is relative to")
    about: str
    source: str
    protocol: TableProtocol = Field(description="shared by every row: a law fitted on a series compares like for like")
    family: Family = Field("cnn", description="the networks whose law the series feeds: one law never mixes families")


class Row(_Strict):
    name: str
    top1: float = Field(gt=0, le=100)
    macs: int = Field(gt=0)
    params: int = Field(gt=0)
    resolution: int = Field(gt=0)
    source: str
    series: Optional[str] = None
    depth: float = Field(1.0, gt=0)
    width: float = Field(1.0, gt=0)
    blocks: Optional[int] = Field(None, gt=0, description="repeated blocks (stage repeats summed)")
    protocol: Optional[TableProtocol] = Field(None, description="a row outside any series states its own")
    family: Optional[Family] = Field(None, description="a row outside any series: its network's family (default cnn)")


class Published(_Strict):
    series: dict[str, Series]
    rows: list[Row]

    def in_family(self, family: str) -> dict[str, Series]:
        return {name: s for name, s in self.series.items() if s.family == family}

    def members(self, series: str) -> list[Row]:
        return [r for r in self.rows if r.series == series]

    def base_of(self, series: str) -> Row:
        return next(r for r in self.members(series) if r.name == self.series[series].base)

    def family_of(self, row: Row) -> str:
        """The family of the row's network: its series', or its own (cnn unless it says)."""
        return self.series[row.series].family if row.series else row.family or "cnn"

    def protocol_of(self, row: Row) -> Protocol:
        """How the row's top-1 was measured: its series' protocol, or its own."""
        protocol = self.series[row.series].protocol if row.series else row.protocol
        assert protocol is not None  # _check: a row outside any series states its own
        return protocol.at(row.resolution)

    def reference(self, row: Row) -> Reference:
        """The row as a spec's reference accuracy, to compare like for like."""
        return Reference(top1=row.top1, dataset=DATASET, source=row.source, protocol=self.protocol_of(row))

    def multipliers(self, row: Row) -> tuple[float, float, float]:
        """(depth, width, resolution) of a series row relative to its series' base."""
        assert row.series is not None  # multipliers exist only within a series
        base = self.base_of(row.series)
        return row.depth / base.depth, row.width / base.width, row.resolution / base.resolution


def _check(table: Published) -> Published:
    for row in table.rows:
        if row.series is not None and row.series not in table.series:
            raise ScalelabError(f"published.yaml: row {row.name} names unknown series '{row.series}'")
        if row.series is not None and row.family is not None:
            raise ScalelabError(f"published.yaml: row {row.name} is in series {row.series}, whose family is its own")
        if (row.series is None) == (row.protocol is None):
            raise ScalelabError(f"published.yaml: row {row.name} needs a protocol of its own exactly when it is in "
                                "no series (a series states one for all its rows)")
    for name, series in table.series.items():
        bases = [r for r in table.members(name) if r.name == series.base]
        if len(bases) != 1:
            raise ScalelabError(f"published.yaml: series {name} needs exactly one row named {series.base}")
    return table


@functools.cache
def published() -> Published:
    """The table shipped with scalelab, validated."""
    text = (resources.files("scalelab.scaling.accuracy") / "published.yaml").read_text(encoding="utf-8")
    try:
        return _check(Published.model_validate(yaml.safe_load(text)))
    except ValidationError as exc:
        raise ScalelabError(f"published.yaml: {exc.errors(include_url=False)[0]['msg']}") from None


def find_published(base_name: str, depth: float, width: float, resolution: int,
                   base_top1: Optional[float] = None) -> Optional[Row]:
    """The row that is ``base_name`` scaled by exactly (depth, width) at ``resolution``, or None.

    When several series match (EfficientNet as in the paper and as torchvision trains it), the
    one whose base row carries ``base_top1`` wins, else the first."""
    table = published()
    matches = []
    for name, series in table.series.items():
        if series.base != base_name:
            continue
        for row in table.members(name):
            d, w, _ = table.multipliers(row)
            if math.isclose(d, depth, rel_tol=1e-6) and math.isclose(w, width, rel_tol=1e-6) and row.resolution == resolution:
                matches.append((name, row))
    if base_top1 is not None:
        for name, row in matches:
            if math.isclose(table.base_of(name).top1, base_top1, abs_tol=1e-6):
                return row
    return matches[0][1] if matches else None
