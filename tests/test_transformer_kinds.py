"""The transformer kinds (patch_embed, self_attention, mlp, transformer, token_pool) against torch:
over a spread of parameters each built block matches its analysis; small ViT/DeiT networks equal
timm's (parameters, the reference MACs, outputs with timm's weights loaded), post- and pre-norm
blocks equal torch's nn.TransformerEncoderLayer; the unpack node and the token layer scale face
by face; memory against the torch probe; hand-worked counts; bad input refused in one message."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from test_block_kinds import _check
from transformer_strategies import STRATEGIES

from scalelab import analyze
from scalelab.analysis.block_memory import block_peak
from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.analysis.memory_probe import block_peaks, dispatch_peak, inference_peak, training_step
from scalelab.blocks import KINDS
from scalelab.blocks.layers import Attention, Unbind, Unpack, elements, walk
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(kind, count_params, flop_counter_macs):
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[kind])
    def run(example):
        kind, params, shape = example
        _check(kind, params, shape, count_params, flop_counter_macs)

    run()


def vit_spec(embed: int = 96, head_dim: int = 32, depth: int = 2, patch: int = 8, resolution: int = 32,
             block: str = "", embed_extra: str = "", pool: str = "norm: before") -> str:
    return (f"name: small_vit\ninput: {{channels: 3, resolution: {resolution}}}\nblocks:\n"
            f"  - {{name: embed, kind: patch_embed, out: {embed}, patch: {patch}{embed_extra}}}\n"
            f"  - {{stage: encoder, repeat: {depth}, block: {{kind: transformer, head_dim: {head_dim}{block}}}}}\n"
            f"  - {{name: pool, kind: token_pool, {pool}}}\n"
            f"  - {{name: head, kind: linear, out: 10}}\n")


def load_in_order(built, source_state: dict) -> None:
    """Load ``source_state`` into ``built`` key by key in order, every shape equal (the built blocks
    hold the same tensors in the same order as the source's state dict, given that order)."""
    keys = list(built.state_dict())
    assert len(keys) == len(source_state)
    pairs = list(zip(keys, source_state.items()))
    assert [tuple(built.state_dict()[k].shape) for k, _ in pairs] == [tuple(t.shape) for _, (_, t) in pairs]
    built.load_state_dict({k: t for k, (_, t) in pairs})


def timm_in_spec_order(model, tokens_in: tuple = ("cls_token", "dist_token", "pos_embed")) -> dict:
    """timm's state dict with its learned tokens and position embedding moved after the patch
    embedding's conv, where the spec's patch_embed holds them, in the order ``tokens_in``."""
    state = dict(model.state_dict())
    tokens = {k: state.pop(k) for k in tokens_in if k in state}
    conv = {k: state.pop(k) for k in ("patch_embed.proj.weight", "patch_embed.proj.bias")}
    return {**conv, **tokens, **state}


TIMM_CASES = {
    # name: (timm.create_model keyword arguments beyond the shared ones, the spec's block / embed / pool text)
    "deit": ({}, "", "", "norm: before"),
    "layer_scale": ({"init_values": 1e-5}, ", layer_scale: 1.0e-5", "", "norm: before"),
    "no_qkv_bias": ({"qkv_bias": False, "mlp_ratio": 2.0}, ", qkv_bias: false, mlp_ratio: 2", "", "norm: before"),
    # mean of the patch tokens (the class token left out), then fc_norm
    "mean_pool": ({"global_pool": "avg"}, "", "", "mode: mean, skip: 1, norm: after"),
    "no_class_token": ({"global_pool": "avg", "class_token": False}, "", ", class_token: false", "mode: mean, norm: after"),
}


@pytest.mark.parametrize("case", list(TIMM_CASES))
def test_a_small_vit_equals_timm(case, reference_macs):
    """Parameters, the reference MACs (FlopCounterMode / 2, grad enabled, math kernel) and outputs
    with timm's randomly initialised weights loaded."""
    timm = pytest.importorskip("timm")
    from scalelab.build import build_module

    kwargs, block, embed_extra, pool = TIMM_CASES[case]
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=96, depth=2, num_heads=3,
                              num_classes=10, **kwargs).eval()
    spec = parse_spec(vit_spec(block=block, embed_extra=embed_extra, pool=pool))
    analysis = analyze(spec)
    x = torch.randn(2, 3, 32, 32)
    assert analysis.total.params == sum(p.numel() for p in model.parameters())
    assert analysis.total.macs == reference_macs(model, x[:1])
    built = build_module(resolve(spec)).eval()
    load_in_order(built, timm_in_spec_order(model))
    with torch.no_grad():
        torch.testing.assert_close(built(x), model(x), atol=1e-5, rtol=1e-5)


