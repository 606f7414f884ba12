"""Width scaling where the channels are not simply a feature map's first axis: a split of the
channels (CSPNet's halves) scales as a concatenation in reverse, and a linear over the channels of
a channels-last map or of tokens (ConvNeXt's and token MLPs) scales as the channels it reads,
following permutes and the reshapes that keep the channels whole. Each figure worked by hand from
``round_channels`` (x to the nearest multiple of 8, never below 90%); the torch modules, imported,
scaled and built, equal their analysis (``sum(p.numel())`` and FlopCounterMode's MACs)."""

from __future__ import annotations

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.scaling.compound import scale_spec
from scalelab.spec import parse_spec

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\ndefaults: {norm: none, activation: none}\nblocks:\n"


def _spec(*blocks: str):
    return parse_spec(HEAD + "".join(f"  - {b}\n" for b in blocks))


def _block(spec, name: str):
    return next(b for b in spec.blocks if getattr(b, "name", None) == name)


def _csp(sizes: str, total: int):
    """A conv to ``total`` channels split by ``sizes``, the second piece through a conv of its own
    size, concatenated back with the first (CSPNet's stage)."""
    second = [int(v) for v in sizes.strip("[]").split(",")][1]
    return _spec(f"{{name: exp, kind: conv, out: {total}, kernel: 1}}",
                 f"{{name: s, kind: split, dim: 0, sizes: {sizes}}}",
                 f"{{name: b, from: s.1, kind: conv, out: {second}, kernel: 1}}",
                 "{name: cat, from: [s.0, b], kind: concat}")


def test_an_equal_split_scales_its_halves_alike_and_its_input_is_their_sum():
    # x1.25: each half 128 -> 160, the input 320 (256 x 1.25 = 320 too)
    scaled = scale_spec(_csp("[128, 128]", 256), width=1.25)
    assert (_block(scaled, "exp").out, _block(scaled, "s").sizes, _block(scaled, "b").out) == (320, [160, 160], 160)
    assert analyze(scaled).blocks[-1].out_shape == (320, 8, 8)
    # x1.1: each half 140.8 -> 144, the input 288, where 256 x 1.1 = 281.6 alone would round to 280,
    # halves of 140 that the conv reading one (128 -> 144) could not match
    scaled = scale_spec(_csp("[128, 128]", 256), width=1.1)
    assert (_block(scaled, "exp").out, _block(scaled, "s").sizes, _block(scaled, "b").out) == (288, [144, 144], 144)


def test_an_unequal_split_keeps_its_proportion():
    # pieces of 1 and 3 units of 64: x1.1, 70.4 -> 72, so 72 and 216, the input 288
    scaled = scale_spec(_csp("[64, 192]", 256), width=1.1)
    assert (_block(scaled, "exp").out, _block(scaled, "s").sizes, _block(scaled, "b").out) == (288, [72, 216], 208)
    assert analyze(scaled).blocks[-1].out_shape == (72 + 208, 8, 8)


def test_a_split_its_pieces_cannot_scale_in_proportion_is_refused_by_name(tmp_path):
    # 12 and 20 have 4 in common, no multiple of 8: the input's 32 -> 40 cannot be cut so
    spec = _csp("[12, 20]", 32)
    with pytest.raises(ScalelabError, match=r"block 's' \(split\) states fixed sizes of a tensor whose channels width "
                                            r"scaling changes from 32 to 40 at width x1.25; width scaling cannot restate "
                                            r"them \(its pieces \[12, 20\] have no common size that is a multiple of "
                                            r"the divisor 8"):
        scale_spec(spec, width=1.25)
    assert _block(scale_spec(spec, width=1.0), "s").sizes == [12, 20]
    path = tmp_path / "csp.yaml"
    path.write_text(HEAD + "".join(f"  - {line}\n" for line in (
        "{name: exp, kind: conv, out: 32, kernel: 1}", "{name: s, kind: split, dim: 0, sizes: [12, 20]}",
        "{name: b, from: s.1, kind: conv, out: 20, kernel: 1}", "{name: cat, from: [s.0, b], kind: concat}")))
    assert_refused(invoke("scale", str(path), "--width", 1.25), "block 's' (split)", "[12, 20]")


