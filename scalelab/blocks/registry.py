"""The registry of block kinds: a spec's ``kind`` -> its model, each kind's module imported the first
time a spec names it.

Building a kind's validation model is most of the cost of starting an analysis, so a spec that uses
five kinds builds five, not thirty. ``AnyBlock`` validates a block by its ``kind`` as a tagged union
would, with the same errors (``union_tag_invalid``, ``union_tag_not_found``) and locations.

Adding a kind is adding its module to ``scalelab/blocks/kinds/``, named by the kind: a ``Block``
subclass with that ``kind`` literal and ``layers()``. The list of kinds is read from that folder,
so a kind is declared once.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator, Mapping
from functools import cache, partial
from importlib import import_module
from typing import Annotated, Any

from pydantic_core import PydanticCustomError, core_schema

from scalelab.blocks import kinds as kinds_package
from scalelab.blocks.base import Block
from scalelab.limits import quote

#: every block kind: the modules of scalelab.blocks.kinds, each named by the kind it defines
_NAMES: tuple[str, ...] = tuple(sorted(m.name for m in pkgutil.iter_modules(kinds_package.__path__)))


@cache
def _model(kind: str) -> type[Block]:
    """The one ``Block`` model that the module of ``kind`` defines with that ``kind`` literal."""
    module = import_module(f"{kinds_package.__name__}.{kind}")
    models = [value for value in vars(module).values()
              if isinstance(value, type) and issubclass(value, Block) and value.__module__ == module.__name__
              and value.model_fields["kind"].default == kind]
    if len(models) != 1:
        raise TypeError(f"{module.__name__} must define one Block model with kind '{kind}', found {len(models)}")
    return models[0]


#: kinds whose cost is unknown (an imported operation no block states)
OPAQUE_KINDS = ("opaque", "opaque_merge")


class _Kinds(Mapping):
    """kind name -> block model; ``in``, ``len`` and iteration read the names only."""

    def __getitem__(self, kind: str) -> type[Block]:
        if kind not in _NAMES:
            raise KeyError(kind)
        return _model(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in _NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(_NAMES)

    def __len__(self) -> int:
        return len(_NAMES)


#: kind name -> block model
KINDS: Mapping[str, type[Block]] = _Kinds()


def _tags() -> str:
    return ", ".join(f"'{kind}'" for kind in _NAMES)


def _validate_block(value: Any) -> Block:
    """One block, validated by the model its ``kind`` names."""
    if isinstance(value, Block):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("block_type", "must be a mapping with a 'kind', such as {kind: conv, out: 64}")
    kind = value.get("kind")
    if kind is None:
        raise PydanticCustomError("union_tag_not_found", "Unable to extract tag using discriminator 'kind'",
                                  {"discriminator": "'kind'"})
    if not isinstance(kind, str) or kind not in _NAMES:
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag '{tag}' found using 'kind' does not match any of the expected tags: {expected_tags}",
            {"discriminator": "'kind'", "tag": str(kind), "expected_tags": _tags()})
    return KINDS[kind].model_validate(value)


#: a block's JSON Schema where a model holds blocks; ``with_block_definitions`` makes each one a
#: reference to the exact union of the kinds (kept apart so that a kind's own schema builds no other)
BLOCK_SCHEMA = {"title": "Block", "type": "object", "required": ["kind"],
                "description": "a block: one of the kinds `scalelab kinds` lists, chosen by its 'kind'"}


#: the error type of a block that cannot stand inside another; its context names the key at fault
INNER_BLOCK_ERROR = "inner_block"


def _inner_problem(block: Block, place: str) -> tuple[str, str] | None:
    """(the key at fault, what is wrong) where ``block`` cannot stand inside another block: there
    it takes the previous block's output only and runs with its host, so it cannot join inputs,
    name them, be training-only, or have a name of its own (nothing refers to it)."""
    only = f"a {place} block takes the previous one's output only"
    if type(block).arity == 0:
        return "kind", f"{only}; '{block.kind}' takes no input: put it before the host, as a block of its own"
    if type(block).arity != 1:
        return "kind", f"{only}; '{block.kind}' joins two or more inputs: put it after the host, as a block of its own"
    if type(block).several_outputs:
        return "kind", (f"{only} and gives it one; '{block.kind}' gives several outputs: put it after the host, as "
                        f"a block of its own")
    if block.inputs is not None:
        return "from", f"{only}; 'from' cannot name its inputs (got {quote(block.inputs)})"
    if "training_only" in block.model_fields_set:
        return "training_only", (f"{only} and runs whenever its host does; training_only cannot set it apart "
                                 f"(got {str(block.training_only).lower()})")
    if block.training_only:
        return "kind", f"{only} and runs whenever its host does; '{block.kind}' is training-only"
    if block.name is not None:
        return "name", (f"a {place} block has no name of its own: reports and from: name the block that holds "
                        f"it (got {quote(block.name)})")
    return None


def _validate_inner(value: Any, place: str) -> Block:
    block = _validate_block(value)
    problem = _inner_problem(block, place)
    if problem is not None:
        raise PydanticCustomError(INNER_BLOCK_ERROR, "{rule}", {"key": problem[0], "rule": problem[1]})
    return block


class _ByKind:
    """Pydantic hooks of ``AnyBlock``: validate by ``kind`` (and, for a block held by another in the
    role ``place``, by the rule of inner blocks); in a JSON Schema, ``BLOCK_SCHEMA``."""

    def __init__(self, place: str | None = None):
        self.place = place

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        if self.place is None:
            return core_schema.no_info_plain_validator_function(_validate_block)
        return core_schema.no_info_plain_validator_function(partial(_validate_inner, place=self.place))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict:
        return dict(BLOCK_SCHEMA)


#: any block, told apart by its ``kind``
AnyBlock = Annotated[Block, _ByKind()]
#: a block inside an inception branch, and inside a wrap body
BranchBlock = Annotated[Block, _ByKind("branch")]
BodyBlock = Annotated[Block, _ByKind("body")]


def with_block_definitions(schema: dict) -> dict:
    """``schema`` with every ``BLOCK_SCHEMA`` made a reference to ``$defs/AnyBlock``: one of the
    kinds' schemas (all added to ``$defs``), chosen by ``kind``."""
    from pydantic.json_schema import models_json_schema

    models = [KINDS[kind] for kind in _NAMES]
    _, kinds = models_json_schema([(cls, "validation") for cls in models], by_alias=True)
    refs = {kind: f"#/$defs/{cls.__name__}" for kind, cls in zip(_NAMES, models)}
    defs = {**schema.get("$defs", {}), **kinds["$defs"],
            "AnyBlock": {"oneOf": [{"$ref": ref} for ref in refs.values()],
                         "discriminator": {"propertyName": "kind", "mapping": refs}}}

    def refer(node: Any) -> Any:
        if node == BLOCK_SCHEMA:
            return {"$ref": "#/$defs/AnyBlock"}
        if isinstance(node, dict):
            return {key: refer(value) for key, value in node.items()}
        return [refer(item) for item in node] if isinstance(node, list) else node

    return refer({**schema, "$defs": dict(sorted(defs.items()))})
