"""Reading specs: YAML parsing, defaults, schema validation, and errors located in the file."""

from __future__ import annotations

import json
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from scalelab.blocks import KINDS
from scalelab.blocks.registry import INNER_BLOCK_ERROR, with_block_definitions
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.limits import MAX_CHANNELS, MAX_REPEAT, MAX_RESOLUTION, MAX_SPEC_BYTES, one_line, quote
from scalelab.spec.model import Spec, Stage
from scalelab.spec.yaml_safe import parse_yaml, yaml11_hint

DEFAULT_KEYS = ("norm", "activation", "norm_eps")
#: the size bounds README 'Bounds' lists (a ratio's "at most 1" is the rule of the field itself)
SPEC_BOUNDS = (MAX_CHANNELS, MAX_RESOLUTION, MAX_REPEAT)


# --------------------------------------------------------------------------------------------------
# Locating a YAML path in the text


class SourceMap:
    """Maps a path into the document (('blocks', 3, 'stride')) to its file, line and column."""

    def __init__(self, filename: str, root: yaml.Node | None):
        self.filename = filename
        self.root = root

    def resolve(self, path: tuple) -> tuple[tuple, yaml.Node | None]:
        """Follow ``path`` as far as the document goes; return the keys followed and the node.

        Steps that are not in the document (validation tags such as a kind name) are skipped."""
        node, followed = self.root, []
        for step in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                child = node.value[step]
            if child is not None:
                node = child
                followed.append(step)
        return tuple(followed), node

    def where(self, path: tuple) -> str:
        """``file:line:col: yaml.path`` for an error at ``path``: the deepest node the document has,
        and a key below it that the file leaves out (filled in from ``defaults``), but not an index
        into a value written short (``stride: 2`` for a pair)."""
        followed, node = self.resolve(path)
        place = self.filename
        if node is not None:
            place += f":{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        rest = path[_position_after(path, followed):]
        shown = followed + rest if len(rest) == 1 and isinstance(rest[0], str) else followed
        return f"{place}: {yaml_path(shown)}" if shown else place


def _position_after(path: tuple, followed: tuple) -> int:
    """Where in ``path`` the steps after its subsequence ``followed`` begin."""
    position = 0
    for step in followed:
        position = path.index(step, position) + 1
    return position


def yaml_path(path: tuple) -> str:
    out = ""
    for step in path:
        if isinstance(step, str) and len(step) > 60:  # a mistyped key may be a whole paragraph
            step = step[:60] + "..."
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def located_error(source: SourceMap | None, path: tuple, message: str) -> ScalelabError:
    if source is None:
        return ScalelabError(f"{yaml_path(path) or 'spec'}: {message}")
    return ScalelabError(f"{source.where(path)}: {message}")


# --------------------------------------------------------------------------------------------------
# Defaults and validation messages


def _apply_defaults(obj: Any, defaults: dict) -> None:
    """Fill each block's norm/activation/norm_eps from the spec's defaults, where the kind has
    that parameter, takes defaults, and does not set it."""
    if isinstance(obj, list):
        for item in obj:
            _apply_defaults(item, defaults)
    elif isinstance(obj, dict):
        kind = obj.get("kind")
        cls = KINDS.get(kind) if isinstance(kind, str) else None
        if cls is not None and cls.takes_defaults:
            for key, value in defaults.items():
                if key in cls.model_fields and value is not None:
                    obj.setdefault(key, value)
        for value in obj.values():
            _apply_defaults(value, defaults)


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or any(_admits_bool(a) for a in typing.get_args(annotation))


def _boolean_number(obj: Any, path: tuple = ()) -> tuple | None:
    """The path of the first ``true``/``false`` given to a block parameter that is not a flag:
    pydantic would read it as 1.0 or 0.0 for a float (integer fields are strict already)."""
    if isinstance(obj, list):
        return next((p for i, item in enumerate(obj) if (p := _boolean_number(item, path + (i,)))), None)
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    fields = {(f.alias or name): f for name, f in cls.model_fields.items()} if cls else {}
    for key, value in obj.items():
        if isinstance(value, bool) and key in fields and not _admits_bool(fields[key].annotation):
            return path + (key,)
        found = _boolean_number(value, path + (key,)) if isinstance(value, (list, dict)) else None
        if found:
            return found
    return None