def test_a_split_of_channels_width_scaling_keeps_stays_as_it_is():
    # the input image's 3 channels split 1 + 2: nothing to restate; the conv after it scales (16 -> 24)
    spec = _spec("{name: s, kind: split, dim: 0, sizes: [1, 2]}", "{name: c, from: s.1, kind: conv, out: 16, kernel: 1}")
    scaled = scale_spec(spec, width=1.25)
    assert (_block(scaled, "s").sizes, _block(scaled, "c").out) == ([1, 2], 24)


def test_a_split_along_another_axis_passes_the_channels_on():
    # 16 x 8 x 8 split along the height into two 16 x 4 x 8, added: 16 -> 24 channels, the sizes stay
    spec = _spec("{name: a, kind: conv, out: 16, kernel: 1}", "{name: s, kind: split, dim: 1, sizes: [4, 4]}",
                 "{name: add, from: [s.0, s.1], kind: add}")
    scaled = scale_spec(spec, width=1.25)
    assert (_block(scaled, "a").out, _block(scaled, "s").sizes) == (24, [4, 4])
    assert analyze(scaled).blocks[-1].out_shape == (24, 4, 8)


def test_a_channel_split_into_halves_keeps_halves_of_whole_divisors():
    # two halves of 32 (ShuffleNetV2's split): the input rounds to a multiple of 2 x 8, 40 -> 48,
    # each half 24; the conv on one half, 16 x 1.25 = 20 -> 24, concatenated: 48
    spec = _spec("{name: a, kind: conv, out: 32, kernel: 1}",
                 "{name: p0, from: a, kind: channel_split, parts: 2, take: 0}",
                 "{name: p1, from: a, kind: channel_split, parts: 2, take: 1}",
                 "{name: b, from: p1, kind: conv, out: 16, kernel: 1}", "{name: cat, from: [p0, b], kind: concat}")
    scaled = scale_spec(spec, width=1.25)
    assert (_block(scaled, "a").out, _block(scaled, "b").out) == (48, 24)
    assert analyze(scaled).blocks[-1].out_shape == (48, 8, 8)


#: a channels-last MLP block as ConvNeXt writes it: to (H, W, C), norm, C -> 4C -> C, layer scale, added
CHANNELS_LAST = ("{name: a, kind: conv, out: 16, kernel: 1}", "{name: nhwc, kind: permute, dims: [1, 2, 0]}",
                 "{name: ln, kind: layer_norm, trailing: 1}",
                 "{name: fc1, kind: linear, out: 64, flatten: false, activation: gelu}",
                 "{name: fc2, kind: linear, out: 16, flatten: false}",
                 "{name: gamma, kind: param, shape: [1, 1, 1, 16], batch_axis: 0}",
                 "{name: scaled, from: [fc2, gamma], kind: binary, op: mul}",
                 "{name: add, from: [nhwc, scaled], kind: add}", "{name: pool, kind: reduce, op: mean, dims: [0, 1]}",
                 "{name: head, kind: linear, out: 10}")


def test_a_channels_last_mlp_scales_its_features_as_the_channels_it_reads():
    # x1.5: the conv's 16 -> 24, fc1's 64 -> 96, fc2's 16 -> 24 (added to the permuted map), the
    # layer scale's last axis 24; the classifier keeps its 10 classes
    scaled = scale_spec(_spec(*CHANNELS_LAST), width=1.5)
    assert [_block(scaled, n).out for n in ("a", "fc1", "fc2", "head")] == [24, 96, 24, 10]
    assert _block(scaled, "gamma").shape == [1, 1, 1, 24]
    result = analyze(scaled)
    assert result.blocks[-1].out_shape == (10,)
    # conv 3*24 + 24, norm 2*24, fc1 24*96 + 96, fc2 96*24 + 24, gamma 24, head 24*10 + 10
    assert result.total.params == 96 + 48 + 2400 + 2328 + 24 + 250


