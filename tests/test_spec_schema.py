"""The exported JSON Schema (`scalelab schema`) accepts what scalelab accepts, and refuses what it refuses:
an editor validating with it must agree with the loader."""

import jsonschema
import pytest
import yaml

from scalelab import ScalelabError, parse_spec
from scalelab.spec import spec_schema, zoo_names, zoo_path

VALIDATOR = jsonschema.Draft202012Validator(spec_schema())


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_spec_validates_against_the_schema(name):
    data = yaml.safe_load(zoo_path(name).read_text())
    assert [e.message for e in VALIDATOR.iter_errors(data)] == []


SHORT_FORMS = """name: short
input: {channels: 3, resolution: [32, 24]}
blocks:
  - {name: a, kind: conv, out: 8, kernel: [3, 5], stride: 2, padding: [1, 2], activation: swish}
  - {name: b, kind: conv, out: 8, kernel: 1, from: a}
  - {name: c, kind: add, from: [a, b]}
"""


def test_short_and_long_forms_are_both_valid():
    assert list(VALIDATOR.iter_errors(yaml.safe_load(SHORT_FORMS))) == []
    parse_spec(SHORT_FORMS, "short.yaml")  # and the loader agrees


@pytest.mark.parametrize("block", [
    "{kind: conv, out: 0}", "{kind: conv, out: 8, kernel: 0}", "{kind: conv, out: 8, kernel: [3, 3, 3]}",
    "{kind: conv, out: 8, activation: mishh}", "{kind: convolution, out: 8}", "{kind: conv, out: 8, strid: 2}",
    "{kind: maxpool, kernel: 2, padding: -1}",
])
def test_schema_and_loader_both_refuse(block):
    text = f"name: bad\ninput: {{resolution: 32}}\nblocks:\n  - {block}\n"
    assert list(VALIDATOR.iter_errors(yaml.safe_load(text)))
    with pytest.raises(ScalelabError):
        parse_spec(text, "bad.yaml")
