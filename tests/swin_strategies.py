"""Hypothesis strategies for the Swin kinds, run by tests/test_swin.py: (params, per-sample
channels-last input shape). Windows larger than the map, maps that need padding, shifts of every
size below the window and odd sides for patch merging are all drawn."""

from hypothesis import strategies as st

from scalelab.blocks import layers as L


@st.composite
def swin_block(draw):
    window = draw(st.integers(1, 4))
    head_dim, heads = draw(st.sampled_from([2, 4])), draw(st.integers(1, 3))
    params = {"kind": "swin_block", "window": window, "head_dim": head_dim,
              "shift": draw(st.one_of(st.just("alternate"), st.integers(0, window - 1))),
              "mlp_ratio": draw(st.sampled_from([1.0, 2.0, 4.0])), "qkv_bias": draw(st.booleans())}
    return params, (draw(st.integers(1, 9)), draw(st.integers(1, 9)), head_dim * heads)


@st.composite
def patch_merging(draw):
    return {"kind": "patch_merging"}, (draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 5)))


STRATEGIES = {"swin_block": swin_block(), "patch_merging": patch_merging()}

#: one example of each windowed layer, for the registry's list (tests/test_swin.py checks their faces)
LAYERS = {"window_attention": L.WindowAttention(2, 3, (1, 1), (2, 3)), "patch_concat": L.PatchConcat()}
