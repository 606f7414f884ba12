"""Typed groups of a command's parsed options: a command with many options hands each part of its work
one frozen dataclass, built once from what typer parsed, instead of a long list of arguments."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Group = TypeVar("Group", bound="DataclassInstance")


def pick(group: type[Group], parsed: Mapping[str, Any]) -> Group:
    """The dataclass ``group`` from the parsed options its fields name (a command's parameters)."""
    return group(**{f.name: parsed[f.name] for f in fields(group)})
