"""Layer trees -> torch modules, and a spec -> a runnable ``nn.Module``.

The layer trees meet torch here: each node of the same ``layers()`` the cost formulas walk builds
its own module (its ``torch_module`` face), so the analytic count and the built module cannot drift
apart.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scalelab.blocks import layers as L
from scalelab.graph import INPUT, Network, resolve
from scalelab.spec import Spec, load_spec


def to_torch(node: L.Node) -> nn.Module:
    """Build the torch module for one node of a layer tree (each node kind's own builder)."""
    return L.definition(node).module()


class Net(nn.Module):
    """A network built from a spec: blocks run in the graph's execution order. Training-only
    blocks (auxiliary heads) run only in training mode, where ``forward`` returns
    ``(output, *aux_outputs)`` as torchvision's GoogLeNet does."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        blocks = list(network.blocks.values())
        self.names = [b.name for b in blocks]
        self.inputs = [b.inputs for b in blocks]
        self.training_only = [b.training_only for b in blocks]
        self.output = network.output
        self.blocks = nn.ModuleList(to_torch(b.layers) for b in blocks)

    def forward_all(self, x: torch.Tensor, include_training_only: bool = True) -> dict[str, torch.Tensor]:
        """Every block's output by name."""
        outputs = {INPUT: x}
        for name, inputs, aux, module in zip(self.names, self.inputs, self.training_only, self.blocks):
            if aux and not include_training_only:
                continue
            args = [outputs[i] for i in inputs]
            outputs[name] = module(args[0] if len(args) == 1 else args)
        return outputs

    def forward(self, x: torch.Tensor) -> "torch.Tensor | tuple[torch.Tensor, ...]":
        if not self.training:
            return self._infer(x)
        outputs = self.forward_all(x)
        aux = [outputs[n] for n, t in zip(self.names, self.training_only) if t]
        return (outputs[self.output], *aux) if aux else outputs[self.output]

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: drop each block output after its last consumer has run, so only the tensors
        later blocks need stay alive (the memory model of ``scalelab.analysis.memory``)."""
        uses: dict[str, int] = {}
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