def test_token_mlps_follow_a_reshape_that_keeps_the_channels_whole():
    # (16, 8, 8) -> (16, 64) tokens of 16 channels -> (64, 16): the reshape restates 16 as 24 at x1.5
    spec = _spec("{name: a, kind: conv, out: 16, kernel: 1}", "{name: r, kind: reshape, shape: [16, -1]}",
                 "{name: t, kind: permute, dims: [1, 0]}", "{name: fc1, kind: linear, out: 32, activation: gelu}",
                 "{name: fc2, kind: linear, out: 16}", "{name: add, from: [t, fc2], kind: add}",
                 "{name: pool, kind: reduce, op: mean, dims: [0]}", "{name: head, kind: linear, out: 10}")
    scaled = scale_spec(spec, width=1.5)
    assert [_block(scaled, n).out for n in ("a", "fc1", "fc2", "head")] == [24, 48, 24, 10]
    assert analyze(scaled).blocks[-3].out_shape == (64, 24)


def test_imported_channels_last_and_token_mlps_scale_to_modules_equal_to_their_analysis(reference_macs):
    torch = pytest.importorskip("torch")
    from torch import nn

    from scalelab.build import build_module
    from scalelab.importer import import_module

    class ChannelsLast(nn.Module):
        """ConvNeXt's block, channels-last, with a (1, 1, 1, C) layer scale."""

        def __init__(self) -> None:
            super().__init__()
            self.stem, self.norm = nn.Conv2d(3, 16, 3, padding=1), nn.LayerNorm(16)
            self.fc1, self.fc2, self.head = nn.Linear(16, 64), nn.Linear(64, 16), nn.Linear(16, 10)
            self.gamma = nn.Parameter(torch.full((1, 1, 1, 16), 0.5))

        def forward(self, x):
            x = self.stem(x).permute(0, 2, 3, 1)
            x = x + self.gamma * self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))
            return self.head(x.mean((1, 2)))

    class Tokens(nn.Module):
        """A patch embedding flattened to tokens, a token MLP with a residual, a mean over tokens."""

        def __init__(self) -> None:
            super().__init__()
            self.stem, self.norm = nn.Conv2d(3, 16, 4, stride=4), nn.LayerNorm(16)
            self.fc1, self.fc2, self.head = nn.Linear(16, 64), nn.Linear(64, 16), nn.Linear(16, 10)

        def forward(self, x):
            x = self.stem(x).flatten(2).transpose(1, 2)
            x = x + self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))
            return self.head(x.mean(1))

    for module in (ChannelsLast, Tokens):
        torch.manual_seed(0)
        model = module().eval()
        spec = import_module(model, (3, 16, 16), name="mlp").spec
        built = build_module(scale_spec(spec, width=1.5)).eval()
        # 16 -> 24 channels, 64 -> 96 hidden features; the classifier's 10 classes kept
        assert [(m.in_features, m.out_features) for m in built.modules() if isinstance(m, nn.Linear)] == [
            (24, 96), (96, 24), (24, 10)], module.__name__
        result = analyze(scale_spec(spec, width=1.5)).total
        x = torch.randn(1, 3, 16, 16)
        assert result.params == sum(p.numel() for p in built.parameters())
        assert result.macs == reference_macs(built, x)


def test_the_readme_says_what_splits_and_channels_last_mlps_give():
    """The figures README's 'Width follows the wiring' states, as the code gives them."""
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    at_11 = scale_spec(_csp("[128, 128]", 256), width=1.1)
    halves, total = _block(at_11, "s").sizes, _block(at_11, "exp").out
    assert f"128 + 128 at x1.1: {halves[0]} + {halves[1]} of {total}" in readme
    at_125 = _block(scale_spec(_csp("[128, 128]", 256), width=1.25), "s").sizes
    assert f"128 + 128 -> {at_125[0]} + {at_125[1]} at x1.25" in readme
    mlp = scale_spec(_spec(*CHANNELS_LAST), width=1.5)
    a, fc1, fc2 = (_block(mlp, n).out for n in ("a", "fc1", "fc2"))
    assert f"16 -> 64 -> 16 at x1.5: {a} -> {fc1} -> {fc2}" in readme
