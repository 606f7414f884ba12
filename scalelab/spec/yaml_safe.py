"""YAML text -> (node tree, data), refusing what would hang, blow memory or be read wrongly.

PyYAML's safe loader already refuses arbitrary objects; it still expands aliases without limit
(a few lines can stand for 2^25 blocks), lets a repeated key silently replace the first one, and
raises a bare ValueError on an integer of more than 4,300 digits. Where the text has an anchor, the
size its aliases expand to is counted on the node tree before any Python data is built (each
distinct node once, so the count itself is linear in the file). As the data is built, repeated keys
are refused with both lines, and integers longer than any bound are refused as written.

Plain scalars are read as YAML 1.2's core schema reads them, not as YAML 1.1 (which PyYAML
follows): ``1e-5`` is a number; ``6_4``, ``1:04`` (base 60) and ``0b11`` are text, which a number
field refuses, saying what YAML 1.1 would have made of it; ``yes``, ``off`` and ``2024-01-01`` are
text too (only ``true`` and ``false`` are booleans). A whole number with a leading zero (``0100``)
is text too: YAML 1.1 reads it as octal (64) and YAML 1.2 as decimal (100), so a file that says it
means different numbers to different tools. Octal and hex are written ``0o144`` and ``0x64``.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import yaml

try:
    from yaml import CSafeLoader as _SafeLoader  # libyaml's, in C
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]  # the pure-Python twin

from scalelab.errors import ScalelabError
from scalelab.limits import MAX_INT_CHARS, MAX_SPEC_BYTES, MAX_YAML_NODES, one_line, quote

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
#: YAML 1.2 core schema integers, less a decimal with a leading zero
_INT = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$")
#: YAML 1.2 core schema floats: a dot or an exponent (a plain digit string is an integer)
_FLOAT = re.compile(r"^(?:[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9]+$")
_BOOL_TAG = "tag:yaml.org,2002:bool"
#: YAML 1.2 core schema booleans: yes, no, on and off are text
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML11_ONLY = (_INT_TAG, _FLOAT_TAG, _BOOL_TAG, "tag:yaml.org,2002:timestamp")
#: YAML 1.1's number patterns (PyYAML's), for saying what a text would have meant there
_YAML11_NUMBER = [regexp for resolvers in yaml.SafeLoader.yaml_implicit_resolvers.values()
                  for tag, regexp in resolvers if tag in (_INT_TAG, _FLOAT_TAG)]
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: a text shorter than this cannot hold MAX_YAML_NODES nodes without aliases
_COUNT_ABOVE_CHARS = MAX_YAML_NODES


def parse_yaml(text: str, filename: str, max_chars: int = MAX_SPEC_BYTES) -> tuple[yaml.Node | None, Any]:
    """Parse once, with libyaml where available: the node tree (whose marks locate errors) and the
    data built from it. Every problem is a one-line ScalelabError naming ``filename:line:col``."""
    if len(text) > max_chars:
        raise ScalelabError(f"{filename}: {len(text):,} characters, more than the {max_chars:,} a file may have "
                            f"(README, 'Bounds')")
    nul = text.find("\x00")
    if nul >= 0:
        raise ScalelabError(f"{_where_offset(text, nul, filename)}: the file holds a NUL byte; it must be YAML text")
    loader = _CheckedLoader(text)
    loader.filename = filename
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, text, filename) from None
        if root is None:
            return None, None
        # only an anchor lets a node be used twice (or inside itself); a long text is counted too
        if "&" in text or len(text) > _COUNT_ABOVE_CHARS:
            check_nodes(root, filename)
        try:
            return root, loader.construct_document(root)
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, text, filename) from None
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. !!timestamp 2024-13-45
            raise ScalelabError(f"{filename}: a YAML value cannot be read: {quote(one_line(str(exc)))}") from None
    finally:
        loader.dispose()


class _CheckedLoader(_SafeLoader):
    """libyaml's safe loader, checking each mapping and integer as it builds them (once per node,
    however many aliases point at it): cheaper than a walk of its own."""

    filename = "<yaml>"

    def construct_mapping(self, node, deep=False):
        _check_node(node, self.filename)
        return super().construct_mapping(node, deep)

    def construct_checked_int(self, node):
        _check_node(node, self.filename)
        if not _INT.match(node.value):  # an explicit !!int 0100 or !!int 6_4
            raise ScalelabError(f"{_where(node, self.filename)}: {quote(node.value, 60)} is not an integer as "
                                f"YAML 1.2 writes one{': ' + hint if (hint := yaml11_hint(node.value)) else ''}")
        return self.construct_yaml_int(node)


# the resolvers of the safe loader with YAML 1.2's integers, floats and booleans in place of YAML
# 1.1's, and no timestamps (YAML 1.2's core schema has none)
_CheckedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_CheckedLoader.add_implicit_resolver(_BOOL_TAG, _BOOL, list("tTfF"))
_CheckedLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_CheckedLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
_CheckedLoader.add_constructor(_INT_TAG, _CheckedLoader.construct_checked_int)


def yaml11_hint(text: str) -> str | None:
    """Why ``text``, which reads as text here, is not the number YAML 1.1 or a leading zero suggests;
    None where nothing suggests a number."""
    if len(text) > MAX_INT_CHARS:
        return None
    if _LEADING_ZERO.match(text):
        decimal = int(text, 10)
        octal = int(text, 8) if re.fullmatch(r"[0-7]+", text) else decimal  # 1.2 writes octal unsigned
        choice = f" for decimal, or 0o{text.lstrip('0')} for octal {octal}" if octal != decimal else ""
        return f"a leading zero makes a number octal in YAML 1.1 and decimal in YAML 1.2: write {decimal}{choice}"
    if not any(regexp.match(text) for regexp in _YAML11_NUMBER):
        return None
    value = yaml.safe_load(text)  # PyYAML's own YAML 1.1 reading of a short scalar
    return f"YAML 1.2, which specs follow, reads {text} as text (YAML 1.1 as {value!r}): write {value!r}"


class SpecDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, which quotes a text wherever the spec loader, YAML 1.1 or YAML 1.2
    would read it as a number (``'1e3'``, ``'0x10'``, ``'0100'``), so that it reads back as text."""


