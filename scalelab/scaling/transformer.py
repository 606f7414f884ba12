"""Compound scaling of transformers (ViT, DeiT, Swin): what ``compound.scale_spec`` does beyond
channel counts.

- Width scales the embedding width in whole heads, as the DeiT series does (Ti, S, B: 3, 6, 12 heads
  of 64): a field marked ``{"scale": "embed"}`` (``patch_embed``'s ``out``) rounds to a multiple of
  lcm(divisor, every head width in the spec), so the head width stays and the heads count scales.
  A block that gives its heads as a count (``heads: 3``) is rewritten with its head width
  (``head_dim: 64``) first, so that its count follows the width too. Every block downstream takes its
  width from its input.
- Depth scales the blocks per stage (stage repeats), as for CNNs.
- Resolution scales the token count: where a patch embedding takes the input, the input rounds to a
  multiple of the patch (a strided conv drops the pixels past the last whole patch: they would cost
  nothing and change nothing). The attention's score and weighted-sum matmuls grow with the square
  of the token count, the other per-token work with the count, and so do the learned position
  embedding's parameters (timm and torchvision interpolate it to the new grid).
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from scalelab.blocks import Block
from scalelab.graph.network import resolve
from scalelab.scaling.rounding import round_channels
from scalelab.scaling.widths import width_fields
from scalelab.spec.model import Spec, Stage

#: the scale hint of an embedding width (``json_schema_extra={"scale": "embed"}``)
EMBED = "embed"


def blocks_in(value: Any) -> Iterator[Block]:
    """Every block of a spec entry, a block or a list of them, nested ones included."""
    if isinstance(value, Stage):
        yield from blocks_in(value.block)
    elif isinstance(value, Block):
        yield value
        for name in type(value).model_fields:
            field = getattr(value, name)
            if isinstance(field, (Block, list, tuple)):
                yield from blocks_in(field)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from blocks_in(v)


def _hint(info: Any) -> Optional[str]:
    extra = getattr(info, "json_schema_extra", None)
    return extra.get("scale") if isinstance(extra, dict) else None


def _annotation_hints(annotation: Any) -> bool:
    """Whether the embed hint sits in a type's Annotated metadata, also inside Optional[...]."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return any(isinstance(m, FieldInfo) and _hint(m) == EMBED for m in metadata) or _annotation_hints(base)
    return any(_annotation_hints(arg) for arg in typing.get_args(annotation))


@functools.cache
def embed_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """Names of a block kind's fields that are an embedding width."""
    return tuple(name for name, info in cls.model_fields.items()
                 if _hint(info) == EMBED or _annotation_hints(info.annotation))


def _heads_count(block: Block) -> Optional[int]:
    value = getattr(block, "heads", None) if "heads" in type(block).model_fields else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def head_widths(spec: Spec) -> set[int]:
    """The head widths of the spec's attention blocks (after ``with_head_widths``, every block that
    has heads states its width)."""
    widths = set()
    for b in blocks_in(spec.blocks):
        width = getattr(b, "head_dim", None) if "head_dim" in type(b).model_fields else None
        if _heads_count(b) is None and isinstance(width, int) and not isinstance(width, bool):
            widths.add(width)
    return widths


def with_head_widths(spec: Spec) -> Spec:
    """``spec`` with every block (or stage block) that gives its heads as a count rewritten to give
    its head width, read from the resolved network: width scaling then keeps the width and scales
    the count. A block nested in another keeps its count."""
    if not any(_heads_count(b) is not None for e in spec.blocks for b in (e.block if isinstance(e, Stage) else e,)):
        return spec
    from scalelab.graph import resolve  # the shapes: only for a spec that counts heads

    dims: dict[tuple, Optional[int]] = {}
    for rb in resolve(spec).blocks.values():
        dims.setdefault(rb.path, rb.in_shape[-1] if rb.in_shape and isinstance(rb.in_shape[-1], int) else None)
    entries = []
    for i, entry in enumerate(spec.blocks):
        block = entry.block if isinstance(entry, Stage) else entry
        heads, dim = _heads_count(block), dims.get(("blocks", i))
        if heads is not None and dim is not None and dim % heads == 0:
            data = block.model_dump(mode="json", by_alias=True, exclude_unset=True)
            data.pop("heads")
            data["head_dim"] = dim // heads
            block = type(block).model_validate(data)
        entries.append(entry.model_copy(update={"block": block}) if isinstance(entry, Stage) else block)
    return spec.model_copy(update={"blocks": entries})


