"""Hypothesis strategies for the transformer kinds: (kind, params, input shape) examples, run by
tests/test_transformer_kinds.py as tests/test_block_kinds.py runs the others. Token inputs are
(tokens, features), with a leading axis now and then (a hybrid's patches)."""

from __future__ import annotations

from hypothesis import strategies as st

HEAD_DIMS = st.integers(1, 6)


@st.composite
def tokens(draw, features):
    lead = draw(st.sampled_from([(), (), (2,)]))
    return (*lead, draw(st.integers(1, 6)), features)


@st.composite
def half(draw):
    """The fields every half shares: norm position, eps, layer scale, stochastic depth."""
    return {"norm_position": draw(st.sampled_from(["pre", "post"])), "norm_eps": draw(st.sampled_from([1e-6, 1e-5])),
            "layer_scale": draw(st.sampled_from([None, 0.1])), "drop_path": draw(st.sampled_from([0.0, 0.2]))}


@st.composite
def heads(draw):
    """(features, head fields): heads by head_dim or by count."""
    head_dim, count = draw(HEAD_DIMS), draw(st.integers(1, 4))
    fields = {"head_dim": head_dim} if draw(st.booleans()) else {"heads": count}
    return head_dim * count, {**fields, "qkv_bias": draw(st.booleans())}


@st.composite
def mlp_fields(draw):
    ratio = draw(st.sampled_from([{}, {"mlp_ratio": 2}, {"mlp_ratio": 1.5}, {"mlp_hidden": 5}]))
    return {**ratio, "activation": draw(st.sampled_from(["gelu", "relu", "silu"]))}


@st.composite
def self_attention(draw):
    features, fields = draw(heads())
    params = {"kind": "self_attention", **fields, **draw(half()), "residual": draw(st.booleans())}
    return "self_attention", params, draw(tokens(features))


@st.composite
def mlp(draw):
    features = draw(st.integers(1, 12))
    params = {"kind": "mlp", **draw(mlp_fields()), **draw(half()), "residual": draw(st.booleans())}
    return "mlp", params, draw(tokens(features))


@st.composite
def transformer(draw):
    features, fields = draw(heads())
    return "transformer", {"kind": "transformer", **fields, **draw(mlp_fields()), **draw(half())}, draw(tokens(features))


@st.composite
def patch_embed(draw):
    patch = draw(st.sampled_from([1, 2, 3, [2, 3]]))
    params = {"kind": "patch_embed", "out": draw(st.integers(1, 12)), "patch": patch,
              "class_token": draw(st.booleans()), "distill_token": draw(st.booleans()),
              "position": draw(st.sampled_from(["learned", "none"]))}
    if params["position"] == "learned":
        params["position_on"] = draw(st.sampled_from(["all_tokens", "patches"]))
    return "patch_embed", params, (draw(st.integers(1, 4)), draw(st.integers(3, 9)), draw(st.integers(3, 9)))


@st.composite
def token_pool(draw):
    mode = draw(st.sampled_from(["class", "mean"]))
    params = {"kind": "token_pool", "mode": mode, "norm": draw(st.sampled_from(["none", "before", "after"])),
              "skip": draw(st.integers(0, 2)) if mode == "mean" else 0}
    return "token_pool", params, draw(tokens(draw(st.integers(1, 8))))


STRATEGIES = {"self_attention": self_attention(), "mlp": mlp(), "transformer": transformer(),
              "patch_embed": patch_embed(), "token_pool": token_pool()}