for _regexp in (_INT, _LEADING_ZERO):
    SpecDumper.add_implicit_resolver(_INT_TAG, _regexp, list("-+0123456789"))
SpecDumper.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _where_offset(text: str, offset: int, filename: str) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"{filename}:{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def _where(node_or_mark: Any, filename: str) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"{filename}:{mark.line + 1}:{mark.column + 1}"


def _syntax_error(exc: yaml.YAMLError, text: str, filename: str) -> ScalelabError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        where = _where(mark, filename)
    elif (position := getattr(exc, "position", None)) is not None:  # a reader error: a character YAML does not allow
        where = _where_offset(text, min(position, len(text)), filename)
    else:
        where = filename
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    return ScalelabError(f"{where}: YAML syntax error: {one_line(str(problem))[:300]}")


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _check_node(node: yaml.Node, filename: str) -> None:
    """The checks of one node, made once however many aliases point at it."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _INT_TAG and len(node.value) > MAX_INT_CHARS:
            raise ScalelabError(f"{_where(node, filename)}: an integer of {len(node.value):,} characters is beyond "
                                f"every bound (README, 'Bounds')")
    elif isinstance(node, yaml.MappingNode):
        seen: dict[tuple, yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                continue
            first = seen.setdefault((key.tag, key.value), key)
            if first is not key:
                raise ScalelabError(f"{_where(key, filename)}: duplicate key {quote(key.value, 60)} "
                                    f"(first at line {first.start_mark.line + 1}); a key may appear once")


def check_nodes(root: yaml.Node, filename: str) -> int:
    """Check every node and count the nodes the document expands to (aliases included), without
    expanding anything; refuse recursive aliases and documents over the node budget."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise ScalelabError(
                    f"{_where(node, filename)}: this YAML node expands to more than {MAX_YAML_NODES:,} nodes "
                    f"(aliases included); a document may have at most that many (README, 'Bounds')")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ScalelabError(f"{_where(node, filename)}: a YAML alias refers to a node that contains it")
        _check_node(node, filename)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]
