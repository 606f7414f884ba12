"""Width scaling of wired specs, as imports write them: which channel counts are free and which are
tied. Small hand-written specs check each tie against values worked out by hand; imported
torchvision and timm CNNs, flat and folded, scaled by 1.25, build in torch and their analysis equals
the built module's parameters and FlopCounterMode's MACs."""

from __future__ import annotations

import pytest

from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.scaling.compound import scale_spec
from scalelab.spec import parse_spec
from scalelab.spec.model import Stage

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\ndefaults: {norm: none, activation: none}\nblocks:\n"


def _spec(*blocks: str):
    return parse_spec(HEAD + "".join(f"  - {b}\n" for b in blocks))


def _out(spec, name: str):
    block = next(b for b in spec.blocks if getattr(b, "name", None) == name)
    return block


def test_an_add_of_a_concatenation_ties_the_other_side_to_the_sum():
    # GhostNet's shape: two halves of 8 concatenated (16), added to a shortcut conv of 16.
    # x1.25: 8 -> 10 -> nearest multiple of 8 is 8, below 90% of 10, so 16; each half is 16, the
    # sum 32, and the shortcut takes 32, though alone 16 x 1.25 = 20 would round to 24.
    spec = _spec("{name: a, kind: conv, out: 8, kernel: 1}",
                 "{name: b, kind: conv, out: 8, groups: 8}",
                 "{name: cat, from: [a, b], kind: concat}",
                 "{name: short, from: input, kind: conv, out: 16, kernel: 1}",
                 "{name: add, from: [cat, short], kind: add}")
    scaled = scale_spec(spec, width=1.25)
    assert (_out(scaled, "a").out, _out(scaled, "b").out, _out(scaled, "b").groups) == (16, 16, 16)
    assert _out(scaled, "short").out == 32
    assert analyze(scaled).blocks[-1].out_shape == (32, 8, 8)


def test_a_depthwise_conv_follows_its_input_with_its_multiplier():
    # 24 -> 24 x 1.25 = 30 -> 32; the depthwise conv (groups 24, multiplier 2: out 48) -> groups 32, out 64
    spec = _spec("{name: a, kind: conv, out: 24, kernel: 1}", "{name: dw, kind: conv, out: 48, groups: 24}")
    dw = _out(scale_spec(spec, width=1.25), "dw")
    assert (dw.out, dw.groups) == (64, 32)


def test_a_grouped_conv_keeps_its_group_width_where_it_rounds_finer():
    # RegNet: 48 channels in 6 groups of 8. lcm(8, 8) = 8 < lcm(8, 6) = 24: the group width stays 8;
    # 48 x 1.25 = 60 -> 64, so 8 groups of 8 in and out.
    spec = _spec("{name: a, kind: conv, out: 48, kernel: 1}", "{name: g, kind: conv, out: 48, groups: 6}")
    g = _out(scale_spec(spec, width=1.25), "g")
    assert (g.out, g.groups) == (64, 8)


def test_a_grouped_conv_keeps_its_group_count_where_that_rounds_finer():
    # AlexNet: 96 channels in 2 groups of 48. lcm(8, 2) = 8 < lcm(8, 48) = 48: two groups stay;
    # 96 x 1.25 = 120 and 256 x 1.25 = 320, both multiples of 8 (and of 2).
    spec = _spec("{name: a, kind: conv, out: 96, kernel: 1}", "{name: g, kind: conv, out: 256, groups: 2}")
    g = _out(scale_spec(spec, width=1.25), "g")
    assert (_out(scale_spec(spec, width=1.25), "a").out, g.out, g.groups) == (120, 320, 2)


def test_a_learned_tensor_takes_the_channels_it_is_multiplied_with():
    # ConvNeXt's layer scale: a (1, 40, 1, 1) parameter times the block's output; 40 x 1.25 = 50 -> 48
    spec = _spec("{name: a, kind: conv, out: 40, kernel: 1}", "{name: gamma, kind: param, shape: [1, 40, 1, 1], batch_axis: 0}",
                 "{name: mul, from: [a, gamma], kind: binary, op: mul}")
    scaled = scale_spec(spec, width=1.25)
    assert _out(scaled, "gamma").shape == [1, 48, 1, 1]
    assert analyze(scaled).total.params == 3 * 48 + 48 + 48  # the conv's weight and bias, the scale


def test_a_fixed_size_reshape_of_scaled_channels_is_refused_by_name():
    # (16, 8, 8) -> (4, 256) cuts the conv's 16 channels, which x1.25 makes 24 (20 -> 24)
    spec = _spec("{name: a, kind: conv, out: 16, kernel: 1}", "{name: r, kind: reshape, shape: [4, 256]}")
    with pytest.raises(ScalelabError, match=r"block 'r' \(reshape\) states fixed sizes .* from 16 to 24 at width x1.25"):
        scale_spec(spec, width=1.25)
    assert scale_spec(spec, width=1.0).blocks[1].shape == [4, 256]


def test_joined_counts_that_cannot_be_made_equal_are_refused_by_name():
    # a side kept at 16 (scale_width: false) against a concatenation of two free halves (16 + 16 = 32)
    spec = _spec("{name: a, kind: conv, out: 8, kernel: 1}", "{name: b, from: input, kind: conv, out: 8, kernel: 1}",
                 "{name: cat, from: [a, b], kind: concat}",
                 "{name: short, from: input, kind: conv, out: 16, kernel: 1, scale_width: false}",
                 "{name: add, from: [cat, short], kind: add}")
    with pytest.raises(ScalelabError, match=r"block 'add' \(add\): .* 32 and 16 channels"):
        scale_spec(spec, width=1.25)


