"""`scalelab explain`: the course notes' worked numbers, printed with their arithmetic.

Every expected figure is worked out by hand here (output positions x filters x filter size)."""

import json
from pathlib import Path

from tests.cli_helpers import assert_refused, invoke

EXAMPLES = Path(__file__).resolve().parents[1] / "specs" / "examples"


def explained(name: str, *args) -> str:
    result = invoke("explain", EXAMPLES / f"{name}.yaml", *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_5x5_conv_reads_as_the_notes_multiply_it():
    assert 28 * 28 * 32 * (5 * 5 * 192) == 120_422_400
    text = explained("inception_5x5")
    assert "28 × 28 × 32 × (5 × 5 × 192) = 120,422,400" in text
    assert "28 × 28 output positions, 32 filters, each 5 × 5 × 192 (f × f × n_c)" in text
    assert "5 × 5 × 192 × 32 = 153,600" in text  # params: f x f x n_c x filters, no bias


def test_the_1x1_bottleneck_sums_to_12_4_million():
    assert (28 * 28 * 16 * 192, 28 * 28 * 32 * (5 * 5 * 16)) == (2_408_448, 10_035_200)
    text = explained("inception_5x5_bottleneck")
    assert "28 × 28 × 16 × (1 × 1 × 192) = 2,408,448" in text
    assert "28 × 28 × 32 × (5 × 5 × 16) = 10,035,200" in text
    assert "spec total (inference): MACs 2,408,448 + 10,035,200 = 12,443,648" in text


def test_the_normal_conv_on_6x6x3_costs_2160():
    assert 4 * 4 * 5 * (3 * 3 * 3) == 2_160
    assert "4 × 4 × 5 × (3 × 3 × 3) = 2,160" in explained("conv_6x6x3")


def test_depthwise_separable_pair_is_672_a_ratio_of_0_311():
    text = explained("separable_6x6x3")
    assert "4 × 4 × 3 × (3 × 3 × 1) = 432" in text  # 3 filters of one channel each
    assert "4 × 4 × 5 × (1 × 1 × 3) = 240" in text
    assert "432 + 240 = 672" in text
    assert "dense      4 × 4 × 5 × (3 × 3 × 3) = 2,160" in text
    assert round(672 / 2160, 3) == round(1 / 5 + 1 / 9, 3) == 0.311
    assert "672 / 2,160 = 0.311 = 1/n_c' + 1/f² = 1/5 + 1/9" in text


def test_params_with_biases_and_batchnorm():
    # resnet18's fc: 512 x 1000 weights + 1000 biases; its stem batchnorm: 2 x 64
    result = invoke("explain", "resnet18", "--block", "fc")
    assert "512 × 1000 + 1000 = 513,000" in result.output
    stem = invoke("explain", "resnet18", "stem").output
    assert "112 × 112 × 64 × (7 × 7 × 3) = 118,013,952" in stem
    assert "2 × 64 = 128" in stem


def test_a_stage_focus_totals_its_blocks_and_the_whole_spec_matches_analyze():
    from scalelab import analyze

    data = json.loads(invoke("explain", "resnet18", "--block", "layer2", "-f", "json").output)
    assert [b["name"] for b in data["blocks"]] == ["layer2.0", "layer2.1"]
    full = json.loads(invoke("explain", "mobilenet_v1", "-f", "json").output)
    total = analyze("mobilenet_v1").total
    assert (full["total_macs"], full["total_params"]) == (total.macs, total.params)
    # every separable block of MobileNet v1 is a depthwise-pointwise pair with ratio 1/n_c' + 1/9
    pairs = [p for b in full["blocks"] for p in b["pairs"]]
    assert len(pairs) == 13
    assert all(abs(p["ratio"] - (1 / p["filters"] + 1 / 9)) < 1e-12 for p in pairs)


def test_markdown_and_output_file(tmp_path):
    out = tmp_path / "explain.md"
    result = invoke("explain", EXAMPLES / "separable_6x6x3.yaml", "-f", "markdown", "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# scalelab explain separable_6x6x3")
    assert "## block pointwise (conv), 3x4x4 -> 5x4x4" in text and "432 + 240 = 672" in text


def test_format_from_the_output_extension(tmp_path):
    out = tmp_path / "explain.json"
    assert invoke("explain", EXAMPLES / "conv_6x6x3.yaml", "-o", out).exit_code == 0
    assert json.loads(out.read_text())["total_macs"] == 2_160
    bad = tmp_path / "explain.weird"
    assert_refused(invoke("explain", EXAMPLES / "conv_6x6x3.yaml", "-o", bad), "explain.weird", "--format")
    assert not bad.exists()


def test_unknown_block_is_refused_with_a_hint(tmp_path):
    out = tmp_path / "x.txt"
    assert_refused(invoke("explain", "resnet18", "--block", "layer5", "-o", out), "--block", "layer5", "did you mean")
    assert not out.exists()
    assert_refused(invoke("explain", "no_such_spec"), "no_such_spec")


def test_explain_imports_no_torch(cli_fresh):
    out, heavy = cli_fresh(["explain", "mobilenet_v2", "--format", "json"])
    assert json.loads(out)["spec"] == "mobilenet_v2"
    assert heavy == []


def test_a_projection_shortcut_is_labelled_as_the_shortcut():
    """resnet50 layer1.0: the body's expand conv and the projection are both 1x1, 64 -> 256 at 56x56
    (56 × 56 × 256 × 64 = 51,380,224 MACs each); only the second is on the shortcut."""
    result = invoke("explain", "resnet50", "layer1.0")
    assert result.exit_code == 0, result.output
    layers = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ") and not line.startswith("    ")]
    assert layers[:8] == ["conv 1x1, 64 -> 64", "batchnorm 64", "conv 3x3, 64 -> 64", "batchnorm 64",
                          "conv 1x1, 64 -> 256", "batchnorm 256",
                          "conv 1x1, 64 -> 256 (projection shortcut)", "batchnorm 256 (projection shortcut)"]
    assert result.stdout.count("56 × 56 × 256 × (1 × 1 × 64) = 51,380,224") == 2
    later = invoke("explain", "resnet50", "layer1.1").stdout  # identity shortcut: nothing to label
    assert "shortcut" not in later and later.count("conv ") == 3
    stride = invoke("explain", "resnet18", "layer2.0").stdout  # basic block, strided projection
    assert "conv 1x1, 64 -> 128, stride 2 (projection shortcut)" in stride
    assert "conv 3x3, 64 -> 128, stride 2\n" in stride


ATTENTION_SPEC = """\
name: tiny_attention
input: {channels: 3, resolution: 8}
blocks:
  - {name: embed, kind: conv, out: 16, kernel: 1, norm: none, activation: none}
  - {name: tokens, kind: reshape, shape: [16, 64]}
  - {name: rows, kind: permute, dims: [1, 0]}
  - {name: qkv, kind: linear, out: 48, flatten: false}
  - {name: heads, kind: reshape, shape: [64, 3, 2, 8]}
  - {name: split_heads, kind: permute, dims: [1, 2, 0, 3]}
  - {name: q_k_v, kind: unbind, dim: 0}
  - {name: attend, kind: attention, from: [q_k_v.0, q_k_v.1, q_k_v.2]}
  - {name: k_t, kind: permute, dims: [0, 2, 1], from: q_k_v.1}
  - {name: scores, kind: matmul, from: [q_k_v.0, k_t]}
"""


def test_attention_and_matmul_show_their_products_and_block_totals(tmp_path):
    """2 heads, 64 tokens, width 8: attention is q·k (64 x 64 x 8) and the weighted sum (64 x 64 x 8)
    per head; q @ k^T alone is 2 x 64 x 8 x 64."""
    assert (2 * 64 * 64 * (8 + 8), 2 * 64 * 8 * 64) == (131_072, 65_536)
    spec = tmp_path / "tiny_attention.yaml"
    spec.write_text(ATTENTION_SPEC)
    result = invoke("explain", spec)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "2 × 64 × 64 × (8 + 8) = 131,072" in text
    assert "block total: MACs 131,072; params 0" in text
    assert "2 × 64 × 8 × 64 = 65,536" in text
    assert "block total: MACs 65,536; params 0" in text
    # the spec total is the sum of the block totals: 3 x 16 per position, 16 x 48 per token, then the two
    assert "MACs 3,072 + 49,152 + 131,072 + 65,536 = 248,832" in text