def embed_divisor(spec: Spec, divisor: int) -> int:
    """What an embedding width rounds to: lcm(divisor, every head width)."""
    return math.lcm(divisor, *head_widths(spec))


def _plain(value: Any) -> Any:
    """A field's value as YAML would give it (nested blocks dumped)."""
    if isinstance(value, Block):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def scale_embeds(block: Block, width: float, divisor: int) -> Block:
    """``block`` with its embedding widths (and those of blocks nested in it) times ``width``,
    rounded to a multiple of ``divisor`` (``embed_divisor``). ``scale_width: false`` keeps them."""
    if width == 1.0 or not block.scale_width:
        return block
    updates: dict[str, Any] = {}
    for name in type(block).model_fields:
        value = getattr(block, name)
        if name in embed_fields(type(block)) and isinstance(value, int):
            updates[name] = round_channels(value, width, divisor)
        elif isinstance(value, Block):
            updates[name] = scale_embeds(value, width, divisor)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Block) for v in value):
            updates[name] = [scale_embeds(v, width, divisor) if isinstance(v, Block) else v for v in value]
    if not updates:
        return block
    data = _plain(block)
    aliases = {name: (info.alias or name) for name, info in type(block).model_fields.items()}
    data.update({aliases[name]: _plain(value) for name, value in updates.items()})
    return type(block).model_validate(data)


def _patch_embed(spec: Spec) -> Optional[Block]:
    """The patch embedding that takes the input (the first entry, reading no other block), or None."""
    first = spec.blocks[0] if spec.blocks else None
    if isinstance(first, Block) and first.kind == "patch_embed" and not first.inputs:
        return first
    return None


