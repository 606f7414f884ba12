"""Typed groups of a command's parsed options: a command with many options hands each part of its work
one frozen dataclass, built once from what typer parsed, instead of a long list of arguments."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

import typer

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Group = TypeVar("Group", bound="DataclassInstance")


def pick(group: type[Group], parsed: Mapping[str, Any]) -> Group:
    """The dataclass ``group`` from the parsed options its fields name (a command's parameters)."""
    return group(**{f.name: parsed[f.name] for f in fields(group)})


def given(ctx: typer.Context) -> dict[str, str]:
    """The parameters given to the command, by name, each as a message names it (``--no-charts`` for
    a flag turned off). Told as click tells them, from where a value came from (its parameter source),
    not from the value: an option typed with its default value is given all the same."""
    return {p.name: _spelled(p, ctx.params.get(p.name)) for p in ctx.command.params
            if p.name and _source(ctx, p.name) not in ("", "DEFAULT")}


def _source(ctx: typer.Context, name: str) -> str:
    source = ctx.get_parameter_source(name)
    return "" if source is None else source.name  # by name: typer vendors its own click and its enum


def _spelled(param: Any, value: Any) -> str:
    if param.param_type_name != "option":
        return (param.name or "").upper()  # an argument: SPEC
    if param.secondary_opts and value is False:
        return param.secondary_opts[0]
    return max(param.opts, key=len)  # the long form: --output, not -o
