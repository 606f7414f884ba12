"""Bad inputs for the fuzz tests of every command (tests/test_fuzz_commands.py), and what every answer
to them must look like: zoo specs, search reports and device profiles mutated anywhere (a node replaced
by a value of another type, out of bounds, not finite, deeply nested or a long or odd text; removed; a
key added; blocks duplicated, renamed or wired into a cycle), spec files spliced, cut or re-encoded,
and benchmark tables with missing columns, odd cells, ragged rows, a byte-order mark or 20,000 rows."""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path

import pytest
import yaml
from hypothesis import strategies as st

from scalelab.devices.profile import profiles_dir
from scalelab.spec.load import zoo_path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "efficientnet_b0-two-step-hard-400MFLOPs-scaling-law.json"


# --------------------------------------------------------------------------------------------------
# What every answer must look like


def check(result, places: tuple[str, ...], outputs: tuple[Path, ...] = (), what: object = "") -> None:
    """Exit 0, or exit 2 with `error:` lines naming one of ``places`` and no file of ``outputs``."""
    if result.exit_code not in (0, 2):
        shown = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        pytest.fail(f"{what!r}: exit {result.exit_code}\n{result.output[-3000:]}\n{shown[-6000:]}")
    assert "Traceback" not in result.output, (what, result.output[-3000:])
    if result.exit_code == 0:
        return
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors, (what, result.stderr[-2000:])
    text = "\n".join(errors)
    assert any(place in text for place in places), (what, places, text[:2000])
    for output in outputs:
        assert not output.exists(), (what, output, text[:2000])

# --------------------------------------------------------------------------------------------------
# Specs: zoo specs mutated anywhere

FUZZ_ZOO = ("lenet5", "resnet18", "googlenet", "mobilenet_v3_small", "shufflenet_v2_x1_0", "densenet121",
            "deit_tiny_patch16_224", "swin_t", "mobilevit_xxs", "convnext_tiny", "efficientnet_b0")
DOCUMENTS = {name: yaml.safe_load(zoo_path(name).read_text()) for name in FUZZ_ZOO}


def _paths(node, path=()):
    """Every path into a document, the root's children first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield path + (i,)
            yield from _paths(value, path + (i,))


def _nested(depth: int, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


_TEXT = st.one_of(st.text(max_size=20), st.text(min_size=300, max_size=3000),
                  st.sampled_from(["", " ", "café", "a b", "-x", "1e3", "0x10", "yes", "0100", "6_4", "\u202e",
                                   "名前", "input", "stem", "layer1.0", "a" * 129, "x\ny", "..", "*", "%", "!!"]))
_NUMBER = st.one_of(st.integers(-10, 10), st.integers(min_value=-(10**30), max_value=10**30),
                    st.sampled_from([0, -1, 2**20, 2**20 + 1, 2**16, 2**40, 2**63, 10**400]),
                    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e300]))
_SCALAR = st.one_of(st.none(), st.booleans(), _NUMBER, _TEXT)
GARBAGE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=4), st.dictionaries(_TEXT, _SCALAR, max_size=3),
                    st.builds(_nested, st.integers(1, 400), _SCALAR))


def _parent(document, path):
    for step in path[:-1]:
        document = document[step]
    return document


def _block_names(document) -> list[str]:
    return [b.get("name") or b.get("stage") for b in document.get("blocks", []) if isinstance(b, dict)
            if b.get("name") or b.get("stage")]


@st.composite
def mutated_specs(draw):
    """A zoo spec's document with one or a few mutations: a node replaced or removed, a key added,
    a block duplicated, renamed or wired to a later block (a cycle)."""
    name = draw(st.sampled_from(FUZZ_ZOO), label="spec")
    document = json.loads(json.dumps(DOCUMENTS[name]))
    for _ in range(draw(st.integers(1, 3), label="mutations")):
        how = draw(st.sampled_from(["replace", "remove", "unknown_key", "duplicate", "cycle", "rename"]))
        blocks = document.get("blocks") if isinstance(document, dict) else None
        if how in ("duplicate", "cycle", "rename") and isinstance(blocks, list) and blocks:
            i = draw(st.integers(0, len(blocks) - 1))
            if how == "duplicate":
                blocks.insert(draw(st.integers(0, len(blocks))), json.loads(json.dumps(blocks[i])))
            elif isinstance(blocks[i], dict):
                names = _block_names(document)
                if how == "cycle" and names:
                    later = draw(st.sampled_from(names))
                    blocks[i]["from"] = draw(st.sampled_from([later, [later, later], names[-1]]))
                else:
                    blocks[i]["stage" if "stage" in blocks[i] else "name"] = draw(_TEXT)
            continue
        paths = list(_paths(document))
        if not paths:
            document = draw(GARBAGE)
            continue
        path = draw(st.sampled_from(paths), label="path")
        parent = _parent(document, path)
        if how == "replace":
            parent[path[-1]] = draw(GARBAGE, label="value")
        elif how == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(_TEXT, label="key")] = draw(GARBAGE)
    return name, document


def dump(document, unicode: bool) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=unicode, width=10**6)


@st.composite
def spec_texts(draw) -> tuple[str, bytes]:
    """The bytes of a spec file: a mutated document, or a zoo spec's text spliced, cut or re-encoded."""
    name, document = draw(mutated_specs())
    how = draw(st.sampled_from(["document", "document", "document", "splice", "cut", "encoding"]))
    if how == "document":
        return name, dump(document, draw(st.booleans())).encode("utf-8")
    text = zoo_path(name).read_text()
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        return name, (text[:at] + draw(st.text(min_size=1, max_size=30)) + text[at:]).encode("utf-8", "surrogatepass")
    if how == "cut":
        return name, text[:draw(st.integers(0, len(text)))].encode("utf-8")
    encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "latin-1-garbage"]))
    if encoding == "latin-1-garbage":
        return name, text.encode("utf-8") + b"\n# \xff\xfe\x80\n"
    return name, text.encode(encoding)