def _fields_of(raw: Any) -> list[str]:
    """The keys a mapping in the document may have, for 'did you mean' hints."""
    model: type[BaseModel]
    if isinstance(raw, dict) and isinstance(raw.get("kind"), str) and raw["kind"] in KINDS:
        model = KINDS[raw["kind"]]
    elif isinstance(raw, dict) and "stage" in raw:
        model = Stage
    else:
        return list(Spec.model_fields)
    return [f.alias or name for name, f in model.model_fields.items()]


def _raw_at(data: Any, path: tuple) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            continue  # a validation tag, not a document key
    return data


def _document_path(loc: tuple, data: Any) -> tuple:
    """Drop the tags pydantic puts in a location for tagged unions: the entry tag ('stage' or
    'block') after ``blocks[i]``, and the form a value is written in (``se``: 'fraction' or
    'options'). Left in, the tag 'stage' would be read as a stage's ``stage:`` key. A tag is a step
    the document cannot have: a key under a plain value, or one a mapping lacks with more steps after
    it (a missing key is the last step)."""
    out: list = []
    node = data
    for i, step in enumerate(loc):
        if i == 2 and loc[0] == "blocks" and step in ("stage", "block"):
            continue
        if isinstance(step, str) and (
                (node is not None and not isinstance(node, (dict, list)))
                or (isinstance(node, dict) and step not in node and i < len(loc) - 1)):
            continue
        out.append(step)
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(out)


def _describe(error: ErrorDetails, data: Any) -> tuple[tuple, str]:
    """One validation error -> (path of the offending node, message); a text where a number or a
    choice was expected gets a hint where YAML 1.1 would have read it as a number (``0100``, ``6_4``)."""
    loc, message = _describe_rule(error, data)
    value, kind = error["input"], error["type"]
    if isinstance(value, str) and (kind.endswith(("_type", "_parsing")) or kind.startswith("literal")):
        hint = yaml11_hint(value)
        if hint:
            message += f"; {hint}"
    return loc, message


def _describe_rule(error: ErrorDetails, data: Any) -> tuple[tuple, str]:
    loc, kind = _document_path(tuple(error["loc"]), data), error["type"]
    if kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        return loc, f"unknown kind {quote(tag)}{did_you_mean(tag, KINDS)}; `scalelab kinds` lists them"
    if kind == "union_tag_not_found":
        return loc, "a block needs a 'kind' (or 'stage' with 'block' for a repeated block)"
    if kind == "missing":
        return loc[:-1], f"missing required field '{loc[-1]}'"
    if kind == "extra_forbidden":
        parent = _raw_at(data, loc[:-1])
        what = f" for kind '{parent['kind']}'" if isinstance(parent, dict) and "kind" in parent else ""
        return loc, f"unknown field {quote(loc[-1])}{what}{did_you_mean(loc[-1], _fields_of(parent))}"
    if kind == INNER_BLOCK_ERROR:  # the message quotes the value; the place is the key at fault
        return loc + (error["ctx"]["key"],), error["msg"]
    if kind == "value_error" and isinstance(error["input"], dict):  # a model's own rule: its message says what is wrong
        return loc, error["msg"].removeprefix("Value error, ")
    message = error["msg"].replace("Input should", "must", 1)
    if kind.startswith("literal"):
        choices = _choices(error["ctx"]["expected"])
        hint = did_you_mean(error["input"], re.findall(r"'([^']*)'", choices)) if isinstance(error["input"], str) else ""
        return loc, f"must be one of {choices} (got {quote(error['input'])}){hint}"
    if kind in ("int_type", "float_type") and isinstance(error["input"], bool):
        message = "must be a number; true and false are not numbers"
    elif kind == "float_type":
        message = "must be a number written as one, such as 0.001"
    elif kind == "int_type":
        message = "must be a whole number written as one, such as 8"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind == "less_than_equal":
        bound = error["ctx"]["le"]
        message = f"must be at most {bound:,}" + (" (README, 'Bounds')" if bound in SPEC_BOUNDS else "")
    elif kind == "too_long":
        return loc, f"has {error['ctx']['actual_length']:,} items; at most {error['ctx']['max_length']:,} are allowed (README, 'Bounds')"
    elif kind == "too_short" and loc[-1:] == ("from",):
        message = "must name at least one block (leave 'from' out to take the previous block)"
    return loc, f"{message} (got {quote(error['input'])})"