def test_distillation_token_equals_timm_deit_distilled():
    """DeiT's distilled tokens: class, distillation, then the patches, each position embedded."""
    timm = pytest.importorskip("timm")
    from scalelab.build import build_module

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=1,
                              num_heads=2, num_classes=10).eval()
    spec = parse_spec("name: distilled\ninput: {channels: 3, resolution: 32}\nblocks:\n"
                      "  - {name: embed, kind: patch_embed, out: 64, patch: 8, distill_token: true}\n"
                      "  - {stage: encoder, repeat: 1, block: {kind: transformer, head_dim: 32}}\n"
                      "  - {name: norm, kind: layer_norm, trailing: 1, norm_eps: 1.0e-6}\n")
    built = build_module(resolve(spec)).eval()
    state = {k: t for k, t in timm_in_spec_order(model).items() if not k.startswith(("head.", "head_dist."))}
    load_in_order(built, state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_features(x)
        torch.testing.assert_close(built(x), expected, atol=1e-5, rtol=1e-5)
    assert tuple(expected.shape[1:]) == analyze(spec).blocks[-1].out_shape == (18, 64)


def test_position_on_the_patches_equals_timm_deit3(reference_macs):
    """DeiT III (timm's deit3, ``no_embed_class``): the position embedding, one row per patch, added
    to the patches before the class token is put in front. The spec's patch_embed with
    ``position_on: patches`` holds the conv, then the positions, then the class token: timm's
    parameters, the reference MACs, and timm's features and logits with its weights loaded."""
    timm = pytest.importorskip("timm")
    from scalelab.build import build_module

    torch.manual_seed(0)
    model = timm.create_model("deit3_small_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=2,
                              num_heads=2, num_classes=10).eval()
    assert model.no_embed_class and tuple(model.pos_embed.shape) == (1, 16, 64)  # 4 x 4 patches, no class row
    with torch.no_grad():  # values a position row misplaced by one token would not compute alike
        model.pos_embed.normal_(), model.cls_token.normal_()
    spec = parse_spec(vit_spec(embed=64, block=", layer_scale: 1.0e-6", embed_extra=", position_on: patches"))
    embed = walk(KINDS["patch_embed"].model_validate({"kind": "patch_embed", "out": 64, "patch": 8,
                                                      "position_on": "patches"}).layers((3, 32, 32)), (3, 32, 32))
    assert embed.out == (17, 64)
    assert sum(c.params for c in embed.costs) == 64 * 3 * 64 + 64 + 16 * 64 + 64  # conv, positions, class token
    x = torch.randn(2, 3, 32, 32)
    assert analyze(spec).total.params == sum(p.numel() for p in model.parameters())
    assert analyze(spec).total.macs == reference_macs(model, x[:1])
    built = build_module(resolve(spec)).eval()
    load_in_order(built, timm_in_spec_order(model, ("pos_embed", "cls_token")))
    with torch.no_grad():
        torch.testing.assert_close(built(x), model(x), atol=1e-5, rtol=1e-5)
        patches = model.patch_embed(x) + model.pos_embed  # timm's no_embed_class, by hand
        expected = torch.cat([model.cls_token.expand(2, -1, -1), patches], dim=1)
        torch.testing.assert_close(built.blocks[0](x), expected)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_a_block_equals_torch_transformer_encoder_layer(norm_position):
    """torch's encoder layer (nn.MultiheadAttention: its in_proj is the fused qkv, out_proj the
    projection) in post-norm (its default) and pre-norm (norm_first) form."""
    from scalelab.build import to_torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(48, 4, 80, dropout=0.0, activation="gelu", layer_norm_eps=1e-6,
                                             batch_first=True, norm_first=norm_position == "pre").eval()
    block = KINDS["transformer"].model_validate({"kind": "transformer", "heads": 4, "mlp_hidden": 80,
                                                 "norm_position": norm_position})
    built = to_torch(block.layers((7, 48))).eval()
    ours = list(built.state_dict())
    theirs = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
              "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]
    norms = ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    if norm_position == "pre":  # each norm comes first in its half
        theirs = norms[:2] + theirs[:4] + norms[2:] + theirs[4:]
    else:  # each norm follows its half's add
        theirs = theirs[:4] + norms[:2] + theirs[4:] + norms[2:]
    source = layer.state_dict()
    built.load_state_dict({k: source[s] for k, s in zip(ours, theirs, strict=True)})
    x = torch.randn(3, 7, 48)
    with torch.no_grad():
        torch.testing.assert_close(built(x), layer(x), atol=1e-5, rtol=1e-5)


def _torchvision_encoder_block(dim: int, heads: int, hidden: int):
    from functools import partial

    from torchvision.models.vision_transformer import EncoderBlock

    return EncoderBlock(heads, dim, hidden, dropout=0.0, attention_dropout=0.0,
                        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6)).eval()


