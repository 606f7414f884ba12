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
    ``(output, *aux_outputs)`` as torchvision's GoogLeNet does. A source block (a learned tensor)
    is called with the network input, whose batch size it expands to; a block with several outputs
    returns a tuple, whose items later blocks take by their names ``block.0``, ``block.1``, ..."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        blocks = list(network.blocks.values())
        self.names = [b.name for b in blocks]
        self.inputs = [[] if b.source else b.inputs for b in blocks]
        self.sources = [b.source for b in blocks]
        self.several = [b.tensors() if b.outputs else None for b in blocks]
        self.training_only = [b.training_only for b in blocks]
        self.output = network.output
        self.blocks = nn.ModuleList(to_torch(b.layers) for b in blocks)

    def forward_all(self, x: torch.Tensor, include_training_only: bool = True) -> dict[str, torch.Tensor]:
        """Every block's output by name."""
        outputs = {INPUT: x}
        for i, (name, inputs, aux, module) in enumerate(zip(self.names, self.inputs, self.training_only, self.blocks)):
            if aux and not include_training_only:
                continue
            args = [outputs[i] for i in inputs]
            outputs[name] = self._run(i, module, args, x)
            outputs.update(zip(self.several[i] or (), outputs[name]))  # a tuple: each output by its name
        return outputs

    def _run(self, i: int, module: nn.Module, args: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Block ``i`` on its inputs; a source on the network input ``x`` (for its batch size)."""
        if self.sources[i]:
            return module(x)
        return module(args[0] if len(args) == 1 else args)

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
        alive = {INPUT: x}  # the caller holds the input all along: ``x`` stays for the sources' batch size
        for k, (name, inputs, aux, module) in enumerate(zip(self.names, self.inputs, self.training_only, self.blocks)):
            if aux:
                continue
            args = [alive[i] for i in inputs]
            for i in set(inputs):
                uses[i] -= 1
                if uses[i] == 0 and i != self.output:
                    del alive[i]  # ``args`` holds it until the block has run
            out = self._run(k, module, args, x)
            del args
            several = self.several[k]
            if several is None:
                alive[name] = out
            else:  # keep only the outputs later blocks take (views: the storage lives while one does)
                alive.update((t, o) for t, o in zip(several, out) if uses.get(t))
            del out
        return alive[self.output]

    def block(self, name: str) -> nn.Module:
        return self.blocks[self.names.index(name)]


def build_module(spec: "Spec | Network | str | Path", resolution: "int | tuple[int, int] | None" = None) -> Net:
    """Build the torch module of a spec (a Spec, a resolved Network, a path or a zoo name)."""
    if isinstance(spec, Network):
        return Net(spec)
    return Net(resolve(spec if isinstance(spec, Spec) else load_spec(spec), resolution))
