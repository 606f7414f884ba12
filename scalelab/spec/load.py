"""Reading specs: YAML parsing, defaults, schema validation, and errors located in the file."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from scalelab.blocks import KINDS
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.spec.model import Spec, Stage

DEFAULT_KEYS = ("norm", "activation", "norm_eps")


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
        """``file:line:col: yaml.path`` for an error at ``path``."""
        followed, node = self.resolve(path)
        place = self.filename
        if node is not None:
            place += f":{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        return f"{place}: {yaml_path(followed)}" if followed else place


def yaml_path(path: tuple) -> str:
    out = ""
    for step in path:
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
        cls = KINDS.get(obj.get("kind")) if isinstance(obj.get("kind"), str) else None
        if cls is not None and cls.takes_defaults:
            for key, value in defaults.items():
                if key in cls.model_fields and value is not None:
                    obj.setdefault(key, value)
        for value in obj.values():
            _apply_defaults(value, defaults)


def _fields_of(raw: Any) -> list[str]:
    """The keys a mapping in the document may have, for 'did you mean' hints."""
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
    'block') after ``blocks[i]`` and the kind name after each block mapping. Left in, the tag
    'stage' would be read as a stage's ``stage:`` key (and 'activation' as a field of that name)."""
    out: list = []
    node, fresh = data, False
    for i, step in enumerate(loc):
        if i == 2 and loc[0] == "blocks" and step in ("stage", "block"):
            continue
        if fresh and isinstance(node, dict) and node.get("kind") == step:
            fresh = False
            continue
        out.append(step)
        try:
            node, fresh = node[step], True
        except (KeyError, IndexError, TypeError):
            node, fresh = None, False
    return tuple(out)


def _describe(error: dict, data: Any) -> tuple[tuple, str]:
    """One validation error -> (path of the offending node, message)."""
    loc, kind = _document_path(tuple(error["loc"]), data), error["type"]
    if kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        return loc, f"unknown kind '{tag}'{did_you_mean(tag, KINDS)}; `scalelab kinds` lists them"
    if kind == "union_tag_not_found":
        return loc, "a block needs a 'kind' (or 'stage' with 'block' for a repeated block)"
    if kind == "missing":
        return loc[:-1], f"missing required field '{loc[-1]}'"
    if kind == "extra_forbidden":
        parent = _raw_at(data, loc[:-1])
        what = f" for kind '{parent['kind']}'" if isinstance(parent, dict) and "kind" in parent else ""
        return loc, f"unknown field '{loc[-1]}'{what}{did_you_mean(loc[-1], _fields_of(parent))}"
    message = error["msg"].replace("Input should", "must", 1)
    if kind.startswith("literal"):
        choices = _choices(error["ctx"]["expected"])
        hint = did_you_mean(error["input"], re.findall(r"'([^']*)'", choices)) if isinstance(error["input"], str) else ""
        return loc, f"must be one of {choices} (got {error['input']!r}){hint}"
    return loc, f"{message} (got {error['input']!r})"


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


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """Parse once, with libyaml where available (pure-Python YAML costs more than the whole analysis):
    the node tree, whose marks locate errors, and the data built from it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Parse and validate spec text; raise ScalelabError naming file:line and the YAML path."""
    try:
        root, data = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScalelabError(f"{where}: YAML syntax error: {problem}") from None
    source = SourceMap(filename, root)
    if data is None:
        raise ScalelabError(f"{filename}: the spec is empty; it needs at least name, input and blocks")
    if not isinstance(data, dict):
        raise ScalelabError(f"{source.where(())}: a spec must be a mapping (name, input, blocks), got a {type(data).__name__}")
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        _apply_defaults(data.get("blocks"), {k: defaults.get(k) for k in DEFAULT_KEYS})
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise ScalelabError(_all_problems(source, exc.errors(include_url=False), data)) from None
    spec._source = source
    return spec


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalelabError(f"{path}: cannot read: {exc}") from None
    return parse_spec(text, str(spec))


def spec_schema() -> dict:
    """The JSON Schema of a spec, for editors."""
    schema = TypeAdapter(Spec).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "scalelab network spec"
    return json.loads(json.dumps(schema))