@pytest.mark.parametrize("tokens", [7, 1])
def test_a_packed_qkv_block_equals_torchvisions_encoder_block(tokens, reference_macs):
    """``qkv: packed_copy``: torchvision's EncoderBlock (nn.MultiheadAttention, its in_proj the fused
    qkv, state in the block's order) computes the same outputs with its weights loaded; the same
    parameters and MACs as the views' form, and 3 x tokens x features more ops, the copy of the whole
    projection (none for one token: torch's .contiguous() copies nothing there)."""
    pytest.importorskip("torchvision")
    from scalelab.build import to_torch

    torch.manual_seed(0)
    dim, heads, hidden = 48, 4, 80
    source = _torchvision_encoder_block(dim, heads, hidden)
    fields = {"kind": "transformer", "heads": heads, "mlp_hidden": hidden}
    packed, views = (KINDS["transformer"].model_validate({**fields, "qkv": form}) for form in ("packed_copy", "views"))
    costs = {form: walk(b.layers((tokens, dim)), (tokens, dim)).costs for form, b in (("packed", packed), ("views", views))}
    built = to_torch(packed.layers((tokens, dim))).eval()
    built.load_state_dict(dict(zip(built.state_dict(), source.state_dict().values(), strict=True)))
    x = torch.randn(3, tokens, dim)
    with torch.no_grad():
        torch.testing.assert_close(built(x), source(x), atol=1e-5, rtol=1e-5)
    params = sum(p.numel() for p in source.parameters())
    assert sum(c.params for c in costs["packed"]) == sum(c.params for c in costs["views"]) == params
    assert sum(c.macs for c in costs["packed"]) == reference_macs(source, x[:1])
    copy = 3 * tokens * dim if tokens > 1 else 0
    assert sum(c.ops for c in costs["packed"]) - sum(c.ops for c in costs["views"]) == copy
    assert [c.ops for c in costs["packed"] if c.label == "contiguous"][:1] == ([copy] if copy else [])