# --------------------------------------------------------------------------------------------------
# Search reports

REPORT_DOCUMENT = json.loads(REPORT.read_text(encoding="utf-8"))
REPORT_PATHS = [p for p in _paths(REPORT_DOCUMENT)
                if not (len(p) > 2 and isinstance(p[1], int) and p[1] > 2)]  # the first trials of a list stand for all


@st.composite
def mutated_reports(draw) -> bytes:
    document = json.loads(json.dumps(REPORT_DOCUMENT))
    how = draw(st.sampled_from(["replace", "replace", "remove", "cut", "not_json"]))
    if how == "cut":
        text = json.dumps(document)
        return text[:draw(st.integers(0, len(text) - 1))].encode()
    if how == "not_json":
        return draw(st.sampled_from([b"", b"\xff\xfe", b"[]", b"null", b"1", b'"x"', b"{}", b"\xef\xbb\xbf{}",
                                     b"NaN", b'{"a": ' * 5000]))
    path = draw(st.sampled_from([p for p in REPORT_PATHS if len(p) <= 4]), label="path")
    parent = _parent(document, path)
    if how == "replace":
        parent[path[-1]] = draw(GARBAGE, label="value")
    else:
        del parent[path[-1]]
    return json.dumps(document, allow_nan=True).encode()


# --------------------------------------------------------------------------------------------------
# Device profiles

PROFILES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(profiles_dir().glob("*.yaml"))}


@st.composite
def mutated_profiles(draw) -> bytes:
    name = draw(st.sampled_from(sorted(PROFILES)))
    document = json.loads(json.dumps(PROFILES[name]))
    for _ in range(draw(st.integers(1, 2))):
        paths = list(_paths(document)) if isinstance(document, (dict, list)) else []
        if not paths:
            document = draw(GARBAGE)
            continue
        path = draw(st.sampled_from(paths), label="path")
        parent = _parent(document, path)
        how = draw(st.sampled_from(["replace", "replace", "remove", "unknown_key"]))
        if how == "replace":
            parent[path[-1]] = draw(GARBAGE, label="value")
        elif how == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(_TEXT)] = draw(GARBAGE)
    return dump(document, True).encode("utf-8")


# --------------------------------------------------------------------------------------------------
# Benchmark tables (calibrate --from-table)

HEADER = ["model", "infer_img_size", "infer_samples_per_sec", "infer_batch_size"]
_CELLS = st.one_of(st.sampled_from(["resnet18", "resnet50", "mobilenetv2_100", "efficientnet_b0", "", "224", "160",
                                    "256", "1000.5", "0", "-3", "nan", "inf", "1e400", "1e-400", "224.0", "224.5",
                                    "abc", "\"", "\"a,b\"", " 224 ", "9" * 400, "٣", "1e9", "65536", "# x"]),
                   st.text(max_size=8).filter(lambda s: "\n" not in s and "\r" not in s))


@st.composite
def tables(draw) -> bytes:
    header = list(HEADER)
    how = draw(st.sampled_from(["rows", "rows", "missing_column", "renamed", "empty", "bom", "huge", "ragged"]))
    if how == "empty":
        return draw(st.sampled_from([b"", b"\n\n", b"# only a comment\n", ",".join(HEADER).encode() + b"\n",
                                     b"\xff\xfe\x00m", b"\x00\x00"]))
    if how == "missing_column":
        header.remove(draw(st.sampled_from(HEADER)))
    if how == "renamed":
        header[draw(st.integers(0, 3))] = draw(_CELLS)
    rows = draw(st.lists(st.lists(_CELLS, min_size=len(header), max_size=len(header)), max_size=4))
    if how == "ragged":
        rows = [row[:draw(st.integers(0, len(row)))] + draw(st.lists(_CELLS, max_size=2)) for row in rows] or [[""]]
    if how == "huge":
        rows = [["resnet18", "224", "1000", "256"]] * 20000 + rows
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return (("\ufeff" if how == "bom" else "") + text).encode("utf-8")

