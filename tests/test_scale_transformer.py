"""Compound scaling of transformers: width in whole heads (DeiT's series), depth in encoder blocks,
resolution in tokens (attention growing with their square, the position embedding with their
count), built in torch and equal to the analysis; the budgeted search from DeiT-Ti; the latency
model's classes for attention, its matrix products and softmax."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import invoke
from scalelab.analysis.costs import analyze
from scalelab.scaling.compound import scale_spec
from scalelab.spec import load_spec, parse_spec

TINY_HEADS = """name: tiny_heads
input: {channels: 3, resolution: 32}
blocks:
  - {kind: patch_embed, out: 64, patch: 8}
  - {stage: encoder, repeat: 2, block: {kind: transformer, HEADS}}
  - {kind: token_pool, mode: class, norm: before}
  - {kind: linear, out: 10}
"""


@pytest.fixture(scope="module")
def deit():
    return load_spec("deit_tiny_patch16_224")


def _embed(spec) -> int:
    return spec.blocks[0].out


def _vit_macs(tokens: int, dim: int, blocks: int, patch_pixels: int = 16 * 16 * 3, classes: int = 1000) -> int:
    """A ViT's MACs by hand: per block the qkv and output projections (4 N d^2), the scores q k^T and
    their weighted sum of v (2 N^2 d over all heads), the MLP (8 N d^2); the patch conv on the N - 1
    patches and the classifier."""
    per_block = 4 * tokens * dim * dim + 2 * tokens * tokens * dim + 8 * tokens * dim * dim
    return blocks * per_block + (tokens - 1) * patch_pixels * dim + dim * classes


# ---------------------------------------------------------------- width


def test_width_2_of_deit_tiny_is_deit_small(deit, reference_macs):
    """DeiT-S is DeiT-Ti with twice the heads of 64 (Touvron et al. 2021, Table 1): 6 heads, 384 wide."""
    import timm
    import torch

    scaled = scale_spec(deit, 1.0, 2.0)
    assert _embed(scaled) == 384 and scaled.blocks[1].block.head_dim == 64  # 384 / 64 = 6 heads
    with torch.device("meta"):
        small = timm.create_model("deit_small_patch16_224", pretrained=False).eval()
        params = sum(p.numel() for p in small.parameters())
        macs = reference_macs(small, torch.randn(1, 3, 224, 224))
    total = analyze(scaled).total
    assert (total.params, total.macs) == (params, macs) == (22_050_664, 4_598_882_304)


def _with_mlp_hidden(deit, hidden: int):
    """The zoo's DeiT-Ti with its MLP's hidden width given in features, as ``mlp_hidden``."""
    stage = deit.blocks[1]
    block = type(stage.block).model_validate({"kind": "transformer", "head_dim": 64, "mlp_hidden": hidden})
    return deit.model_copy(update={"blocks": [deit.blocks[0], stage.model_copy(update={"block": block}),
                                              *deit.blocks[2:]]})


def test_a_hidden_width_in_features_scales_with_the_embedding(deit):
    """``mlp_hidden`` is a width field: DeiT-Ti written with mlp_hidden: 768 (4 x 192) at width 2 is
    DeiT-S again, 1536 wide (timm's deit_small_patch16_224: 22,050,664 parameters, tested above);
    at width 1.3 it rounds as every channel count of a transformer spec does, to a multiple of
    lcm(8, 64): 768 x 1.3 = 998.4 -> 1024, four times the 256 features."""
    hidden = _with_mlp_hidden(deit, 768)
    assert analyze(hidden).total == analyze(deit).total
    small = scale_spec(hidden, 1.0, 2.0)
    assert small.blocks[1].block.mlp_hidden == 1536
    assert analyze(small).total.params == 22_050_664
    assert analyze(small).total == analyze(scale_spec(deit, 1.0, 2.0)).total
    wider = scale_spec(hidden, 1.0, 1.3)
    assert (_embed(wider), wider.blocks[1].block.mlp_hidden) == (256, 1024)
    assert analyze(wider).total.macs == _vit_macs(197, 256, 12)
    assert scale_spec(hidden, 1.0, 1.0).blocks[1].block.mlp_hidden == 768


@pytest.mark.parametrize("width, embed", [(1.1, 192), (1.3, 256), (1.5, 320), (0.5, 128), (4.0, 768)])
def test_the_embedding_width_rounds_to_whole_heads(deit, width, embed):
    """192 x width to the nearest multiple of lcm(8, 64) = 64, never below 90% of the target."""
    scaled = scale_spec(deit, 1.0, width)
    assert _embed(scaled) == embed and embed % 64 == 0
    assert analyze(scaled).total.macs == _vit_macs(197, embed, 12)


def test_heads_given_as_a_count_keep_their_width():
    counted = parse_spec(TINY_HEADS.replace("HEADS", "heads: 4"))  # 64 wide: heads of 16
    widths = parse_spec(TINY_HEADS.replace("HEADS", "head_dim: 16"))
    scaled = scale_spec(counted, 1.0, 2.0)
    assert _embed(scaled) == 128 and scaled.blocks[1].block.head_dim == 16  # 8 heads of 16, not 4 of 32
    assert analyze(scaled).total == analyze(scale_spec(widths, 1.0, 2.0)).total
    # 64 x 1.3 = 83.2 rounds to a multiple of lcm(8, 16) = 16: 80
    assert _embed(scale_spec(counted, 1.0, 1.3)) == 80


def test_swin_channels_round_to_whole_heads():
    """Swin's stem is a plain conv: its channels round to multiples of the heads' width, 32."""
    swin = load_spec("swin_t")
    scaled = scale_spec(swin, 1.0, 1.5)  # 96 x 1.5 = 144 -> 160, 5 heads of 32
    assert scaled.blocks[0].out == 160
    analyze(scaled)  # every stage splits into whole heads: 160, 320, 640, 1280
    assert "embedding width 96 -> 160 in whole heads (a multiple of 32" in scaled.description
    # the accuracy law reads the width built, 160 / 96, not the x1.5 asked for
    from scalelab.scaling.accuracy import estimate_accuracy, law_of

    law = law_of(swin).law
    ratio = law.width.factor(160 / 96) / law.width.factor(1.0)
    assert estimate_accuracy(swin, 1.0, 1.5).top1 == pytest.approx(100 - (100 - 81.474) * ratio)


# ---------------------------------------------------------------- depth and resolution


def test_depth_scales_the_encoder_blocks(deit):
    scaled = scale_spec(deit, 1.5, 1.0)
    assert scaled.blocks[1].repeat == 18
    assert analyze(scaled).total.macs == _vit_macs(197, 192, 18)


@pytest.mark.parametrize("pixels, built", [(224, 224), (288, 288), (250, 256), (100, 96)])
def test_resolution_scales_the_tokens(deit, pixels, built):
    """The input rounds to whole patches of 16; the tokens are the patch grid and the class token."""
    scaled = scale_spec(deit, 1.0, 1.0, pixels)
    assert scaled.input.resolution == (built, built)
    tokens = (built // 16) ** 2 + 1
    assert analyze(scaled).total.macs == _vit_macs(tokens, 192, 12)
    # the learned position embedding has one row of 192 per token
    assert analyze(scaled).total.params - analyze(deit).total.params == (tokens - 197) * 192


def test_attention_grows_with_the_square_of_the_tokens(deit):
    """From 224 to 448 px the tokens go 197 -> 785 (x3.98): the score and weighted-sum matmuls grow
    x15.9, the rest of a block x3.98."""
    def scores(tokens: int) -> int:
        return 12 * 2 * tokens * tokens * 192

    big = analyze(scale_spec(deit, 1.0, 1.0, 448)).total.macs
    small = analyze(deit).total.macs
    assert big - scores(785) == pytest.approx((small - scores(197)) * 785 / 197, rel=0.01)
    assert scores(785) / scores(197) == pytest.approx((785 / 197) ** 2)


def test_the_description_says_what_scaling_did(deit):
    text = scale_spec(deit, 1.0, 2.0, 288).description
    assert "embedding width 192 -> 384 in whole heads (a multiple of 64" in text and "heads 3 -> 6" in text
    assert "tokens 197 -> 325 (18x18 patches of 16 px)" in text
    assert f"grow with the square of the token count (x{(325 / 197) ** 2:.3g})" in text
    assert "learned position embedding's parameters" in text


def test_scale_command_prints_the_explanation(deit, tmp_path):
    out = tmp_path / "deit_s.yaml"
    result = invoke("scale", "deit_tiny_patch16_224", "--width", 2, "--resolution", 288, "-o", out)
    assert result.exit_code == 0, result.output
    assert "tokens 197 -> 325" in out.read_text() and "square of the token count" in out.read_text()
    assert "transformer scaling-law estimate" in result.output


# ---------------------------------------------------------------- torch


def _check_built(spec, reference_macs, meta: bool) -> None:
    import torch

    from scalelab.build import build_module

    size = spec.input.resolution[0]
    device = torch.device("meta") if meta else torch.device("cpu")
    with device:
        module = build_module(spec).eval()
        params = sum(p.numel() for p in module.parameters())
        macs = reference_macs(module, torch.randn(1, 3, size, size))
    total = analyze(spec).total
    assert (total.params, total.macs) == (params, macs)


def test_a_scaled_deit_builds_in_torch_and_equals_the_analysis(deit, reference_macs):
    scaled = scale_spec(deit, 1.2, 1.5, 288)  # 15 blocks of 320 (5 heads of 64), 325 tokens
    assert (scaled.blocks[1].repeat, _embed(scaled)) == (15, 320)
    _check_built(scaled, reference_macs, meta=False)


@pytest.mark.slow
def test_a_scaled_vit_b_16_builds_in_torch_and_equals_the_analysis(reference_macs):
    """The issue's check: vit_b_16 at width 1.5, depth 1.2, resolution 288 (1152 wide, 18 heads)."""
    scaled = scale_spec(load_spec("vit_b_16"), 1.2, 1.5, 288)
    assert (scaled.blocks[1].repeat, _embed(scaled)) == (15, 1152)
    _check_built(scaled, reference_macs, meta=True)


# ---------------------------------------------------------------- search


def test_search_from_deit_tiny_under_2_gflops(tmp_path):
    """DeiT-Ti is 1.25 G MACs; 2 GFLOPs (the papers' FLOPs: multiply-adds) leaves room to grow."""
    out = tmp_path / "reports"
    res = invoke("scale", "deit_tiny_patch16_224", "--budget", "2GFLOPs", "--trials", 8, "--report-dir", out,
                 "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "deit", "--format", "json", "--no-charts")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    winner = report["winner"]
    assert 1_253_683_200 < winner["macs"] <= 2_000_000_000
    assert "transformer scaling-law estimate" in winner["accuracy_detail"]
    assert "deit, swin, swin_torchvision" in winner["accuracy_detail"]
    assert "no pre-training, no distillation" in winner["accuracy_detail"]
    assert report["base"]["family"] == "transformer"  # its charts draw the published transformers
    spec = parse_spec((out / "deit.yaml").read_text(), "deit.yaml")
    assert analyze(spec).total.macs == winner["macs"]
    assert _embed(spec) % 64 == 0 and spec.input.resolution[0] % 16 == 0


def test_charts_draw_the_published_networks_of_the_searchs_family():
    from scalelab.report.charts import reference_points

    transformers = {p.label for p in reference_points("macs", "transformer")}
    cnns = {p.label for p in reference_points("macs")}
    assert {"deit_tiny_patch16_224", "swin_t (paper)", "swin_t (torchvision)", "vit_b_16"} <= transformers
    assert "resnet50" in cnns and not any(n.startswith(("deit", "swin", "vit")) for n in cnns)
    assert not any(n.startswith(("resnet", "efficientnet")) for n in transformers)


def test_a_hybrid_search_is_refused_before_any_trial(tmp_path):
    hybrid = tmp_path / "hybrid.yaml"
    base = Path(__file__).resolve().parent.parent / "specs" / "deit_tiny_patch16_224.yaml"
    body = base.read_text().replace("blocks:\n", "blocks:\n  - {kind: conv, out: 3, kernel: 3, padding: 1}\n", 1)
    hybrid.write_text(body)
    res = invoke("scale", hybrid, "--budget", "2GFLOPs", "--trials", 2, "--report-dir", tmp_path / "r",
                 "--storage", f"sqlite:///{tmp_path / 's.db'}", "--no-charts")
    assert res.exit_code == 2, res.output
    assert "hybrid network" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------- latency


SCORES = """name: scores
input: {channels: 4, resolution: 8}
blocks:
  - {name: scores, kind: matmul, from: [input, input]}
  - {name: weights, kind: softmax}
"""


def _stand_in(linear: float, norm: float):
    """A T4 with efficiencies of its own for matrix products and norms, no fixed costs, and compute
    and memory times added (so both show in every layer's time)."""
    from scalelab.blocks.layers import LatencyClass
    from scalelab.devices import load_profile

    base = load_profile("t4")
    return base.model_copy(update={"efficiency": {LatencyClass.LINEAR: linear, LatencyClass.NORM: norm},
                                   "overhead_us": {}, "launch_overhead_us": 0.0, "host_us": 0.0,
                                   "half_efficiency_channels": {}, "combine": "sum"})


def _by_hand(gpu, efficiency: float, macs: int, ops: int, elements: int) -> float:
    """ms: (2 MACs + other ops) at the class's share of the achievable peak, plus the fp32 bytes read
    and written at the achievable bandwidth."""
    compute = (2 * macs + ops) / (gpu.peak_flops["fp32"] * gpu.achievable_compute * efficiency)
    memory = 4 * elements / (gpu.memory_bandwidth * gpu.achievable_bandwidth)
    return 1e3 * (compute + memory)


def test_matmul_and_softmax_are_timed_by_their_latency_classes():
    from scalelab.analysis.latency import predict_latency

    network = analyze(parse_spec(SCORES)).network
    for linear, norm in ((0.5, 0.2), (0.25, 0.1)):
        gpu = _stand_in(linear, norm)
        blocks = predict_latency(network, gpu, "fp32", 1).blocks
        # 4 products of 8x8 by 8x8: 4 x 8^3 MACs, reading two 256-element inputs, writing 256
        assert blocks["scores"].layers[0].device_ms == pytest.approx(_by_hand(gpu, linear, 4 * 8 ** 3, 0, 3 * 256))
        # softmax: max, subtract, exp, sum and divide per element, a norm's pattern (row statistics, then a pass)
        assert blocks["weights"].layers[0].device_ms == pytest.approx(_by_hand(gpu, norm, 0, 5 * 256, 2 * 256))


def test_vit_attention_is_timed_as_matrix_products():
    """vit_b_16's attention (scores and weighted sum, 2 N^2 d MACs a block) takes the matrix products'
    efficiency; the whole network has a prediction, every layer of the new kinds a latency class."""
    from scalelab.analysis.latency import predict_latency

    network = analyze(load_spec("vit_b_16")).network
    for linear in (0.5, 0.25):
        gpu = _stand_in(linear, 0.2)
        prediction = predict_latency(network, gpu, "fp32", 1)
        cost = next(c for c in network.blocks["encoder.0"].costs if c.label == "attention")
        assert cost.macs == 2 * 197 * 197 * 768
        timed = next(t for t in prediction.blocks["encoder.0"].layers if t.label == "attention")
        assert timed.device_ms == pytest.approx(_by_hand(gpu, linear, cost.macs, cost.ops, cost.in_elems + cost.out_elems))
        assert 0 < prediction.total_ms < float("inf")
    assert predict_latency(analyze(load_spec("swin_t")).network, "t4").total_ms > 0


# ---------------------------------------------------------------- the README's figures


def said(text: str) -> bool:
    """Whether the README says ``text`` (whitespace, line breaks included, as one space)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return " ".join(text.split()) in " ".join(readme.split())


def test_the_readme_states_what_transformer_scaling_builds(deit):
    small = analyze(scale_spec(deit, 1.0, 2.0)).total
    assert said(f"384 wide in 6 heads, {small.params:,} parameters and {small.macs:,} MACs")  # = timm's, tested above
    assert _embed(scale_spec(deit, 1.0, 1.1)) == 192 and said("width x1.1 builds DeiT-Ti again (192 x 1.1 rounds to 192)")
    assert scale_spec(load_spec("swin_t"), 1.0, 1.5).blocks[0].out == 160 and said("96 x 1.5 -> 160, 5 heads of 32")
    assert scale_spec(deit, 1.0, 1.0, 250).input.resolution[0] == 256 and said("(250 -> 256 px with patches of 16)")
    tokens = (288 // 16) ** 2 + 1
    assert said(f"At 288 px DeiT-Ti has {tokens} tokens instead of 197, so its attention's matmuls grow "
                f"x{(tokens / 197) ** 2:.3g} and the rest x{tokens / 197:.3g}")
    assert said(f"DeiT-Ti ({analyze(deit).total.macs / 1e9:.3g} G MACs)")


def test_ensembles_of_transformers_are_refused(tmp_path):
    """The ensemble-gain law is fitted on CNN ensembles only: it never prices a transformer's."""
    res = invoke("scale", "deit_tiny_patch16_224", "--budget", "4GFLOPs", "--ensembles", "1,2", "--trials", 2,
                 "--report-dir", tmp_path / "r", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--no-charts")
    assert res.exit_code == 2, res.output
    assert "deit_tiny_patch16_224 is a transformer network" in res.output and "Traceback" not in res.output


def test_mobilevit_rounds_its_input_so_that_every_unfold_sees_whole_patches():
    from scalelab.scaling.compound import scale_spec
    from scalelab.scaling.transformer import patch_multiple

    base = load_spec("mobilevit_xxs")
    # its three unfolds take the maps of strides 8, 16 and 32 and cut 2x2 patches: lcm(16, 32, 64)
    assert patch_multiple(base) == 64
    assert scale_spec(base, resolution=200).input.resolution == (192, 192)
    assert patch_multiple(load_spec("resnet50")) == 1


def test_maxvit_rounds_its_input_so_that_every_block_sees_whole_windows_and_grids():
    """MaxViT pads neither its windows nor its grid: each stage's map, after the first block's stride, must
    divide by 7. The last stage's map is the input over 32 (a stride-2 stem and four stride-2 stages)."""
    from scalelab.scaling.compound import scale_spec
    from scalelab.scaling.transformer import patch_multiple

    base = load_spec("maxvit_t")
    assert patch_multiple(base) == 32 * 7
    assert scale_spec(base, resolution=300).input.resolution == (224, 224)
    assert scale_spec(base, resolution=400).input.resolution == (448, 448)