describe_error = _describe  # for specs built in code (scaling), which have no source file


MAX_PROBLEMS = 10


def _all_problems(source: SourceMap, errors: list, data: Any) -> str:
    """One located line per problem, up to MAX_PROBLEMS; a pair such as stride: -2 fails once per
    element, but is one place in the file and one line here."""
    lines: dict[str, str] = {}
    for error in errors:
        path, message = _describe(error, data)
        lines.setdefault(source.where(path), message)
    shown = [f"{where}: {message}" for where, message in list(lines.items())[:MAX_PROBLEMS]]
    hidden = len(lines) - len(shown)
    return "\n".join(shown + ([f"(and {hidden} more problem{'s' if hidden > 1 else ''})"] if hidden else []))


def _choices(expected: str) -> str:
    """pydantic's "'relu', 'silu' or 'none'", with the alias 'swish' that `scalelab kinds` lists."""
    names = re.findall(r"'([^']*)'", expected)
    if "silu" in names and "swish" not in names:
        names.insert(names.index("none") if "none" in names else len(names), "swish")
    quoted = [f"'{n}'" for n in names]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else expected


# --------------------------------------------------------------------------------------------------
# Public entry points


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Parse and validate spec text; raise ScalelabError naming file:line and the YAML path."""
    root, data = parse_yaml(text, filename)
    source = SourceMap(filename, root)
    if data is None:
        raise ScalelabError(f"{filename}: the spec is empty; it needs at least name, input and blocks")
    if not isinstance(data, dict):
        raise ScalelabError(f"{source.where(())}: a spec must be a mapping (name, input, blocks), got a {type(data).__name__}")
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        _apply_defaults(data.get("blocks"), {k: defaults.get(k) for k in DEFAULT_KEYS})
    flag = _boolean_number(data.get("blocks"), ("blocks",))
    if flag:
        raise located_error(source, flag, f"must be a number; true and false are not numbers (got {_raw_at(data, flag)})")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise ScalelabError(_all_problems(source, exc.errors(include_url=False), data)) from None
    return spec.located(source)


def zoo_dir() -> Path:
    """The model zoo: shipped inside the package, or the repository's specs/ in a source checkout."""
    shipped = resources.files("scalelab") / "specs"
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "specs"


def zoo_names() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.yaml"))


def zoo_path(name: str) -> Path:
    return zoo_dir() / f"{name}.yaml"


def load_spec(spec: str | Path) -> Spec:
    """Load a spec from a path, or by zoo name (``resnet50``)."""
    path = Path(spec)
    if not path.is_file():
        if zoo_path(str(spec)).is_file():
            path = zoo_path(str(spec))
        else:
            hint = did_you_mean(path.stem, zoo_names())
            raise ScalelabError(f"{spec}: no such file or zoo spec{hint}; `scalelab zoo` lists the zoo")
    return parse_spec(read_text(path, MAX_SPEC_BYTES), str(spec))


def read_text(path: Path, max_bytes: int) -> str:
    """A text file's content, refusing one larger than ``max_bytes`` before reading it."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ScalelabError(f"{path}: {size:,} bytes, more than the {max_bytes:,} a file may have (README, 'Bounds')")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalelabError(f"{path}: cannot read: {one_line(str(exc))[:300]}") from None


def spec_schema() -> dict:
    """The JSON Schema of a spec, for editors."""
    schema = with_block_definitions(TypeAdapter(Spec).json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "scalelab network spec"
    return json.loads(json.dumps(schema))
