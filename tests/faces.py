"""Every face of a primitive against its own torch module, for inputs of any rank and any number:
output shape, parameters, forward and backward MACs (FlopCounterMode total / 2), the bytes autograd
saves (saved_tensors_hooks, distinct storages, parameters excluded) and the eval inner peak (the
dispatch-mode count of memory_probe), as tests/test_layer_registry.py checks the older kinds."""

from __future__ import annotations

import pytest

from scalelab.blocks import layers as L


def _as_list(shape):
    return list(shape) if isinstance(shape, list) else [shape]


def _saved_bytes(face, shapes, out, grads, batch):
    """What the ``saved`` face says one pass keeps, in fp32 bytes, for ``batch`` samples."""
    kept_inputs = getattr(face, "inputs", ()) or (face.input,) * len(shapes)  # several inputs: which it keeps
    n_in = sum(L.elements(s) for s, keep in zip(shapes, kept_inputs) if keep)
    return (batch * (4 * (n_in + L.elements(out) * face.output + face.per_sample_elements) + face.per_sample_bytes)
            + face.fixed_bytes + 4 * face.fixed_elements)


def check_faces(layer, shape, trained, input_grad, *, batch=3, module=None, grad_weight_factor=1, inputs=None):
    """Assert each face of ``layer`` at ``shape`` (a list of shapes: several inputs) against its module.

    ``input_grad``: whether the inputs need a gradient (a tuple: one flag per input)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.analysis.block_memory import block_peak
    from scalelab.analysis.memory_probe import dispatch_peak

    shapes = _as_list(shape)
    grads = tuple(input_grad) if isinstance(input_grad, tuple) else (input_grad,) * len(shapes)
    out = layer.out_shape(shape)
    trained = trained and layer.has_weights
    module = (module or layer.torch_module()).train()
    for p in module.parameters():
        p.requires_grad_(trained)
    make = inputs or (lambda s: torch.randn(batch, *s))
    leaves = [make(s).requires_grad_(g) for s, g in zip(shapes, grads)]
    xs = [leaf * 1 for leaf in leaves]  # non-leaf inputs, as inside a network
    params = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(xs) if isinstance(shape, list) else module(xs[0])  # several inputs: one list
    assert tuple(y.shape[1:]) == out
    cost = layer.cost(shape, out)
    assert cost.params == sum(p.numel() for p in module.parameters())
    macs = layer.grad_macs(shape, grads) if isinstance(shape, list) else layer.train_macs(shape, out)
    assert 2 * batch * macs.forward == counter.get_total_flops() == 2 * batch * cost.macs
    if trained or any(grads):
        face = layer.saved(shape, out, trained, grads if len(shapes) > 1 else grads[0], "cpu")
        assert sum(saved.values()) == _saved_bytes(face, shapes, out, grads, batch)
        backward = FlopCounterMode(display=False)
        with backward:
            y.sum().backward()
        grad_input = macs.grad_input if any(grads) else 0
        assert backward.get_total_flops() == 2 * batch * (grad_input + grad_weight_factor * macs.grad_weight * trained)
    module.eval()  # the inputs are made inside the counted pass, so they are counted once

    def run():
        fresh = [make(s) for s in shapes]
        return module(fresh) if isinstance(shape, list) else module(fresh[0])

    peak = dispatch_peak(run)
    # the batch's bytes at the layer's peak: per sample, and what the batch shares (a causal mask)
    held = block_peak(layer, shape, batch, 4, layout="own")[1]
    assert peak == 4 * batch * sum(L.elements(s) for s in shapes) + held