def test_the_packed_copy_is_timed_as_a_copy():
    """The latency prediction times the copy of the whole projection as the copy kernel it is: a
    layer of its own, reading and writing 3 x tokens x features elements."""
    from scalelab.analysis.latency import predict_latency

    spec = parse_spec(vit_spec(block=", qkv: packed_copy", depth=1))
    network = analyze(spec).network
    layers = predict_latency(network, "t4", "fp32", 1).blocks["encoder.0"].layers
    copies = [t for t in layers if t.label == "contiguous"]
    assert len(copies) == 2 and copies[0].device_ms > copies[1].device_ms > 0  # the projection's, then the heads'
    costs = [c for c in network.blocks["encoder.0"].costs if c.label == "contiguous"]
    assert (costs[0].in_elems, costs[0].out_elems) == (3 * 17 * 96, 3 * 17 * 96)


def test_a_token_layer_scale_equals_timms():
    """``layer_scale`` with ``layout: channels_last``: timm's LayerScale (``x * gamma`` over the
    features), its gamma loaded; one parameter per feature, one op per element."""
    from scalelab.build import to_torch

    source = pytest.importorskip("timm.layers").LayerScale(24, init_values=0.5)
    with torch.no_grad():
        source.gamma.uniform_(-1, 1)
    block = KINDS["layer_scale"].model_validate({"kind": "layer_scale", "layout": "channels_last"})
    w = walk(block.layers((5, 24)), (5, 24))
    assert (w.out, [(c.params, c.macs, c.ops) for c in w.costs]) == ((5, 24), [(24, 0, 5 * 24)])
    built = to_torch(block.layers((5, 24)))
    built.load_state_dict(dict(zip(built.state_dict(), source.state_dict().values(), strict=True)))
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        torch.testing.assert_close(built(x), source(x))


def test_leading_axes_attend_apart():
    """(patches, tokens, features): each patch's tokens attend among themselves, as timm's Attention
    on the patches stacked on the batch (MobileViT)."""
    pytest.importorskip("timm")
    from timm.models.vision_transformer import Attention as TimmAttention

    from scalelab.build import to_torch

    torch.manual_seed(0)
    attention = TimmAttention(24, num_heads=3, qkv_bias=True).eval()
    block = KINDS["self_attention"].model_validate({"kind": "self_attention", "head_dim": 8, "residual": False,
                                                    "norm_position": "post"})
    tree = block.layers((4, 5, 24))
    assert walk(tree, (4, 5, 24)).out == (4, 5, 24)
    built = to_torch(tree).eval()
    keys = list(built.state_dict())
    source = attention.state_dict()
    built.load_state_dict({**dict(zip(keys[:4], source.values(), strict=True)),
                           keys[4]: torch.ones(24), keys[5]: torch.zeros(24)})  # the post norm: identity affine
    x = torch.randn(2, 4, 5, 24)
    with torch.no_grad():
        expected = torch.nn.functional.layer_norm(attention(x.reshape(8, 5, 24)), (24,), eps=1e-6).reshape(2, 4, 5, 24)
        torch.testing.assert_close(built(x), expected, atol=1e-5, rtol=1e-5)


def test_unpack_hands_the_pieces_to_attention():
    """Unpack(unbind, attention): the children's costs, torch's output, and the eval inner peak the
    dispatch-mode probe counts (the pieces are views of a head-major tensor: only v is copied for the
    batched product, whose batch and two heads fold into one)."""
    node = Unpack(Unbind(0), Attention())
    shape = (3, 2, 5, 4)
    w = walk(node, shape)
    assert w.out == (2, 5, 4)
    assert [c.label for c in w.costs] == ["unbind", "attention"]
    assert w.costs[1] == Attention().cost([(2, 5, 4)] * 3, (2, 5, 4))
    module = node.module().eval()
    x = torch.randn(2, *shape)
    q, k, v = x.unbind(1)
    with torch.no_grad():
        torch.testing.assert_close(module(x), torch.softmax(q @ k.transpose(-1, -2) / 2, -1) @ v)
    peak = dispatch_peak(lambda: module(torch.randn(2, *shape)))
    q, scores = 2 * 5 * 4, 2 * 5 * 5  # per sample; the probabilities, v's copy and the output at the last product
    assert peak == 4 * 2 * (elements(shape) + q + scores + q + q)
    assert peak == 4 * 2 * elements(shape) + block_peak(node, shape, 2, 4, layout="head-major")[1]


