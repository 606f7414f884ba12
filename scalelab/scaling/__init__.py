"""Compound scaling of specs (rounding rules, the transform, the EfficientNet family) and the
accuracy estimators the search ranks candidates with."""

from scalelab.scaling.compound import compound_coefficients, scale_compound, scale_spec
from scalelab.scaling.rounding import round_channels, round_repeats, round_resolution

__all__ = [
    "compound_coefficients", "round_channels", "round_repeats", "round_resolution", "scale_compound", "scale_spec",
]