def _map_multiple(spec: Spec) -> int:
    """The input size at which every ``unfold`` (MobileViT) sees whole patches, and every ``maxvit_block``
    a map that divides into its windows and its grid (MaxViT pads neither): the patch, or the window and
    grid, times the downsampling before it, read off the network at its own resolution; 1 without one."""
    if not any(b.kind in ("unfold", "maxvit_block") for b in blocks_in(spec.blocks)):
        return 1
    network = resolve(spec)
    height, width = spec.input.resolution
    multiple = 1
    for b in network.blocks.values():
        for x in blocks_in(b.block):
            if x.kind == "unfold":  # inside a body it sees the map after the body's own strides, if any
                (ph, pw), strides = x.patch, _strides_before(b.block, x)  # type: ignore[attr-defined]
            elif x.kind == "maxvit_block":  # its attention sees the map after the MBConv's stride
                ph = pw = math.lcm(x.window, x.grid)  # type: ignore[attr-defined]
                strides = x.stride  # type: ignore[attr-defined]
            else:
                continue
            _, h, w = typing.cast(tuple[int, int, int], b.in_shape)  # a block holding either takes one (C, H, W) map
            multiple = math.lcm(multiple, height // h * strides * ph, width // w * strides * pw)
    return multiple


def _strides_before(block: Block, unfold: Block) -> int:
    """The product of the strides of the blocks a body runs before ``unfold`` (a wrap's convs)."""
    product = 1
    for x in blocks_in(getattr(block, "body", [])):
        if x is unfold:
            break
        stride = getattr(x, "stride", 1)
        product *= stride if isinstance(stride, int) else max(stride)
    return product


def patch_multiple(spec: Spec) -> int:
    """What the input size rounds to: the patch of a patch embedding that takes the input, or the size at
    which every unfold sees whole patches and every MaxViT block whole windows, else 1."""
    embed = _patch_embed(spec)
    return math.lcm(*getattr(embed, "patch")) if embed is not None else _map_multiple(spec)


def tokens(spec: Spec, size: tuple[int, int]) -> Optional[tuple[int, int, int]]:
    """(patch rows, patch columns, tokens with the class and distillation ones) at input ``size``,
    where a patch embedding takes the input; None otherwise."""
    embed = _patch_embed(spec)
    if embed is None:
        return None
    rows, cols = size[0] // embed.patch[0], size[1] // embed.patch[1]  # type: ignore[attr-defined]
    extra = int(bool(getattr(embed, "class_token", False))) + int(bool(getattr(embed, "distill_token", False)))
    return rows, cols, rows * cols + extra


def _embed_width(spec: Spec) -> Optional[int]:
    """The first embedding width of the spec (a ViT's), else, in a spec with attention heads, its
    first channel count (a Swin stem's: the width its stages double), else None."""
    for fields in (embed_fields, width_fields) if head_widths(spec) else (embed_fields,):
        for b in blocks_in(spec.blocks):
            for name in fields(type(b)):
                if isinstance(getattr(b, name), int) and not isinstance(getattr(b, name), bool):
                    return getattr(b, name)
    return None


def note(spec: Spec, width: float, size: tuple[int, int], divisor: int) -> str:
    """What width and resolution did to a transformer, for the scaled spec's description; '' for a
    network without an embedding width or patch tokens. ``spec`` is the base (with head widths)."""
    parts = []
    before, widths = _embed_width(spec), head_widths(spec)
    heads_of = f"the head width{'s' if len(widths) > 1 else ''} {', '.join(map(str, sorted(widths)))}"
    if before is not None and width != 1.0:
        after = round_channels(before, width, divisor)
        heads = f", heads {before // min(widths)} -> {after // min(widths)}" if len(widths) == 1 else ""
        parts.append(f"embedding width {before} -> {after} in whole heads (a multiple of {divisor}, the lcm of the "
                     f"channel divisor and {heads_of}{heads})")
    elif widths and width != 1.0:
        parts.append(f"channels in whole heads (multiples of {divisor}, the lcm of the channel divisor and {heads_of})")
    old, new = tokens(spec, spec.input.resolution), tokens(spec, size)
    if old is not None and new is not None and old != new:
        embed = _patch_embed(spec)
        position = (", and so do the learned position embedding's parameters"
                    if getattr(embed, "position", "none") == "learned" else "")
        parts.append(f"tokens {old[2]} -> {new[2]} ({new[0]}x{new[1]} patches of {patch_multiple(spec)} px): the attention's "
                     f"score and weighted-sum MACs grow with the square of the token count (x{(new[2] / old[2]) ** 2:.3g}), "
                     f"the other per-token work with the count (x{new[2] / old[2]:.3g}){position}")
    return ("Transformer: " + "; ".join(parts) + ".") if parts else ""


def built_width(spec: Spec, width: float, divisor: int = 8) -> Optional[tuple[int, int]]:
    """(embedding width before, after) width scaling by ``width`` builds (whole heads), or None for
    a spec without an embedding width: what an accuracy law reads as the width multiplier."""
    spec = with_head_widths(spec) if width != 1.0 else spec
    before = _embed_width(spec)
    if before is None:
        return None
    return before, round_channels(before, width, embed_divisor(spec, divisor)) if width != 1.0 else before



@dataclass(frozen=True)
class Prepared:
    """A spec ready for channel scaling (``prepare``): what ``scale_spec`` scales, the divisor its
    channel counts round to, and the base with its heads as head widths (for the description)."""

    spec: Spec
    divisor: int
    base: Spec
    width: float

    def note(self, size: tuple[int, int]) -> str:
        return note(self.base, self.width, size, self.divisor)


def prepare(spec: Spec, width: float, divisor: int) -> Prepared:
    """``spec`` ready for channel scaling by ``width``, for ``scale_spec``.

    A spec without attention heads comes back as it is, with ``divisor``. Otherwise its heads are
    given as head widths, its embedding widths are already scaled in whole heads, and every other
    channel count (a Swin stem's conv) rounds to a multiple of the head widths too, so that each
    layer downstream still splits into whole heads."""
    base = with_head_widths(spec) if width != 1.0 else spec
    if width == 1.0 or not head_widths(base):
        return Prepared(base, divisor, base, width)
    embed = embed_divisor(base, divisor)
    entries = [entry.model_copy(update={"block": scale_embeds(entry.block, width, embed)}) if isinstance(entry, Stage)
               else scale_embeds(entry, width, embed) for entry in base.blocks]
    return Prepared(base.model_copy(update={"blocks": entries}), embed, base, width)