MEMORY = """
name: memory
input: {channels: 3, resolution: 16}
blocks:
  - {name: embed, kind: patch_embed, out: 32, patch: 4, distill_token: true}
  - {name: pre, kind: transformer, head_dim: 8, layer_scale: 0.1}
  - {name: post, kind: transformer, heads: 2, norm_position: post, mlp_hidden: 40}
  - {name: attn, kind: self_attention, heads: 1}
  - {name: packed, kind: transformer, heads: 4, qkv: packed_copy}
  - {name: ffn, kind: mlp, mlp_ratio: 2, activation: silu, layer_scale: 0.5}
  - {name: pool, kind: token_pool, mode: mean, skip: 2, norm: after}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_inference_memory_equals_what_torch_holds(batch):
    """Per block and at the peak, the score matrix included (CPU: the dispatch-mode count)."""
    from scalelab.build import build_module

    network = resolve(parse_spec(MEMORY))
    model = inference_memory(network, batch=batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network),
                                                                              network.input_shape, batch)
    assert model.peak_bytes == inference_peak(build_module(network), network.input_shape, batch)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_memory_equals_one_real_step(optimizer, batch):
    """Weights, gradients, optimizer state and the tensors the math kernel saves (the score matrix).
    At batch 1 the math kernel folds v's heads into its product without a copy and keeps the qkv
    projection's output instead. Stochastic depth is left out: its one random factor per sample is
    not modelled (Dropout.saved)."""
    network = resolve(parse_spec(MEMORY))
    model = training_memory(network, batch=batch, optimizer=optimizer)
    real = training_step(network, optimizer, batch=batch)
    assert (model.weight_bytes, model.gradient_bytes, model.optimizer_bytes, model.saved_bytes) == (
        real["weight_bytes"], real["gradient_bytes"], real["optimizer_bytes"], real["saved_bytes"])


def test_hand_worked_transformer_block():
    """8 features in 2 heads of 4 over 5 tokens, MLP 32: two norms (2 * 16), qkv 8*24 + 24, projection
    8*8 + 8, fc1 8*32 + 32, fc2 32*8 + 8 parameters; MACs: qkv 5*8*24, per head q k^T and probs v
    5*5*4 each, projection 5*8*8, fc1 5*8*32, fc2 5*32*8."""
    block = KINDS["transformer"].model_validate({"kind": "transformer", "head_dim": 4})
    costs = walk(block.layers((5, 8)), (5, 8)).costs
    assert sum(c.params for c in costs) == 32 + 8 * 24 + 24 + 8 * 8 + 8 + 8 * 32 + 32 + 32 * 8 + 8
    assert sum(c.macs for c in costs) == 5 * 8 * 24 + 2 * 2 * 5 * 5 * 4 + 5 * 8 * 8 + 5 * 8 * 32 + 5 * 32 * 8


def test_hand_worked_patch_embedding():
    """16x16 patches of a 3x224x224 image to 192 features: 196 patches and a class token, so
    197 x 192; conv 192*3*256 + 192, class token 192, positions 197*192 parameters; 196*192*768 MACs."""
    result = walk(KINDS["patch_embed"].model_validate({"kind": "patch_embed", "out": 192}).layers((3, 224, 224)),
                  (3, 224, 224))
    costs = result.costs
    assert result.out == (197, 192)
    assert sum(c.params for c in costs) == 192 * 3 * 256 + 192 + 192 + 197 * 192
    assert sum(c.macs for c in costs) == 196 * 192 * 3 * 256


@pytest.mark.parametrize("block, message", [
    ("{kind: transformer, head_dim: 24}", "'transformer': 64 features are not a whole number of heads of head_dim: 24"),
    ("{kind: self_attention, heads: 3}", "'self_attention': 64 features do not split into heads: 3"),
    ("{kind: transformer, heads: 2, head_dim: 32}", "give the heads as head_dim (features per head) or as heads"),
    ("{kind: mlp, mlp_ratio: 2, mlp_hidden: 8}", "give the MLP's hidden width as mlp_ratio or as mlp_hidden"),
    ("{kind: token_pool, mode: class, skip: 1}", "skip leaves tokens out of a mean"),
    ("{kind: reshape, shape: [17, 4, 16]}\n  - {kind: self_attention, qkv: packed_copy, head_dim: 8}",
     "'self_attention': qkv: packed_copy takes (tokens, features) without leading axes, as nn.MultiheadAttention "
     "does, got 17x4x16"),
    ("{kind: reduce, op: mean, dims: [0, 1]}\n  - {kind: layer_scale, layout: channels_last}",
     "layer_scale with layout: channels_last needs an axis to scale, got a scalar"),
    ("{kind: token_pool, mode: mean, skip: 17}", "skip 17 leaves none of the 17 tokens"),
    ("{kind: patch_embed, out: 64, position: none, position_on: patches}",
     "position_on: patches places a position embedding; position: none has none"),
])
def test_bad_transformer_input_is_one_message(tmp_path, block, message):
    from typer.testing import CliRunner

    from scalelab.cli import app

    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: {channels: 3, resolution: 32}\nblocks:\n"
                    f"  - {{kind: patch_embed, out: 64, patch: 8}}\n  - {block}\n")
    result = CliRunner().invoke(app, ["analyze", str(spec)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_feature_map_is_no_token_input(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {kind: flatten}\n"
                    "  - {kind: transformer}\n")
    result = CliRunner().invoke(app, ["analyze", str(spec)])
    assert result.exit_code == 2
    assert "'transformer' needs tokens (tokens, features), got 192" in " ".join(result.output.split())


@pytest.mark.parametrize("kernel", ["math", "fused"])
@pytest.mark.parametrize("batch", [1, 3])
def test_training_memory_by_kernel_equals_timm(kernel, batch):
    """One real step of timm's module with each kernel forced (fused: flash attention, on CPU): the
    analysis of the same network with that kernel keeps the same bytes, the math kernel's score
    matrix included, the fused kernel's log-sum-exp instead."""
    timm = pytest.importorskip("timm")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scalelab.analysis.memory_probe import module_training_step

    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=96, depth=2, num_heads=3,
                              num_classes=10)
    network = resolve(parse_spec(vit_spec()))
    figures = training_memory(network, batch=batch, attention_kernel=kernel)
    with sdpa_kernel(SDPBackend.MATH if kernel == "math" else SDPBackend.FLASH_ATTENTION):
        real = module_training_step(model, (3, 32, 32), batch=batch)
    assert figures.saved_bytes == real["saved_bytes"]
    assert figures.attention_kernel == kernel


