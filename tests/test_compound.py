"""Compound scaling: spec in, new spec out. Expected values are worked out by hand here."""

import math

import pytest

from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.scaling.compound import (
    compound_coefficients, scale_compound, scale_spec, width_fields,
)
from scalelab.spec import load_spec, parse_spec, spec_data
from scalelab.spec.model import Stage

TINY = """
name: tiny
input: {channels: 3, resolution: 32}
reference: {top1: 50.0, source: made up for a test}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 16, kernel: 3}
  - {stage: body, repeat: 2, stride: 2, block: {kind: residual, out: 32}}
  - {stage: fixed, repeat: 3, scale_depth: false, block: {kind: residual, out: 32}}
  - {name: se, kind: squeeze_excite, squeeze: 8}
  - name: mix
    kind: inception
    branches:
      - [{kind: conv, out: 8, kernel: 1}]
      - [{kind: conv, out: 16, kernel: 1}, {kind: conv, out: 24, kernel: 3}]
  - {name: neck, kind: conv, out: 40, kernel: 1, scale_width: false}
  - {name: pool, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.fixture
def tiny():
    return parse_spec(TINY, "tiny.yaml")


def _stage(spec, name):
    return next(e for e in spec.blocks if isinstance(e, Stage) and e.stage == name)


def _block(spec, name):
    return next(e for e in spec.blocks if not isinstance(e, Stage) and e.name == name)


def test_width_fields_are_the_channels_typed_ones():
    from scalelab.blocks import KINDS

    assert width_fields(KINDS["conv"]) == ("out",)
    assert set(width_fields(KINDS["bottleneck"])) == {"out", "mid"}
    assert width_fields(KINDS["squeeze_excite"]) == ("squeeze",)  # Optional[Channels]
    assert width_fields(KINDS["linear"]) == ()  # a classifier's out is a feature count


def test_scale_spec_does_not_mutate(tiny):
    before = spec_data(tiny)
    scale_spec(tiny, 2.0, 2.0, 64)
    assert spec_data(tiny) == before


def test_depth_multiplies_repeats_rounded_up_except_fixed_stages(tiny):
    scaled = scale_spec(tiny, depth=1.6)
    assert _stage(scaled, "body").repeat == 4   # ceil(2 x 1.6 = 3.2)
    assert _stage(scaled, "fixed").repeat == 3  # scale_depth: false
    assert _stage(scaled, "body").stride == 2   # the stage stride stays on the first repeat


def test_width_multiplies_every_channel_field_including_branches(tiny):
    scaled = scale_spec(tiny, width=1.5)
    assert _block(scaled, "stem").out == 24                 # 24.0 -> 24
    assert _stage(scaled, "body").block.out == 48           # 48
    assert _block(scaled, "se").squeeze == 16               # 12 -> int(16) // 8 * 8 = 16
    branches = _block(scaled, "mix").branches
    assert [b.out for b in branches[0]] == [16]             # 8 x 1.5 = 12 -> 16
    assert [b.out for b in branches[1]] == [24, 40]         # 24; 36 -> int(40) -> 40
    assert _block(scaled, "neck").out == 40                 # scale_width: false
    assert _block(scaled, "fc").out == 10                   # linear outputs are classes
    # the concat of the inception module follows: 16 + 40 channels
    network = analyze(scaled).network
    assert network.blocks["mix"].out_shape[0] == 56


def test_width_scaling_params_by_hand():
    spec = parse_spec("""
name: pair
input: {channels: 3, resolution: 8}
defaults: {norm: none, activation: relu}
blocks:
  - {kind: conv, out: 16, kernel: 3}
  - {kind: conv, out: 32, kernel: 1}
  - {kind: global_avgpool}
  - {kind: linear, out: 10}
