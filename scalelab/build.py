"""Layer trees -> torch modules, and a spec -> a runnable ``nn.Module``.

This is the only place the analysis path's layer trees meet torch; it walks the same ``layers()``
the cost formulas walk, so the analytic count and the built module cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scalelab.blocks import layers as L
from scalelab.graph import INPUT, Network, resolve
from scalelab.spec import Spec, load_spec

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    "gelu": nn.GELU,
}


class Residual(nn.Module):
    def __init__(self, body: nn.Module, shortcut: nn.Module, post: nn.Module):
        super().__init__()
        self.body, self.shortcut, self.post = body, shortcut, post

    def forward(self, x):
        return self.post(self.body(x) + self.shortcut(x))


class Parallel(nn.Module):
    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], dim=1)


class Gate(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x * self.body(x)


class Merge(nn.Module):
    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, xs: list):
        if self.op == "concat":
            return torch.cat(xs, dim=1)
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out.add_(x)  # in place on the fresh sum: one new tensor however many inputs
        return out


class ZeroPadShortcut(nn.Module):
    def __init__(self, stride: int, out_ch: int):
        super().__init__()
        self.stride, self.out_ch = stride, out_ch

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.out_ch - x.shape[1]))


class StochasticDepth(nn.Module):
    """Drops the whole residual branch per sample while training (Huang et al. 2016)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


def to_torch(node: L.Node) -> nn.Module:
    """Build the torch module for one node of a layer tree."""
    if isinstance(node, L.Sequence):
        return nn.Sequential(*[to_torch(n) for n in node.items])  # a leading Merge takes the list
    if isinstance(node, L.Residual):
        short = to_torch(node.shortcut) if node.shortcut is not None else nn.Identity()
        post = to_torch(node.post) if node.post is not None else nn.Identity()
        return Residual(to_torch(node.body), short, post)
    if isinstance(node, L.Parallel):
        return Parallel([to_torch(b) for b in node.branches])
    if isinstance(node, L.Gate):
        return Gate(to_torch(node.body))
    if isinstance(node, L.Merge):
        return Merge(node.op)
    if isinstance(node, L.Conv):
        return nn.Conv2d(node.in_ch, node.out_ch, node.kernel, node.stride, node.padding, node.dilation,
                         node.groups, node.bias, node.padding_mode)
    if isinstance(node, L.Linear):
        return nn.Linear(node.in_features, node.out_features, node.bias)
    if isinstance(node, L.BatchNorm):
        return nn.BatchNorm2d(node.channels, node.eps, node.momentum)
    if isinstance(node, L.LocalResponseNorm):
        return nn.LocalResponseNorm(node.size, node.alpha, node.beta, node.k)
    if isinstance(node, L.Activation):
        return _ACTIVATIONS[node.fn]()
    if isinstance(node, L.Pool):
        if node.op == "max":
            return nn.MaxPool2d(node.kernel, node.stride, node.padding, ceil_mode=node.ceil_mode)
        return nn.AvgPool2d(node.kernel, node.stride, node.padding, node.ceil_mode, node.count_include_pad)
    if isinstance(node, L.AdaptiveAvgPool):
        return nn.AdaptiveAvgPool2d(node.size)
    if isinstance(node, L.Flatten):
        return nn.Flatten()
    if isinstance(node, L.Dropout):
        return StochasticDepth(node.p) if node.stochastic_depth else nn.Dropout(node.p)
    if isinstance(node, L.ZeroPadShortcut):
        return ZeroPadShortcut(node.stride, node.out_ch)
    from scalelab.build_modern import modern_module  # the primitives of modern CNNs

    return modern_module(node)


class Net(nn.Module):
    """A network built from a spec: blocks run in the graph's execution order. Training-only
    blocks (auxiliary heads) run only in training mode, where ``forward`` returns
    ``(output, *aux_outputs)`` as torchvision's GoogLeNet does."""

    def __init__(self, network: Network):
        super().__init__()
        blocks = list(network.blocks.values())
        self.names = [b.name for b in blocks]
        self.inputs = [b.inputs for b in blocks]
        self.training_only = [b.training_only for b in blocks]
        self.output = network.output
        self.blocks = nn.ModuleList(to_torch(b.layers) for b in blocks)

    def forward_all(self, x, include_training_only: bool = True) -> dict:
        """Every block's output by name."""
        outputs = {INPUT: x}
        for name, inputs, aux, module in zip(self.names, self.inputs, self.training_only, self.blocks):
            if aux and not include_training_only:
                continue
            args = [outputs[i] for i in inputs]
            outputs[name] = module(args[0] if len(args) == 1 else args)
        return outputs

    def forward(self, x):
        if not self.training:
            return self._infer(x)
        outputs = self.forward_all(x)
        aux = [outputs[n] for n, t in zip(self.names, self.training_only) if t]
        return (outputs[self.output], *aux) if aux else outputs[self.output]

    def _infer(self, x):
        """Inference: drop each block output after its last consumer has run, so only the tensors
        later blocks need stay alive (the memory model of ``scalelab.analysis.memory``)."""
        uses: dict = {}
        for inputs, aux in zip(self.inputs, self.training_only):
            for i in ([] if aux else set(inputs)):
                uses[i] = uses.get(i, 0) + 1
        alive = {INPUT: x}
        del x  # the caller still holds the input; this frame need not
        for name, inputs, aux, module in zip(self.names, self.inputs, self.training_only, self.blocks):
            if aux:
                continue
            args = [alive[i] for i in inputs]
            for i in set(inputs):
                uses[i] -= 1
                if uses[i] == 0 and i != self.output:
                    del alive[i]  # ``args`` holds it until the block has run
            out = module(args[0] if len(args) == 1 else args)
            del args
            alive[name] = out
            del out
        return alive[self.output]

    def block(self, name: str) -> nn.Module:
        return self.blocks[self.names.index(name)]


def build_module(spec: "Spec | Network | str | Path", resolution: "int | tuple[int, int] | None" = None) -> Net:
    """Build the torch module of a spec (a Spec, a resolved Network, a path or a zoo name)."""
    if isinstance(spec, Network):
        return Net(spec)
    return Net(resolve(spec if isinstance(spec, Spec) else load_spec(spec), resolution))
