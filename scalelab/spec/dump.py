"""Spec objects back to plain data and YAML that ``parse_spec`` reads to the same network."""

from __future__ import annotations

import yaml

from scalelab.spec.model import Spec
from scalelab.spec.yaml_safe import SpecDumper


def spec_data(spec: Spec) -> dict:
    """The spec as plain data (lists, not tuples), only what was set, blocks with their ``from``."""
    h, w = spec.input.resolution
    data: dict = {"name": spec.name, "description": spec.description,
                  "input": {"channels": spec.input.channels, "resolution": h if h == w else [h, w]}}
    if spec.reference is not None:
        data["reference"] = spec.reference.model_dump(mode="json", exclude_none=True)
    defaults = spec.defaults.model_dump(mode="json", exclude_none=True)
    if defaults:
        data["defaults"] = defaults
    if spec.stochastic_depth is not None:
        data["stochastic_depth"] = spec.stochastic_depth.model_dump(mode="json")
    data["blocks"] = [e.model_dump(mode="json", by_alias=True, exclude_unset=True) for e in spec.blocks]
    return data


def spec_yaml(spec: Spec) -> str:
    """The spec as YAML, one block per line, as the zoo writes them."""
    data = spec_data(spec)
    head = yaml.dump({k: v for k, v in data.items() if k != "blocks"}, Dumper=SpecDumper, sort_keys=False, width=100)
    blocks = "".join("  - " + yaml.dump(b, Dumper=SpecDumper, default_flow_style=True, sort_keys=False, width=10**6)
                     for b in data["blocks"])
    return head + "blocks:\n" + blocks