""")
    # width 2: 3 -> 32 (3x3, bias) -> 64 (1x1, bias) -> fc 64 -> 10
    expected = (3 * 9 * 32 + 32) + (32 * 64 + 64) + (64 * 10 + 10)
    assert analyze(scale_spec(spec, width=2.0)).total.params == expected
    # MACs at 8x8: 8*8*(27*32) + 8*8*(32*64) + 640
    assert analyze(scale_spec(spec, width=2.0)).total.macs == 64 * 27 * 32 + 64 * 32 * 64 + 640


def test_resolution_is_absolute_and_rounded_to_the_multiple(tiny):
    assert scale_spec(tiny, resolution=48).input.resolution == (48, 48)
    assert scale_spec(tiny, resolution=50, resolution_multiple=8).input.resolution == (48, 48)
    assert scale_spec(tiny, resolution=(40, 48)).input.resolution == (40, 48)
    assert scale_spec(tiny).input.resolution == (32, 32)


def test_scaled_spec_records_its_scaling(tiny):
    scaled = scale_spec(tiny, 1.2, 1.5, 40)
    assert scaled.name == "tiny-d1.2-w1.5-r40"
    assert "depth x1.2" in scaled.description and "width x1.5" in scaled.description and "input 40" in scaled.description
    assert scaled.reference is None  # the base's accuracy no longer applies
    assert scale_spec(tiny, name="mine").name == "mine"
    assert scale_spec(tiny).reference == tiny.reference


def test_identity_scaling_keeps_the_costs():
    base = load_spec("resnet50")
    assert analyze(scale_spec(base)).total == analyze(base).total


def test_resnet50_depth_two():
    scaled = scale_spec(load_spec("resnet50"), depth=2.0)
    assert [e.repeat for e in scaled.blocks if isinstance(e, Stage)] == [6, 8, 12, 6]


def test_compound_coefficients():
    d, w, r = compound_coefficients(1)
    assert (d, w, r) == (1.2, 1.1, 1.15)
    d, w, r = compound_coefficients(2)
    assert math.isclose(d, 1.44) and math.isclose(w, 1.21) and math.isclose(r, 1.3225)
    # EfficientNet eq. 3: FLOPs grow by (alpha beta^2 gamma^2)^phi, about 2^phi
    assert math.isclose(1.2 * 1.1 ** 2 * 1.15 ** 2, 1.92027, rel_tol=1e-5)
    with pytest.raises(ScalelabError, match="at least 1"):
        compound_coefficients(1, alpha=0.9)


def test_scale_compound_phi_one_from_b0():
    b0 = load_spec("efficientnet_b0")
    scaled = scale_compound(b0, 1)
    # repeats 1,2,2,3,3,4,1 x 1.2 rounded up
    assert [e.repeat for e in scaled.blocks if isinstance(e, Stage)] == [2, 3, 3, 4, 4, 5, 2]
    # channels x 1.1 (the B2 column of test_rounding): stem 32, stages 16..352, head 1408
    assert [e.block.out for e in scaled.blocks if isinstance(e, Stage)] == [16, 24, 48, 88, 120, 208, 352]
    assert _block(scaled, "stem").out == 32 and _block(scaled, "head").out == 1408
    assert scaled.input.resolution == (258, 258)  # 224 x 1.15 = 257.6
    assert scale_compound(b0, 1, resolution_multiple=32).input.resolution == (256, 256)


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=0), "depth multiplier"),
    (dict(width=-1.0), "width multiplier"),
    (dict(resolution=0), "resolution"),
    (dict(divisor=0), "divisor"),
])
def test_bad_scalings_are_clear_errors(tiny, kwargs, message):
    with pytest.raises(ScalelabError, match=message):
        scale_spec(tiny, **kwargs)


def test_scaled_spec_round_trips_through_yaml(tiny):
    import yaml

    scaled = scale_spec(tiny, 1.6, 1.5, 48)
    text = yaml.safe_dump(spec_data(scaled), sort_keys=False)
    again = parse_spec(text, "again.yaml")
    assert analyze(again).total == analyze(scaled).total


def test_a_scaled_spec_writes_only_what_the_base_sets():
    # mbconv's hidden (channels, instead of expand) is width-scaled when given; left out, it stays out
    base = load_spec("efficientnet_b0")
    scaled = scale_spec(base, 1.1, 1.2, 240)
    keys = lambda spec: [sorted(e.block.model_fields_set if hasattr(e, "block") else e.model_fields_set)  # noqa: E731
                         for e in spec.blocks]
    assert keys(scaled) == keys(base)
    assert "hidden" not in str(spec_data(scaled))
