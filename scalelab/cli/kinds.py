"""`scalelab kinds`: the block kinds a spec may use, with their parameters."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Optional

import typer

from scalelab.blocks import KINDS
from scalelab.blocks.registry import BLOCK_SCHEMA
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, fail, friendly
from scalelab.errors import did_you_mean
from scalelab.limits import MAX_CHANNELS, MAX_RESOLUTION
from scalelab.report.table import print_prose, print_whole, rendered, text_console

COMMON = ("kind", "name", "from", "training_only", "scale_width")
SIZE_BOUNDS = (MAX_CHANNELS, MAX_RESOLUTION)


class ListFormat(str, Enum):
    table = "table"
    json = "json"


def type_text(prop: dict[str, Any]) -> str:
    """A short type for a JSON-schema property: int > 0, [int, int], 'same' | 'valid' | [int, int], ..."""
    if "anyOf" in prop:
        parts = [type_text(p) for p in prop["anyOf"] if p.get("type") != "null"]
        text = " | ".join(parts)
        return f"{text} | null" if any(p.get("type") == "null" for p in prop["anyOf"]) else text
    if "oneOf" in prop and "discriminator" in prop:
        return "block"
    if "oneOf" in prop:  # a value in one of several forms (se: a fraction, or its options)
        return " | ".join(type_text(p) for p in prop["oneOf"])
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if prop == BLOCK_SCHEMA:
        return "block"
    kind = prop.get("type", "any")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(type_text(p) for p in prop["prefixItems"]) + "]"
        return f"list[{type_text(prop.get('items', {}))}]"
    names = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}
    text = names.get(kind, kind)
    for key, op in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<=")):
        if key == "maximum" and prop.get(key) in SIZE_BOUNDS:
            continue  # the bounds every size has are listed once, in README 'Bounds'
        if key in prop:
            text += f" {op} {prop[key]}"
    return text


def kind_info(name: str, cls) -> dict[str, Any]:
    schema = cls.model_json_schema(by_alias=True)
    if "$ref" in schema:  # a recursive kind (inception holds blocks) is a reference into $defs
        schema = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    params = []
    for field, prop in schema["properties"].items():
        if field in COMMON:
            continue
        params.append({
            "name": field,
            "type": type_text(prop),
            "required": field in required,
            "default": prop.get("default"),
            "description": prop.get("description", ""),
            "scales_with_width": prop.get("scale") == "width",
        })
    return {"kind": name, "summary": cls.summary, "parameters": params}


def _default_text(param: dict) -> str:
    if param["required"]:
        return "required"
    return "-" if param["default"] is None else json.dumps(param["default"])


def _table(infos: list[dict]) -> str:
    from rich.table import Table
    from rich.text import Text

    console = text_console()  # the width rule of every command (scalelab.report.table)
    for info in infos:
        console.print(Text(f"{info['kind']}: {info['summary']}", style="bold"))  # a title would wrap at table width
        table = Table(header_style="bold")
        for header in ("parameter", "type", "default", "description"):
            table.add_column(header, overflow="fold", no_wrap=header == "parameter")  # names stay whole
        for p in info["parameters"]:
            # Text(): '[int > 0, int > 0]' is data, not rich markup; a type's alternatives one per line,
            # so a narrow column breaks between them, never inside one
            kind = p["type"].replace(" | ", "\n| ")
            table.add_row(*(Text(c) for c in (p["name"], kind, _default_text(p), p["description"])))
        print_whole(console, table)
    print_prose(console, "Every kind also takes: name, from (input block names), training_only, scale_width. "
                         "`scalelab schema` prints the full JSON Schema.")
    return rendered(console)


@app.command()
@friendly
def kinds(
    kind: Optional[str] = typer.Argument(None, parser=O.NAME, help="Show only this kind."),
    format: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="table or json."),
) -> None:
    """List the block kinds with a one-line summary and their parameters (type, default, meaning)."""
    names = sorted(KINDS) if kind is None else [kind]
    if kind is not None and kind not in KINDS:
        raise fail(f"unknown kind '{kind}'{did_you_mean(kind, KINDS)}; `scalelab kinds` lists them")
    infos = [kind_info(n, KINDS[n]) for n in names]
    emit(json.dumps(infos, indent=2) if format is ListFormat.json else _table(infos), None)
