"""The spec schema: what a YAML network description may say."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Strict, Tag, field_validator, model_validator

from scalelab.blocks import AnyBlock
from scalelab.blocks.base import ActivationName, Name, Norm, Pixels, PositiveInt, Probability, pair_schema
from scalelab.limits import MAX_BLOCKS, MAX_CROPS, MAX_REPEAT


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


Label = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


class Protocol(_Strict):
    """How a reference accuracy was measured. Two accuracies are like-for-like only when their
    datasets and protocols agree in crops, pre-training and distillation; the test resolution is
    stated too (each network's own input size, so it differs between networks on purpose)."""

    crops: Annotated[int, Strict(), Field(ge=1, le=MAX_CROPS)] = Field(
        description="test views averaged per image: 1 (one centre crop), 10 (ten-crop testing), 144, ...")
    resolution: Pixels = Field(description="test input size in pixels (the side of each crop)")
    pretraining: Label = Field(description="data seen before training on the dataset: 'none', 'ImageNet-21k', 'JFT-300M', ...")
    distillation: Label = Field(description="the teacher the network was distilled from, or 'none'")

    def like(self) -> tuple:
        """What must agree for two accuracies to compare like for like."""
        return self.crops, self.pretraining.lower(), self.distillation.lower()

    def describe(self) -> str:
        """'10 crops at 224 px, no pre-training, no distillation'."""
        crops = "1 crop" if self.crops == 1 else f"{self.crops} crops"
        pre = "no pre-training" if self.pretraining.lower() == "none" else f"pre-trained on {self.pretraining}"
        dist = "no distillation" if self.distillation.lower() == "none" else f"distilled from {self.distillation}"
        return f"{crops} at {self.resolution} px, {pre}, {dist}"


class Reference(_Strict):
    """A published accuracy for this exact network, with where it comes from and how it was measured."""

    top1: Annotated[float, Strict()] = Field(ge=0, le=100)
    top5: Optional[Annotated[float, Strict()]] = Field(None, ge=0, le=100)
    dataset: Label = "ImageNet-1k"
    source: str
    protocol: Optional[Protocol] = Field(None, description="how top1 was measured; without it the accuracy is "
                                         "compared with none (its protocol is unknown)")

    def describe_protocol(self) -> str:
        """'ImageNet-1k, 10 crops at 224 px, no pre-training, no distillation', or that it is not stated."""
        return f"{self.dataset}, " + (self.protocol.describe() if self.protocol else "protocol not stated")

    def like_for_like(self, other: "Reference") -> bool:
        """Whether the two accuracies were measured alike (an unknown protocol never is)."""
        return (self.protocol is not None and other.protocol is not None and self.dataset == other.dataset
                and self.protocol.like() == other.protocol.like())


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

    stage: Name = Field(description="stage name; its blocks are named stage.0, stage.1, ...")
    repeat: Annotated[int, Strict(), Field(gt=0, le=MAX_REPEAT)] = 1
    stride: Optional[Pixels] = Field(None, description="stride of the first repeat; the rest use 1")
    scale_depth: bool = Field(True, description="whether depth scaling multiplies the repeats")
    block: AnyBlock


def _entry_tag(v: Any) -> str:
    return "stage" if isinstance(v, Stage) or (isinstance(v, dict) and "stage" in v) else "block"


Entry = Annotated[
    Union[Annotated[Stage, Tag("stage")], Annotated[AnyBlock, Tag("block")]],
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
    def source(self) -> Any:
        """Where the spec came from (for error locations); None for specs built in code."""
        return self._source

    def located(self, source: Any) -> "Spec":
        """This spec, its errors located in ``source`` (a loaded file, or the spec it was scaled from,
        whose entries keep their places)."""
        self._source = source
        return self
