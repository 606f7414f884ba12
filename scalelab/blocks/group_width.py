"""Group width (RegNet, Radosavovic et al. 2020; ResNeXt's "width of group"), the alternative to a
fixed group count: groups = channels / group_width.

Like ``groups``, the field is marked ``divides`` (its JSON schema extra names the channel fields it
must divide), so that width scaling rounds those channels to multiples of it."""

from typing import Annotated, Any, Optional

from pydantic import Field

from scalelab.blocks.layers import ShapeError

GroupWidth = Annotated[Optional[int], Field(gt=0)]


def group_width_field(*divides: str) -> Any:  # what pydantic's Field returns: the field's default to a checker
    """The ``group_width`` field of a kind, dividing the named channel fields ("input": the block's input)."""
    return Field(None, json_schema_extra={"divides": list(divides)},
                 description="channels per group; groups = channels / group_width (instead of groups)")


def groups_for(channels: int, groups: int, group_width: Optional[int]) -> int:
    """The group count: ``groups``, or ``channels / group_width`` when a group width is given."""
    if group_width is None:
        return groups
    if channels % group_width:
        raise ShapeError(f"group_width={group_width} must divide the {channels} channels it groups")
    return channels // group_width