def test_the_fused_kernel_keeps_the_log_sum_exp_not_the_scores():
    """Per attention: the math kernel keeps probabilities (heads x L x S), scaled q and k^T and a copy
    of v; the fused kernel keeps the qkv projection's output (q, k, v are views of it) and one fp32
    log-sum-exp per query and head. 3 heads of 32 over 17 tokens, batch 2, one block: the difference."""
    network = resolve(parse_spec(vit_spec(depth=1)))
    math, fused = (training_memory(network, batch=2, attention_kernel=k).saved_bytes for k in ("math", "fused"))
    h, n, d = 3, 17, 96
    assert math - fused == 2 * 4 * ((h * n * n + 3 * n * d) - (3 * n * d + h * n))


def test_the_report_states_the_kernel(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    spec = tmp_path / "vit.yaml"
    spec.write_text(vit_spec())
    runner = CliRunner()
    math = runner.invoke(app, ["analyze", str(spec), "--mode", "train", "-f", "markdown"])
    fused = runner.invoke(app, ["analyze", str(spec), "--mode", "train", "--attention-kernel", "fused", "-f", "json"])
    assert "attention run by the math kernel (sdpa_kernel(SDPBackend.MATH)), which keeps the score matrix" in \
        " ".join(math.output.split())
    assert '"attention_kernel": "fused"' in fused.output
    cnn = runner.invoke(app, ["analyze", "resnet18", "--mode", "train", "-f", "markdown"])
    assert "attention run by" not in cnn.output
    alone = runner.invoke(app, ["analyze", str(spec), "--attention-kernel", "fused", "-f", "markdown"])
    assert alone.exit_code == 0, alone.output
    assert "attention run by a fused kernel (flash attention, as on CPU), which writes only its output and " \
        "log-sum-exp" in " ".join(alone.output.split())
    with pytest.raises(ScalelabError, match="unknown attention kernel 'flash'; one of math, fused"):
        training_memory(resolve(parse_spec(vit_spec())), attention_kernel="flash")


def test_verify_explains_the_attention_fvcore_skips(tmp_path):
    """fvcore has no handle for scaled_dot_product_attention: `scalelab verify` explains its total
    as scalelab's MACs plus the layer norms fvcore adds, less the attention MACs it skips."""
    from typer.testing import CliRunner

    from scalelab.cli import app

    spec = tmp_path / "vit.yaml"
    spec.write_text(vit_spec())
    result = CliRunner().invoke(app, ["verify", str(spec)])
    attention = sum(c.macs for b in analyze(parse_spec(vit_spec())).blocks for c in b.layers if c.label == "attention")
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"(attention's {attention:,} MACs among them)" in text and "every check agrees" in text


HYBRID = """
name: hybrid
input: {channels: 3, resolution: 16}
defaults: {norm: batchnorm, activation: silu}
blocks:
  - {name: stem, kind: conv, out: 32, kernel: 3, stride: 2}
  - name: mvit
    kind: wrap
    body:
      - {kind: conv, out: 32, kernel: 3}
      - {kind: reshape, shape: [32, 64]}
      - {kind: permute, dims: [1, 0]}
      - {kind: self_attention, head_dim: 16}
      - {kind: mlp, mlp_ratio: 2, activation: silu}
      - {kind: permute, dims: [1, 0]}
      - {kind: contiguous}
      - {kind: reshape, shape: [32, 8, 8]}
      - {kind: conv, out: 32, kernel: 1}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_the_halves_inside_a_wrap_equal_torch(batch, reference_macs):
    """A hybrid: the map unfolded to tokens, self-attention and an MLP inside a conv wrap's body
    (MobileViT's pattern): parameters, the reference MACs, inference peaks per block and one real
    training step."""
    from scalelab.build import build_module

    network = resolve(parse_spec(HYBRID))
    analysis = analyze(parse_spec(HYBRID))
    module = build_module(network)
    assert analysis.total.params == sum(p.numel() for p in module.parameters())
    assert analysis.total.macs == reference_macs(module.eval(), torch.randn(1, 3, 16, 16))
    peaks = {n: b.alive_bytes for n, b in inference_memory(network, batch=batch).blocks.items()}
    assert peaks == block_peaks(build_module(network), network.input_shape, batch)
    model, real = training_memory(network, batch=batch, optimizer="adam"), training_step(network, "adam", batch=batch)
    assert (model.weight_bytes, model.optimizer_bytes, model.saved_bytes) == (
        real["weight_bytes"], real["optimizer_bytes"], real["saved_bytes"])
