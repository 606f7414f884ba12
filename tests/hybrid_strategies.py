"""Hypothesis strategies for the kinds of hybrid networks, run by tests/test_mobilevit.py:
(params, per-sample input shape). ``unfold`` gets maps of whole patches of any size and a body of a
transformer block (any head count) and a layer norm, as MobileViT runs them; ``maxvit_block`` oblong
maps that divide into its windows and its grid after its stride, whose partitions copy or view."""

import math

from hypothesis import strategies as st


@st.composite
def unfold(draw):
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    heads, head_dim = draw(st.integers(1, 3)), draw(st.sampled_from([2, 4]))
    body = [{"kind": "transformer", "heads": heads, "mlp_ratio": 2.0, "activation": "silu", "norm_eps": 1e-5},
            {"kind": "layer_norm", "trailing": 1}]
    shape = (heads * head_dim, ph * draw(st.integers(1, 3)), pw * draw(st.integers(1, 3)))
    return {"kind": "unfold", "patch": [ph, pw], "body": body[: draw(st.integers(1, 2))]}, shape


@st.composite
def maxvit_block(draw):
    window, grid, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    heads, head_dim = draw(st.integers(1, 3)), draw(st.sampled_from([2, 4]))
    cell = math.lcm(window, grid)
    h, w = (cell * draw(st.integers(1, 2)) * stride for _ in range(2))
    params = {"kind": "maxvit_block", "out": heads * head_dim, "stride": stride, "window": window, "grid": grid,
              "head_dim": head_dim, "expand": draw(st.sampled_from([1, 2, 4])),
              "se": draw(st.sampled_from([0, 0.25, 0.5])), "mlp_ratio": draw(st.sampled_from([1.0, 2.0]))}
    return params, (draw(st.integers(1, 8)), h, w)


STRATEGIES = {"unfold": unfold(), "maxvit_block": maxvit_block()}
