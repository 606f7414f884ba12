"""YAML text -> validated spec objects, with errors that carry file:line and the YAML path."""

from scalelab.spec.dump import spec_data, spec_yaml
from scalelab.spec.load import load_spec, parse_spec, spec_schema, zoo_names, zoo_path
from scalelab.spec.model import Spec, Stage

__all__ = ["Spec", "Stage", "load_spec", "parse_spec", "spec_data", "spec_schema", "spec_yaml", "zoo_names", "zoo_path"]