def test_a_wrap_body_follows_the_wiring_inside_a_stage():
    # ConvNeXt's block as a wrap: depthwise 7x7, layer norm, 1x1 to 4C, 1x1 back to C, identity add.
    # x1.25: the stem's 40 -> 50 -> 48 (within 90%); the depthwise conv follows (groups 48); 160 -> 200;
    # the last conv is added to the wrap's input, so it takes 48 too; 80 -> 100 -> 104. Depth x1.5:
    # 2 -> 3 and 1 -> ceil(1.5) = 2 repeats.
    wrap = ("{{kind: wrap, body: [{{kind: conv, out: {c}, kernel: 7, groups: {c}}}, {{kind: layer_norm}}, "
            "{{kind: conv, out: {e}, kernel: 1, activation: gelu}}, {{kind: conv, out: {c}, kernel: 1}}]}}")
    spec = _spec("{name: stem, kind: conv, out: 40, kernel: 4, stride: 4}",
                 "{stage: s0, repeat: 2, block: " + wrap.format(c=40, e=160) + "}",
                 "{name: down, kind: conv, out: 80, kernel: 2, stride: 2}",
                 "{stage: s1, repeat: 1, block: " + wrap.format(c=80, e=320) + "}")
    scaled = scale_spec(spec, depth=1.5, width=1.25)
    stages = [e for e in scaled.blocks if isinstance(e, Stage)]
    assert [s.repeat for s in stages] == [3, 2]
    assert [[(b.out, b.groups) for b in s.block.body if b.kind == "conv"] for s in stages] == [
        [(48, 48), (200, 1), (48, 1)], [(104, 104), (400, 1), (104, 1)]]
    assert analyze(scaled).blocks[-1].out_shape == (104, 1, 1)


def test_nested_wraps_tie_as_the_flat_blocks_do():
    # GhostNet's bottleneck as the import folds it: two ghost modules (a 1x1 conv, then a dense wrap
    # concatenating a depthwise conv's output to it) in a wrap added to its input. x1.25 gives each half
    # 8 -> 16 (as flat: 10 -> 8 is below 90%), each ghost module 32, and the stem, added, 32.
    ghost = "{kind: wrap, shortcut: none, body: [{kind: conv, out: 8, kernel: 1}, {kind: wrap, join: concat, body: [{kind: conv, out: 8, groups: 8}]}]}"
    spec = _spec("{name: stem, kind: conv, out: 16, kernel: 1}",
                 "{stage: s, repeat: 2, block: {kind: wrap, body: [" + ghost + ", " + ghost + "]}}")
    scaled = scale_spec(spec, depth=2.0, width=1.25)
    stage = scaled.blocks[1]
    convs = [(g.body[0].out, g.body[1].body[0].out, g.body[1].body[0].groups) for g in stage.block.body]
    assert (scaled.blocks[0].out, stage.repeat, convs) == (32, 4, [(16, 16, 16), (16, 16, 16)])
    assert analyze(scaled).blocks[-1].out_shape == (32, 8, 8)


def test_depthwise_convs_in_strided_stages_follow_their_input():
    # a stage's first repeat runs a copy of its block with the stride; its depthwise convs still follow
    # their input: 40 x 1.25 = 50 -> 48, groups 48, in the wrap's body and in a stage of convs alike
    spec = _spec("{name: stem, kind: conv, out: 40, kernel: 3}",
                 "{stage: s0, repeat: 2, stride: 2, block: {kind: wrap, body: [{kind: conv, out: 40, groups: 40}, "
                 "{kind: conv, out: 40, kernel: 1}]}}",
                 "{stage: s1, repeat: 2, stride: 2, block: {kind: conv, out: 40, groups: 40}}")
    scaled = scale_spec(spec, width=1.25)
    dw = [scaled.blocks[1].block.body[0], scaled.blocks[2].block]
    assert [(c.out, c.groups) for c in dw] == [(48, 48), (48, 48)]


def test_depth_of_a_spec_without_stages_is_refused_and_width_alone_still_applies():
    spec = _spec("{name: a, kind: conv, out: 16, kernel: 1}")
    with pytest.raises(ScalelabError, match="has no stage to deepen"):
        scale_spec(spec, depth=1.5, width=1.25)
    assert scale_spec(spec, width=1.25).blocks[0].out == 24


def test_the_readme_says_what_the_ties_give():
    """The figures README's 'Width follows the wiring' states, as the code gives them."""
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    ghost = _spec("{name: p, kind: conv, out: 8, kernel: 1}", "{name: c, kind: conv, out: 8, groups: 8}",
                  "{name: cat, from: [p, c], kind: concat}", "{name: short, from: input, kind: conv, out: 16, kernel: 1}",
                  "{name: add, from: [cat, short], kind: add}")
    half, short = (_out(scale_spec(ghost, width=1.25), n).out for n in ("p", "short"))
    alone = scale_spec(_spec("{name: a, kind: conv, out: 16, kernel: 1}"), width=1.25).blocks[0].out
    assert f"{half} + {half} = {short} at x1.25" in readme and f"16 x 1.25 alone would round to {alone}" in readme
    regnet = _out(scale_spec(_spec("{name: a, kind: conv, out: 48, kernel: 1}", "{name: g, kind: conv, out: 48, groups: 6}"),
                             width=1.25), "g")
    assert regnet.out // regnet.groups == 8 and "lcm(8, 8) = 8 beats lcm(8, 6) = 24 for RegNet's 6 groups of 8" in readme
    with pytest.raises(ScalelabError) as refused:
        scale_spec(_spec("{name: a, kind: conv, out: 16, kernel: 1}", "{name: r, kind: reshape, shape: [4, 256]}"), width=1.25)
    assert str(refused.value).split("; ")[0] in readme
