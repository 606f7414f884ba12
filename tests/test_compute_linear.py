"""``linear`` over the last axis of any rank, face by face against nn.Linear, and the kind's
``flatten`` rule (a feature map is flattened by default; zoo figures are unchanged)."""

import pytest
from faces import check_faces

from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.spec import parse_spec


@pytest.mark.parametrize("trained,input_grad", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(12,), (7, 12), (3, 5, 12), (2, 3, 4, 12)], ids=lambda s: "x".join(map(str, s)))
def test_linear_any_rank_face_by_face(shape, bias, trained, input_grad):
    check_faces(L.Linear(12, 5, bias), shape, trained, input_grad)


def test_linear_counts_by_hand():
    cost = L.walk(L.Linear(768, 3072), (197, 768)).costs[0]
    assert (cost.params, cost.macs, cost.ops) == (768 * 3072 + 3072, 197 * 768 * 3072, 197 * 3072)
    assert L.Linear(768, 10).out_shape((4, 6, 768)) == (4, 6, 10)
    with pytest.raises(L.ShapeError, match="linear expects 768 features on the last axis, got 197x512"):
        L.Linear(768, 10).out_shape((197, 512))


def _net(input_, blocks):
    return resolve(parse_spec(f"name: t\ninput: {input_}\nblocks:\n" + "".join(f"  - {b}\n" for b in blocks)))


def test_the_kind_flattens_a_feature_map_unless_told_not_to():
    flat = _net("{channels: 4, resolution: 3}", ["{name: fc, kind: linear, out: 10}"]).blocks["fc"]
    assert flat.out_shape == (10,) and flat.costs[1].macs == 36 * 10
    rows = _net("{channels: 4, resolution: 3}", ["{name: fc, kind: linear, out: 10, flatten: false}"]).blocks["fc"]
    assert rows.out_shape == (4, 3, 10) and rows.costs[0].macs == 4 * 3 * 3 * 10


def test_the_kind_on_tokens_builds_what_torch_runs():
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = _net("{channels: 3, resolution: 4}", [
        "{name: tokens, kind: linear, out: 6, flatten: false}",
        "{name: mlp, kind: linear, out: 8, activation: gelu, flatten: false}",
        "{name: head, kind: linear, out: 2, flatten: true}",
    ])
    assert [b.out_shape for b in network.blocks.values()] == [(3, 4, 6), (3, 4, 8), (2,)]
    net = build_module(network).eval()
    x = torch.randn(2, 3, 4, 4)
    fc1, fc2, fc3 = (m for m in net.modules() if isinstance(m, torch.nn.Linear))
    expected = fc3(torch.nn.functional.gelu(fc2(fc1(x))).flatten(1))
    torch.testing.assert_close(net(x), expected)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        net(x)
    assert counter.get_total_flops() == 2 * 2 * sum(c.macs for b in network.blocks.values() for c in b.costs)


def test_explain_states_a_linear_over_rows():
    from scalelab.report.explain import explain, to_text

    network = _net("{channels: 3, resolution: 4}", ["{name: fc, kind: linear, out: 6, flatten: false}"])
    text = to_text(explain(network))
    assert "linear 4 -> 6 on 12 rows" in text and "12 × 4 × 6 = 288" in text and "12 rows × 4 inputs × 6 outputs" in text
