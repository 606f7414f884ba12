"""Hypothesis strategies for the kinds of hybrid networks, run by tests/test_mobilevit.py:
(params, per-sample input shape). ``unfold`` gets maps of whole patches of any size and a body of a
transformer block (any head count) and a layer norm, as MobileViT runs them."""

from hypothesis import strategies as st


@st.composite
def unfold(draw):
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    heads, head_dim = draw(st.integers(1, 3)), draw(st.sampled_from([2, 4]))
    body = [{"kind": "transformer", "heads": heads, "mlp_ratio": 2.0, "activation": "silu", "norm_eps": 1e-5},
            {"kind": "layer_norm", "trailing": 1}]
    shape = (heads * head_dim, ph * draw(st.integers(1, 3)), pw * draw(st.integers(1, 3)))
    return {"kind": "unfold", "patch": [ph, pw], "body": body[: draw(st.integers(1, 2))]}, shape


STRATEGIES = {"unfold": unfold()}
