"""The spec schema: what a YAML network description may say."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Strict, Tag, field_validator, model_validator

from scalelab.blocks import AnyBlock
from scalelab.blocks.base import ActivationName, Norm, Pixels, PositiveInt, Probability, pair_schema
from scalelab.limits import MAX_BLOCKS, MAX_REPEAT


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class InputSpec(_Strict):
    channels: PositiveInt = 3
    resolution: Annotated[tuple[Pixels, Pixels], pair_schema(1)] = Field(
        description="input size: 224 or [height, width]")

    @field_validator("resolution", mode="before")
    @classmethod
    def _square(cls, v):
        return (v, v) if isinstance(v, int) and not isinstance(v, bool) else v


class Reference(_Strict):
    """A published accuracy for this exact network, with where it comes from."""

    top1: Annotated[float, Strict()] = Field(ge=0, le=100)
    top5: Optional[Annotated[float, Strict()]] = Field(None, ge=0, le=100)
    dataset: str = "ImageNet-1k"
    source: str


class Defaults(_Strict):
    """Parameters applied to every block kind that has them and does not set them itself."""

    norm: Optional[Norm] = None
    activation: Optional[ActivationName] = None
    norm_eps: Optional[Annotated[float, Strict()]] = Field(None, gt=0)


class DropPathRamp(_Strict):
    """Stochastic depth (Huang et al. 2016) growing linearly with the block index over the network,
    as torchvision's EfficientNet and ConvNeXt set it: block i of the N stage blocks that have a
    ``drop_path`` gets rate x i / N (``end: after_last``, EfficientNet) or rate x i / (N - 1)
    (``end: last``, ConvNeXt: the last block gets the full rate). Training only."""

    rate: Probability = Field(description="the rate the ramp reaches")
    end: Literal["after_last", "last"] = "after_last"


class Stage(_Strict):
    """A block repeated; the first repeat takes the stage stride (EfficientNet convention)."""

    stage: str = Field(description="stage name; its blocks are named stage.0, stage.1, ...")
    repeat: Annotated[int, Strict(), Field(gt=0, le=MAX_REPEAT)] = 1
    stride: Optional[Pixels] = Field(None, description="stride of the first repeat; the rest use 1")
    scale_depth: bool = Field(True, description="whether depth scaling multiplies the repeats")
    block: AnyBlock  # type: ignore[valid-type]


def _entry_tag(v: Any) -> str:
    return "stage" if isinstance(v, Stage) or (isinstance(v, dict) and "stage" in v) else "block"


Entry = Annotated[
    Union[Annotated[Stage, Tag("stage")], Annotated[AnyBlock, Tag("block")]],  # type: ignore[valid-type]
    Discriminator(_entry_tag),
]


class Spec(_Strict):
    name: str
    description: str = ""
    input: InputSpec
    reference: Optional[Reference] = None
    defaults: Defaults = Defaults()
    stochastic_depth: Optional[DropPathRamp] = None
    blocks: list[Entry] = Field(min_length=1, max_length=MAX_BLOCKS)

    _source: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _few_enough_blocks(self):
        total = sum(e.repeat if isinstance(e, Stage) else 1 for e in self.blocks)
        if total > MAX_BLOCKS:
            raise ValueError(f"the stages repeat to {total:,} blocks; a network may have at most {MAX_BLOCKS:,}")
        return self

    @property
    def source(self):
        """Where the spec came from (for error locations); None for specs built in code."""
        return self._source
