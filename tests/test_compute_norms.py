"""Norms over any rank, face by face against torch's modules: batchnorm on (C,), (C, L), (C, H, W);
group, instance, RMS norm and layer norm over trailing axes; their spec kinds, built and run."""

import pytest
from faces import check_faces

from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

CASES = {
    "batchnorm/vector": (L.BatchNorm(4), (4,)),
    "batchnorm/sequence": (L.BatchNorm(4), (4, 7)),
    "batchnorm/map": (L.BatchNorm(4), (4, 3, 5)),
    "group_norm/vector": (L.GroupNorm(2, 4), (4,)),
    "group_norm/sequence": (L.GroupNorm(2, 4), (4, 7)),
    "group_norm/map-no-affine": (L.GroupNorm(2, 4, affine=False), (4, 3, 5)),
    "group_norm/one-group": (L.GroupNorm(1, 4, 1e-6), (4, 3, 5)),
    "instance_norm/sequence": (L.InstanceNorm(4), (4, 7)),
    "instance_norm/map-affine": (L.InstanceNorm(4, affine=True), (4, 3, 5)),
    "layer_norm/tokens": (L.TrailingLayerNorm((6,)), (5, 6)),
    "layer_norm/two-axes-no-affine": (L.TrailingLayerNorm((5, 6), affine=False), (3, 5, 6)),
    "layer_norm/vector-no-bias": (L.TrailingLayerNorm((6,), bias=False), (6,)),
    "rms_norm/tokens": (L.RMSNorm((6,)), (5, 6)),
    "rms_norm/two-axes-no-affine": (L.RMSNorm((5, 6), 1e-6, affine=False), (3, 5, 6)),
}


@pytest.mark.parametrize("trained,input_grad", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("name", list(CASES))
def test_each_norm_face_by_face(name, trained, input_grad):
    layer, shape = CASES[name]
    check_faces(layer, shape, trained, input_grad)


def test_norm_counts_by_hand():
    costs = {name: L.walk(layer, shape).costs[0] for name, (layer, shape) in CASES.items()}
    assert (costs["group_norm/sequence"].params, costs["group_norm/sequence"].ops) == (8, 5 * 28)
    assert (costs["group_norm/map-no-affine"].params, costs["group_norm/map-no-affine"].ops) == (0, 4 * 60)
    assert (costs["instance_norm/sequence"].params, costs["instance_norm/sequence"].ops) == (0, 4 * 28)
    assert (costs["layer_norm/tokens"].params, costs["layer_norm/tokens"].ops) == (12, 5 * 30)
    assert costs["layer_norm/vector-no-bias"].params == 6
    assert (costs["rms_norm/tokens"].params, costs["rms_norm/tokens"].ops) == (6, 4 * 30)
    assert (costs["rms_norm/two-axes-no-affine"].params, costs["rms_norm/two-axes-no-affine"].ops) == (0, 3 * 90)
    assert costs["batchnorm/vector"].ops == 2 * 4


def _network(blocks, input_="{channels: 4, resolution: 6}"):
    return resolve(parse_spec(f"name: t\ninput: {input_}\nblocks:\n" + "".join(f"  - {b}\n" for b in blocks)))


def test_norm_kinds_in_a_spec_build_what_torch_runs():
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = _network([
        "{name: gn, kind: group_norm, groups: 2}",
        "{name: inorm, kind: instance_norm, affine: true}",
        "{name: ln2d, kind: layer_norm}",
        "{name: ln, kind: layer_norm, trailing: 2, norm_eps: 1.0e-6}",
        "{name: rms, kind: rms_norm}",
        "{name: fc, kind: linear, out: 8}",
        "{name: bn, kind: batchnorm}",
    ])
    assert [sum(c.params for c in b.costs) for b in network.blocks.values()] == [8, 8, 8, 72, 6, 144 * 8 + 8, 16]
    net = build_module(network).eval()
    x = torch.randn(2, 4, 6, 6)
    F = torch.nn.functional
    h = F.instance_norm(F.group_norm(x, 2, eps=1e-5), eps=1e-5)
    h = F.layer_norm(h.permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2)
    h = F.rms_norm(F.layer_norm(h, (6, 6), eps=1e-6), (6,))
    fc = net.blocks[5][1]
    h = F.batch_norm(fc(h.flatten(1)), torch.zeros(8), torch.ones(8))
    torch.testing.assert_close(net(x), h)


@pytest.mark.parametrize("block,message", [
    ("{kind: group_norm, groups: 3}", "group norm in 3 groups needs a multiple of 3 channels, got 4"),
    ("{kind: layer_norm, trailing: 4}", "layer norm over 4 trailing axes of a rank-3 input"),
    ("{kind: layer_norm, affine: false}", "affine and bias apply to a layer norm over trailing axes"),
    ("{kind: rms_norm, trailing: 5}", "rms norm over 5 trailing axes of a rank-3 input"),
    ("{kind: group_norm}", "groups"),
])
def test_bad_norms_are_refused(block, message):
    with pytest.raises(ScalelabError, match=message):
        _network([block])
